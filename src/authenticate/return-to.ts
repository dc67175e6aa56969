/**
 * Where to send a browser after login: only a same-origin relative path. Anything else —
 * scheme-relative `//evil.example`, absolute URLs, backslash tricks (`/\evil.example`, which
 * browsers read as `//`), control characters, or encoded forms that decode to those — is
 * replaced by `/` (no open redirect).
 */
const BASE = 'https://keygate.invalid';

function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export function safeReturnTo(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048) return '/';
  if (!v.startsWith('/') || v.startsWith('//')) return '/';
  // Backslashes and control characters (also percent-encoded) have no place in a return path.
  if (v.includes('\\') || hasControlChar(v) || /%(5c|0[0-9a-f]|1[0-9a-f]|7f)/i.test(v)) return '/';
  // An encoded slash right after the first one decodes to '//' in some routers.
  if (/^\/%2f/i.test(v)) return '/';
  let u: URL;
  try {
    u = new URL(v, BASE);
  } catch {
    return '/';
  }
  // Dot segments can collapse into '//host' (`/a/..//evil.example`): check the parsed path too.
  if (u.origin !== BASE || u.pathname.startsWith('//') || u.pathname.includes('\\')) return '/';
  return u.pathname + u.search + u.hash;
}
