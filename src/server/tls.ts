import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Server as HttpsServer, ServerOptions } from 'node:https';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export function readTls(files: TlsFiles): Pick<ServerOptions, 'cert' | 'key'> {
  return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
}

/**
 * Re-read the certificate and key when either file changes (certificate renewal without a
 * restart). A broken pair is refused and the previous one stays in use.
 */
export function watchTls(
  server: HttpsServer,
  files: TlsFiles,
  onReload: (ok: boolean, detail?: string) => void,
  pollMs = 2000,
): () => void {
  const reload = () => {
    try {
      server.setSecureContext(readTls(files));
      onReload(true);
    } catch (e) {
      onReload(false, (e as Error).message);
    }
  };
  watchFile(files.certFile, { interval: pollMs, persistent: false }, reload);
  watchFile(files.keyFile, { interval: pollMs, persistent: false }, reload);
  return () => {
    unwatchFile(files.certFile, reload);
    unwatchFile(files.keyFile, reload);
  };
}
