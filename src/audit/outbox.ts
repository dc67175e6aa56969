/**
 * Audit entries made where no gateway runs: the admin CLI changes the local store directly, and
 * only a running gateway writes the audit chain (one writer per chain). The CLI puts its
 * admin.change entry in the store's outbox in the same breath as the change; each gateway moves
 * outbox entries into the chain at start and every few seconds, deleting them once committed.
 * Delivery is at least once (a crash between commit and delete chains an entry again, with the
 * same record id).
 */
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { Store } from '../store/types.js';
import { isAuditKind } from './catalogue.js';
import type { AuditLog } from './log.js';
import type { AuditChange, AuditEntry } from './record.js';

/** Who ran the CLI: the operating-system account on this host. */
function cliActor(): AuditEntry['actor'] {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): still recorded, as unknown.
  }
  return { type: 'system', id: `cli:${user}@${hostname()}`, method: 'cli' };
}

/** Record an admin change made by the CLI on the local store. */
export async function recordCliChange(
  store: Store,
  command: string,
  change: AuditChange,
  at = Date.now(),
): Promise<void> {
  const entry: AuditEntry = {
    kind: 'admin.change',
    at,
    actor: cliActor(),
    change,
    outcome: 'success',
    detail: { via: 'cli', command },
  };
  await store.enqueueAuditEntry({ id: randomUUID(), at, entry: JSON.stringify(entry) });
}

/** Move waiting entries into the chain; returns how many. */
export async function drainOutbox(
  store: Store,
  audit: AuditLog,
  log: { error(o: object, msg: string): void },
  batch = 500,
): Promise<number> {
  const rows = await store.listAuditOutbox(batch);
  if (rows.length === 0) return 0;
  const done: string[] = [];
  for (const r of rows) {
    let e: AuditEntry | undefined;
    try {
      e = JSON.parse(r.entry) as AuditEntry;
    } catch {
      e = undefined;
    }
    if (e === undefined || typeof e !== 'object' || !isAuditKind(String(e.kind)) || typeof e.at !== 'number') {
      log.error({ id: r.id }, 'audit outbox entry is not an audit entry: dropped');
      done.push(r.id);
      continue;
    }
    if (audit.record(e, r.id)) done.push(r.id);
  }
  await audit.flushed();
  // Only what was queued (and is now committed) leaves the outbox.
  await store.deleteAuditOutbox(done);
  return done.length;
}
