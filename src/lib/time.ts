/** A time given by a person: ISO 8601 (`2026-11-28T00:00:00Z`) or epoch milliseconds; undefined when neither. */
export function parseTime(v: string): number | undefined {
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : undefined;
}
