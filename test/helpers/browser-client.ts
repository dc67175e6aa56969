/**
 * A minimal cookie-keeping HTTP client that behaves like a same-origin browser page: it sends
 * Origin on state-changing requests and keeps the cookies the gateway sets.
 */
import { request } from 'undici';

export interface JsonResponse<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export class BrowserClient {
  readonly cookies = new Map<string, string>();

  constructor(
    readonly baseUrl: string,
    readonly origin: string = baseUrl,
  ) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private remember(setCookie: string | string[] | undefined): void {
    for (const c of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const [pair, ...attrs] = c.split(';');
      const eq = (pair ?? '').indexOf('=');
      const name = (pair ?? '').slice(0, eq).trim();
      const value = (pair ?? '').slice(eq + 1).trim();
      if (attrs.some((a) => /max-age=0/i.test(a.trim())) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async call<T = unknown>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<JsonResponse<T>> {
    const h: Record<string, string> = { accept: 'application/json', ...headers };
    if (this.cookies.size > 0) h.cookie = this.cookieHeader();
    if (method !== 'GET' && h.origin === undefined) h.origin = this.origin;
    if (h.origin === '') delete h.origin; // an explicit '' means: send no Origin header
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await request(`${this.baseUrl}${path}`, {
      method,
      headers: h,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    this.remember(res.headers['set-cookie']);
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: (text === '' ? null : JSON.parse(text)) as T };
  }

  post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.call<T>('POST', path, body ?? {}, headers);
  }

  get<T = unknown>(path: string, headers?: Record<string, string>) {
    return this.call<T>('GET', path, undefined, headers);
  }
}
