/**
 * Requests waiting for a step-up: a browser that submits a sensitive change (a navigation, not
 * a script's fetch) with a stale login is shown what it is about to approve — method, path and
 * body — and the request is replayed only after a fresh key tap, once. Entries live in memory
 * for five minutes and belong to the user who made them.
 */
import { randomId } from '../crypto/random.js';
import type { Clock } from '../lib/clock.js';

export interface PendingRequest {
  id: string;
  userId: string;
  method: string;
  /** Normalized path and query, as classified. */
  target: string;
  contentType: string | undefined;
  body: Buffer;
  expiresAt: number;
}

const TTL_MS = 5 * 60_000;
const MAX = 1_000;
/** Per person: a new submission pushes out that person's oldest, never someone else's. */
const PER_USER = 5;
/** All held bodies together. */
const MAX_BYTES = 64 * 1024 * 1024;

export class PendingSteps {
  private readonly entries = new Map<string, PendingRequest>();

  constructor(private readonly clock: Clock) {}

  /** Hold a submission; undefined when the gateway holds too much already (the caller answers 503). */
  add(p: Omit<PendingRequest, 'id' | 'expiresAt'>): PendingRequest | undefined {
    const now = this.clock.now();
    for (const [k, v] of this.entries) if (v.expiresAt <= now) this.entries.delete(k);
    const mine = [...this.entries.values()].filter((e) => e.userId === p.userId);
    if (mine.length >= PER_USER) this.entries.delete((mine[0] as PendingRequest).id);
    let bytes = p.body.length;
    for (const e of this.entries.values()) bytes += e.body.length;
    if (this.entries.size >= MAX || bytes > MAX_BYTES) return undefined;
    const entry: PendingRequest = { ...p, id: randomId(24), expiresAt: now + TTL_MS };
    this.entries.set(entry.id, entry);
    return entry;
  }

  /** The user's live entry, or undefined. */
  get(id: string, userId: string): PendingRequest | undefined {
    const e = this.entries.get(id);
    if (!e || e.userId !== userId || e.expiresAt <= this.clock.now()) return undefined;
    return e;
  }

  /** Take it for replay: single use. */
  take(id: string, userId: string): PendingRequest | undefined {
    const e = this.get(id, userId);
    if (e) this.entries.delete(id);
    return e;
  }
}

/** What the approval page shows of a body: its size and the first 4 KiB as text. */
export function bodyPreview(p: PendingRequest): { bytes: number; text: string; truncated: boolean } {
  const head = p.body.subarray(0, 4096).toString('utf8');
  let text = head;
  if (p.body.length <= 4096 && (p.contentType ?? '').includes('json')) {
    try {
      text = JSON.stringify(JSON.parse(head), null, 2);
    } catch {
      text = head;
    }
  }
  return { bytes: p.body.length, text, truncated: p.body.length > 4096 };
}
