/**
 * The device-login pages (RFC 8628 §3.3): enter the code shown in the terminal, confirm the
 * request, and — after the WebAuthn login the interaction asks for — a done page. Plain HTML
 * forms with the provider's hidden fields (its CSRF token); no script.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(ctx: KoaContextWithOIDC, title: string, body: string): void {
  ctx.type = 'html';
  ctx.set(
    'content-security-policy',
    "default-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  );
  ctx.set('x-frame-options', 'DENY');
  ctx.set('referrer-policy', 'no-referrer');
  ctx.set('cache-control', 'no-store');
  ctx.body = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>${esc(title)} · Keygate</title>
  <link rel="stylesheet" href="/.keygate/assets/style.css">
</head>
<body>
  <div class="shell">
    <header class="brand"><span class="brand-name">Keygate</span></header>
    <main class="card" aria-labelledby="title">
      <h1 id="title">${esc(title)}</h1>
      ${body}
    </main>
    <footer class="foot">Protected by Keygate</footer>
  </div>
</body>
</html>`;
}

export function devicePages() {
  return {
    userCodeInputSource: async (
      ctx: KoaContextWithOIDC,
      form: string,
      _out: unknown,
      err?: Error & { userCode?: string | undefined },
    ) => {
      const message =
        err === undefined
          ? '<p class="lead">Enter the code your terminal shows (for example after <code>keygate login --device</code>).</p>'
          : err.userCode !== undefined || err.name === 'NoCodeError'
            ? '<p class="error" role="alert">That code is not valid or has expired. Check it and try again.</p>'
            : '<p class="error" role="alert">The sign-in could not continue. Start again from your terminal.</p>';
      page(
        ctx,
        'Sign in a device',
        `${message}
      ${form.replace('<input ', '<input aria-label="Code" autocomplete="off" autocapitalize="characters" ')}
      <button class="btn btn-primary btn-block" type="submit" form="op.deviceInputForm">Continue</button>`,
      );
    },
    userCodeConfirmSource: async (
      ctx: KoaContextWithOIDC,
      form: string,
      client: { clientName?: string | undefined; clientId: string },
      deviceInfo: { ip?: unknown; userAgent?: unknown },
      userCode: string,
    ) => {
      page(
        ctx,
        'Confirm this sign-in',
        `<p class="lead"><strong>${esc(client.clientName ?? client.clientId)}</strong> asks to sign in as you.</p>
      <p>Check that your terminal shows this code:</p>
      <p class="code"><code id="user-code">${esc(userCode)}</code></p>
      <p class="hint">Requested from ${esc(String(deviceInfo.ip ?? 'an unknown address'))}${typeof deviceInfo.userAgent === 'string' ? ` (${esc(deviceInfo.userAgent.slice(0, 120))})` : ''}.
      If you did not start this, choose Cancel.</p>
      ${form}
      <p class="hint">Next you will be asked to tap your security key or confirm your passkey.</p>
      <button id="confirm" class="btn btn-primary btn-block" type="submit" form="op.deviceConfirmForm">Continue</button>
      <button id="abort" class="btn btn-secondary btn-block" type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Cancel</button>`,
      );
    },
    successSource: async (ctx: KoaContextWithOIDC) => {
      page(
        ctx,
        'Device signed in',
        '<p class="lead" id="done">Your terminal is signed in. You can close this page.</p>',
      );
    },
  };
}
