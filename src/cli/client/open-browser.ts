/**
 * Open a URL with the platform's opener (`open` on macOS, `xdg-open` elsewhere, `start` on
 * Windows). Best effort: a missing opener is not an error — the URL is printed anyway.
 */
import { spawn } from 'node:child_process';

export function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '""', url.replaceAll('&', '^&')]]
        : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // No opener: the user has the printed URL.
  }
}
