/** CLI output: results on stdout, one clear line per failure on stderr. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

export const stdio: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** Exit codes: 0 ok, 1 the command failed, 2 the command line was wrong. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;
