/**
 * Bodies stream both ways: server-sent events arrive event by event, and a 200 MB upload
 * passes without being held in the gateway's memory.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream, type TestGateway } from '../../helpers/index.js';

const MB = 1024 * 1024;
let up: RunningUpstream;
let gw: TestGateway;
let uploads: { bytes: number; sha256: string; chunked: boolean; aborted: boolean }[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const t = setInterval(() => {
        n++;
        res.write(`data: {"n":${n},"at":${Date.now()}}\n\n`);
        if (n === 5) {
          clearInterval(t);
          res.end('data: [DONE]\n\n');
        }
      }, 150);
      return;
    }
    if (req.url === '/upload') {
      const h = createHash('sha256');
      let bytes = 0;
      const record = { bytes: 0, sha256: '', chunked: req.headers['transfer-encoding'] === 'chunked', aborted: false };
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
      });
      req.on('aborted', () => {
        record.aborted = true;
        uploads.push(record);
      });
      req.on('end', () => {
        record.bytes = bytes;
        record.sha256 = h.digest('hex');
        uploads.push(record);
        res.end(JSON.stringify({ bytes }));
      });
      return;
    }
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(MB, 7);
      let left = 100;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(404).end();
  });
  process.env.STREAM_TEST_TOKEN = 'upstream-token';
  gw = await startGateway({
    upstreams: {
      ws: {
        url: up.url,
        credential: { type: 'static', tokenEnv: 'STREAM_TEST_TOKEN' },
        maxRequestBodyBytes: '250MiB',
      },
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

/** A deterministic stream of `total` bytes in 1 MiB chunks, hashed as it is produced. */
function generated(total: number): { stream: Readable; digest: () => string } {
  const h = createHash('sha256');
  let sent = 0;
  let i = 0;
  const stream = new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(MB, total - sent);
      const chunk = Buffer.alloc(size, i++ % 251);
      h.update(chunk);
      sent += size;
      this.push(chunk);
    },
  });
  return { stream, digest: () => h.digest('hex') };
}

describe('streaming through the gateway', () => {
  it('server-sent events arrive one by one, before the stream ends', async () => {
    const res = await request(`${gw.url}/sse`, { headers: asUser('alice', { accept: 'text/event-stream' }) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of res.body) {
      text += chunk.toString();
      arrivals.push(Date.now());
    }
    const events = text.split('\n\n').filter((e) => e.startsWith('data:'));
    expect(events).toHaveLength(6);
    expect(events.at(-1)).toBe('data: [DONE]');
    // Five events 150 ms apart: the first arrives long before the last (no buffering).
    expect(arrivals.length).toBeGreaterThanOrEqual(5);
    expect((arrivals.at(-1) as number) - (arrivals[0] as number)).toBeGreaterThan(400);
  });

  it('a 200 MB upload with Content-Length passes intact without being buffered', async () => {
    const total = 200 * MB;
    const body = generated(total);
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 20);
    uploads = [];
    const res = await request(`${gw.url}/upload`, {
      method: 'POST',
      headers: asUser('alice', { 'content-type': 'application/octet-stream', 'content-length': String(total) }),
      body: body.stream,
    });
    clearInterval(sampler);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ bytes: total });
    expect(uploads[0]).toMatchObject({ bytes: total, sha256: body.digest(), aborted: false });
    // Client, gateway and upstream share this process: had the gateway buffered the body,
    // memory would have grown by at least 200 MB.
    expect(rssPeak - rssBefore).toBeLessThan(100 * MB);
  });

  it('a chunked upload of unknown length streams too', async () => {
    const body = generated(20 * MB);
    uploads = [];
    const res = await request(`${gw.url}/upload`, { method: 'POST', headers: asUser(), body: body.stream });
    expect(res.statusCode).toBe(200);
    expect(uploads[0]).toMatchObject({ bytes: 20 * MB, sha256: body.digest(), chunked: true });
  });

  it('a 100 MB download streams to the client', async () => {
    const res = await request(`${gw.url}/download`, { headers: asUser() });
    let bytes = 0;
    for await (const c of res.body) bytes += (c as Buffer).length;
    expect(res.statusCode).toBe(200);
    expect(bytes).toBe(100 * MB);
  });
});

describe('request body limit', () => {
  it('a Content-Length over the limit gets 413 before anything reaches the upstream', async () => {
    uploads = [];
    const res = await request(`${gw.url}/upload`, {
      method: 'POST',
      headers: asUser('alice', { 'content-length': String(251 * MB) }),
      body: generated(251 * MB).stream,
    });
    expect(res.statusCode).toBe(413);
    expect(await res.body.json()).toMatchObject({ error_code: 'REQUEST_TOO_LARGE' });
    await new Promise((r) => setTimeout(r, 100));
    expect(uploads).toEqual([]);
  });

  it('a chunked body that grows past the limit is cut off with 413; the upstream never gets all of it', async () => {
    uploads = [];
    const res = await request(`${gw.url}/upload`, {
      method: 'POST',
      headers: asUser(),
      body: generated(260 * MB).stream,
    });
    expect(res.statusCode).toBe(413);
    expect(await res.body.json()).toMatchObject({ error_code: 'REQUEST_TOO_LARGE' });
    await new Promise((r) => setTimeout(r, 200));
    expect(uploads.length).toBeLessThanOrEqual(1);
    for (const u of uploads) expect(u.aborted || u.bytes <= 250 * MB).toBe(true);
  });
});
