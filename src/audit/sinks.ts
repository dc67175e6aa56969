/**
 * Copies of committed audit records for an existing SIEM: a JSON Lines file (rotated by size)
 * and standard output. The chain in SQLite stays the record of truth; a sink only ever receives
 * records after their batch is committed. The file sink resumes after the last complete line it
 * holds, so records committed just before a crash are written on the next start (no gap, no
 * duplicate); a line cut by the crash is dropped first.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';

export interface FileSinkOptions {
  path: string;
  /** Rotate when the file would grow past this. */
  maxBytes: number;
  /** Rotated files kept: path.1 (newest) … path.keep. */
  keep: number;
}

export interface SinkOptions {
  file?: FileSinkOptions;
  stdout: boolean;
}

/** Writes below this size reach a pipe in one piece (POSIX PIPE_BUF). */
const PIPE_BUF = 4096;

export class FileSink {
  private fd: number;
  private size: number;
  /** The seq of the last complete line in the file (0: none). */
  readonly resumeAfter: number;

  constructor(private readonly o: FileSinkOptions) {
    this.fd = openSync(o.path, 'a+', 0o600);
    const { lastSeq, validBytes } = lastCompleteLine(this.fd);
    // A partial last line (a crash mid-write) is cut off; its record is written again.
    if (validBytes < fstatSync(this.fd).size) ftruncateSync(this.fd, validBytes);
    this.size = validBytes;
    this.resumeAfter = lastSeq;
  }

  write(lines: readonly string[]): void {
    if (lines.length === 0) return;
    const chunk = `${lines.join('\n')}\n`;
    const bytes = Buffer.byteLength(chunk);
    if (this.size > 0 && this.size + bytes > this.o.maxBytes) this.rotate();
    writeSync(this.fd, chunk);
    this.size += bytes;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    const p = this.o.path;
    rmSync(`${p}.${this.o.keep}`, { force: true });
    for (let i = this.o.keep - 1; i >= 1; i--) if (existsSync(`${p}.${i}`)) renameSync(`${p}.${i}`, `${p}.${i + 1}`);
    renameSync(p, `${p}.1`);
    this.fd = openSync(p, 'a+', 0o600);
    this.size = 0;
  }
}

/** The seq of the file's last complete line and the bytes up to its end. */
function lastCompleteLine(fd: number): { lastSeq: number; validBytes: number } {
  const size = fstatSync(fd).size;
  if (size === 0) return { lastSeq: 0, validBytes: 0 };
  const n = Math.min(size, 256 * 1024);
  const buf = Buffer.alloc(n);
  readSync(fd, buf, 0, n, size - n);
  const end = buf.lastIndexOf(0x0a);
  if (end === -1) return { lastSeq: 0, validBytes: n === size ? 0 : size };
  const start = buf.lastIndexOf(0x0a, end - 1) + 1;
  const m = /^\{"seq":(\d+),/.exec(buf.subarray(start, end).toString());
  return { lastSeq: m ? Number(m[1]) : 0, validBytes: size - n + end + 1 };
}

/** Standard output, in writes that stay whole on a pipe (other log lines never land inside one). */
export function writeStdout(lines: readonly string[], write: (chunk: string) => void = (c) => writeSync(1, c)): void {
  let chunk = '';
  let bytes = 0;
  for (const l of lines) {
    const n = Buffer.byteLength(l) + 1;
    if (bytes > 0 && bytes + n > PIPE_BUF) {
      write(chunk);
      chunk = '';
      bytes = 0;
    }
    chunk += `${l}\n`;
    bytes += n;
  }
  if (chunk.length > 0) write(chunk);
}
