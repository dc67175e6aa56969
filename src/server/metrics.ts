import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics, one registry per gateway (tests run several in one process). */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'keygate_http_requests_total',
    help: 'HTTP requests by route class (proxy, keygate) and status code.',
    labelNames: ['class', 'status'] as const,
    registers: [this.registry],
  });
  readonly upstreamLatency = new Histogram({
    name: 'keygate_upstream_response_seconds',
    help: 'Time from dispatch to the end of the upstream response, per upstream.',
    labelNames: ['upstream'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly credentialRefreshes = new Counter({
    name: 'keygate_upstream_credential_refreshes_total',
    help: 'Attempts to obtain an upstream credential, by upstream and outcome.',
    labelNames: ['upstream', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'keygate_oauth_token_requests_total',
    help: 'Token endpoint answers by grant type and outcome (issued, or the OAuth error code).',
    labelNames: ['grant', 'outcome'] as const,
    registers: [this.registry],
  });
  /** Set by the gateway: the audit log's last committed sequence number and its queue. */
  auditState: () => { committedSeq: number; queued: number } = () => ({ committedSeq: 0, queued: 0 });
  readonly auditCommitted = new Gauge({
    name: 'keygate_audit_committed_seq',
    help: 'Sequence number of the last audit record committed to disk.',
    registers: [this.registry],
    collect: () => {
      this.auditCommitted.set(this.auditState().committedSeq);
    },
  });
  readonly auditQueued = new Gauge({
    name: 'keygate_audit_queue_length',
    help: 'Audit records waiting for the writer.',
    registers: [this.registry],
    collect: () => {
      this.auditQueued.set(this.auditState().queued);
    },
  });
  readonly inflight = new Gauge({
    name: 'keygate_inflight_requests',
    help: 'Requests being served right now.',
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'keygate_' });
  }
}
