// What every service module gets: resolved options, the clock, the token store and the log sink.
import type { TokenStore } from './auth.js';
import type { TokenRequestRecord } from './types.js';

export interface SimContext {
  /** Base URL without trailing slash, known once the server listens. */
  readonly url: string;
  readonly workspaceId: string;
  readonly tokenTtlSeconds: number;
  readonly deployPolls: number;
  readonly runPolls: number;
  readonly streamChunkDelayMs: number;
  readonly tokens: TokenStore;
  readonly tokenRequests: TokenRequestRecord[];
  /** Epoch milliseconds. */
  now(): number;
  log(line: Record<string, unknown>): void;
}
