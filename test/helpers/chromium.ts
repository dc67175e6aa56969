/**
 * Debian's Chromium through playwright-core (never a downloaded browser). When the binary is
 * missing, browser tests skip with a loud message locally and fail under CI=true.
 */
import { existsSync } from 'node:fs';
import { type Browser, type CDPSession, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.KEYGATE_CHROMIUM ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const msg = `Chromium not found at ${CHROMIUM}: install it with apt-get install -y chromium`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: browser tests must run)`);
  console.warn(`\n!!! SKIPPING BROWSER TESTS: ${msg} !!!\n`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface VirtualAuthenticator {
  cdp: CDPSession;
  id: string;
}

/** Chrome's virtual authenticator (CDP WebAuthn domain): CTAP2, resident keys, presence simulated. */
export async function addVirtualAuthenticator(
  page: Page,
  transport: 'internal' | 'usb',
  o: { uv?: boolean } = {},
): Promise<VirtualAuthenticator> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: o.uv ?? true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, id: authenticatorId };
}
