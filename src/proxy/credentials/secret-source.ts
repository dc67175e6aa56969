import { readFileSync, unwatchFile, watchFile } from 'node:fs';

/**
 * A secret read from an environment variable (once) or a file (again whenever the file
 * changes, so rotating a mounted secret needs no restart). Polling with watchFile survives
 * the atomic symlink swaps that Kubernetes uses for mounted secrets, which fs.watch does not.
 */
export class SecretSource {
  private value: string;
  private readonly file: string | undefined;
  private readonly listener: (() => void) | undefined;

  constructor(
    spec: { env?: string | undefined; file?: string | undefined; what: string },
    env: NodeJS.ProcessEnv,
    opts: { pollMs?: number; onReload?: (ok: boolean, detail?: string) => void } = {},
  ) {
    if (spec.env !== undefined) {
      const v = env[spec.env];
      if (v === undefined || v.trim() === '') throw new Error(`${spec.what}: environment variable ${spec.env} is not set`);
      this.value = v.trim();
      return;
    }
    if (spec.file === undefined) throw new Error(`${spec.what}: no source`);
    this.file = spec.file;
    this.value = SecretSource.readFile(spec.file, spec.what);
    const file = spec.file;
    this.listener = () => {
      try {
        this.value = SecretSource.readFile(file, spec.what);
        opts.onReload?.(true);
      } catch (e) {
        // Keep serving with the previous value: a half-written rotation must not cause an outage.
        opts.onReload?.(false, (e as Error).message);
      }
    };
    watchFile(file, { interval: opts.pollMs ?? 1000, persistent: false }, this.listener);
  }

  private static readFile(file: string, what: string): string {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new Error(`${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code})`);
    }
    if (text === '') throw new Error(`${what}: ${file} is empty`);
    return text;
  }

  get(): string {
    return this.value;
  }

  close(): void {
    if (this.file !== undefined && this.listener) unwatchFile(this.file, this.listener);
  }
}
