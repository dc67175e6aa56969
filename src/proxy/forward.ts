/**
 * The forwarder: one request to one upstream through an undici keep-alive pool, bodies
 * streaming both ways with backpressure. Nothing is buffered: a 200 MB upload and a
 * server-sent-event stream pass chunk by chunk.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import { KeygateError } from '../errors/index.js';
import type { Classifier } from '../authorize/classify/types.js';
import type { CredentialProvider } from './credentials/types.js';
import { clientResponseHeaders } from './headers.js';

export interface UpstreamRuntime {
  name: string;
  /** scheme://host:port of the upstream. */
  origin: string;
  /** Path prefix of the upstream URL without a trailing slash ('' for none). */
  basePath: string;
  /** `aud` of identity assertions: the upstream's configured URL. */
  audience: string;
  pool: Pool;
  credential: CredentialProvider;
  classifier: Classifier;
  maxRequestBodyBytes: number;
}

export interface ForwardResult {
  status: number;
  bytesOut: number;
  upstreamMs: number;
  error?: KeygateError;
}

class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) cb(new KeygateError('REQUEST_TOO_LARGE', { detail: `body exceeds ${this.max} bytes` }));
    else cb(null, chunk);
  }
}

/** Map a transport failure to the error the client sees (never the raw message). */
export function upstreamError(err: unknown): KeygateError {
  if (err instanceof KeygateError) return err;
  const code = (err as { code?: string }).code ?? '';
  const detail = `${code} ${(err as Error).message ?? ''}`.trim();
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new KeygateError('UPSTREAM_TIMEOUT', { detail });
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new KeygateError('BAD_REQUEST', { message: 'The request body does not match its Content-Length.', detail });
    default:
      return new KeygateError('UPSTREAM_UNAVAILABLE', { detail });
  }
}

function requestBody(req: IncomingMessage, max: number): IncomingMessage | Transform | null {
  const cl = req.headers['content-length'];
  if (cl !== undefined) {
    const n = Number(cl);
    if (n > max) throw new KeygateError('REQUEST_TOO_LARGE', { detail: `content-length ${n} > ${max}` });
    return n === 0 ? null : req;
  }
  if (req.headers['transfer-encoding'] === undefined) return null;
  // Unknown length: count as it streams and stop at the limit.
  return req.pipe(new BodyLimit(max));
}

/**
 * Forward `req` to `up`. `headers` are the complete upstream request headers. `done` is
 * called exactly once; when the response has not started, the caller sends `result.error`.
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  up: UpstreamRuntime,
  pathAndQuery: string,
  headers: string[],
  publicOrigin: string,
  requestId: string,
  done: (r: ForwardResult) => void,
  /** The body, when classification already read it (the same bytes the client sent). */
  bodyOverride?: Readable,
): void {
  const start = performance.now();
  let body: IncomingMessage | Transform | Readable | null;
  try {
    body = bodyOverride ?? requestBody(req, up.maxRequestBodyBytes);
  } catch (e) {
    done({ status: 0, bytesOut: 0, upstreamMs: 0, error: e as KeygateError });
    return;
  }
  let finished = false;
  let bytesOut = 0;
  let status = 0;
  let bodyError: KeygateError | undefined;
  const finish = (error?: KeygateError) => {
    if (finished) return;
    finished = true;
    const r: ForwardResult = { status, bytesOut, upstreamMs: performance.now() - start };
    if (error) r.error = error;
    done(r);
  };
  if (body instanceof BodyLimit) {
    body.on('error', (e) => {
      bodyError = e instanceof KeygateError ? e : upstreamError(e);
    });
  }

  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(controller) {
      // The client went away: stop the upstream request too.
      res.once('close', () => {
        if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
      });
      res.on('drain', () => controller.resume());
    },
    onResponseStart(_controller, statusCode, upstreamHeaders) {
      if (statusCode < 200) return;
      status = statusCode;
      const h = clientResponseHeaders(upstreamHeaders as Record<string, string | string[]>, up.origin, publicOrigin);
      h.push('x-request-id', requestId);
      res.writeHead(statusCode, h);
    },
    onResponseData(controller, chunk) {
      bytesOut += chunk.length;
      if (!res.write(chunk)) controller.pause();
    },
    onResponseEnd() {
      res.end();
      finish();
    },
    onResponseError(_controller, err) {
      const e = bodyError ?? upstreamError(err);
      if (res.headersSent) {
        // Mid-stream failure: cut the connection so the client sees a truncated body, not a clean end.
        res.destroy();
        finish(e);
        return;
      }
      finish(e);
    },
  };

  up.pool.dispatch(
    {
      path: up.basePath + pathAndQuery,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body,
    },
    handler,
  );
}
