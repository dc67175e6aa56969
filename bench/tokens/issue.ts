/**
 * The token-issuance load: a closed loop of `concurrency` workers over an undici keep-alive
 * Pool, each sending `POST /.keygate/oauth/token` (client_secret_basic, grant_type=
 * client_credentials) and sending the next one as soon as the answer is read, for a fixed time.
 * Only 200 answers count as tokens; every other status or socket error is counted by kind.
 * With `proofs`, request i carries proof i as its DPoP header (a DPoP-bound token).
 */
import { Pool } from 'undici';

export const TOKEN_PATH = '/.keygate/oauth/token';

export interface IssueOptions {
  clientId: string;
  secret: string;
  concurrency: number;
  durationMs: number;
  proofs?: readonly string[];
}

export interface IssueResult {
  /** Tokens (200 answers) per second over the whole run, the tail of in-flight requests included. */
  rps: number;
  tokens: number;
  /** Non-200 answers by status, and failures by error code. */
  errors: Record<string, number>;
  /** True when the run ended early for want of DPoP proofs. */
  exhausted: boolean;
  elapsedS: number;
}

/** RFC 6749 §2.3.1: client_secret_basic, form-encoding each part first. */
export const basicAuth = (id: string, secret: string): string =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export async function issueLoad(url: string, o: IssueOptions): Promise<IssueResult> {
  const pool = new Pool(url, { connections: o.concurrency, keepAliveTimeout: 30_000 });
  const base = {
    authorization: basicAuth(o.clientId, o.secret),
    'content-type': 'application/x-www-form-urlencoded',
  };
  const body = 'grant_type=client_credentials';
  const errors: Record<string, number> = {};
  const fail = (kind: string) => {
    errors[kind] = (errors[kind] ?? 0) + 1;
  };
  let tokens = 0;
  let next = 0;
  let exhausted = false;
  const t0 = performance.now();
  const deadline = t0 + o.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      let headers: Record<string, string> = base;
      if (o.proofs !== undefined) {
        const proof = o.proofs[next++];
        if (proof === undefined) {
          exhausted = true;
          return;
        }
        headers = { ...base, dpop: proof };
      }
      try {
        const r = await pool.request({ path: TOKEN_PATH, method: 'POST', headers, body });
        await r.body.dump();
        if (r.statusCode === 200) tokens++;
        else fail(String(r.statusCode));
      } catch (e) {
        fail((e as { code?: string }).code ?? 'error');
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const elapsedS = (performance.now() - t0) / 1000;
  await pool.close();
  return { rps: tokens / elapsedS, tokens, errors, exhausted, elapsedS };
}
