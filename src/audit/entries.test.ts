import { describe, expect, it } from 'vitest';
import { decisionOf } from './entries.js';
import { encodeEntry } from './record.js';

describe('decisionOf: the decision a record carries', () => {
  it('a frozen decision (the decision cache’s) gets one frozen projection of effect and reasons', () => {
    const cached = Object.freeze({ effect: 'allow' as const, reasons: Object.freeze(['role:admin:0']), extra: 'x' });
    const a = decisionOf(cached);
    expect(decisionOf(cached)).toBe(a);
    expect(a).toEqual({ effect: 'allow', reasons: ['role:admin:0'] });
    // Frozen all the way down: what the encoder requires before it remembers an object's JSON.
    expect(Object.isFrozen(a) && Object.isFrozen(a.reasons)).toBe(true);
  });

  it('a decision that may still change is projected afresh every time, and a change shows', () => {
    const live = { effect: 'deny' as const, reasons: ['default-deny'] };
    const a = decisionOf(live);
    expect(decisionOf(live)).not.toBe(a);
    expect(Object.isFrozen(a)).toBe(false);
    live.reasons.push('later');
    expect(decisionOf(live).reasons).toEqual(['default-deny', 'later']);
    const half = Object.freeze({ effect: 'deny' as const, reasons: ['a'] });
    expect(decisionOf(half)).not.toBe(decisionOf(half));
  });

  it('records encode the projection: only effect and reasons', () => {
    const cached = Object.freeze({ effect: 'allow' as const, reasons: Object.freeze(['p']), extra: 'x' });
    const body = encodeEntry(
      { kind: 'http.request', at: 1, actor: { type: 'anonymous' }, decision: decisionOf(cached) },
      'i',
    );
    expect(body).toContain('"decision":{"effect":"allow","reasons":["p"]}');
    expect(body).not.toContain('extra');
  });
});
