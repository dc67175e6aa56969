/**
 * Hash routes (#/users/<id>?q=…): each view renders into a fresh element and gets an abort
 * signal that fires when the admin moves on, so late answers and polls stop writing.
 */
export interface ViewContext {
  /** The route's captures (match[1] is the first). */
  match: string[];
  /** The query part of the hash route. */
  params: URLSearchParams;
  signal: AbortSignal;
}

export type View = (root: HTMLElement, ctx: ViewContext) => void;

export interface Route {
  pattern: RegExp;
  view: View;
  title: string;
  /** The nav entry lit for this route. */
  nav: string;
}

export interface Resolved {
  route: Route;
  match: string[];
  params: URLSearchParams;
}

/** The route for a hash, or null for one that is not a console route (#main, say). */
export function resolve(routes: Route[], hash: string): Resolved | null {
  if (!hash.startsWith('#/')) return null;
  const raw = hash.slice(1);
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
  for (const route of routes) {
    const m = route.pattern.exec(path);
    if (m) {
      const match = [...m].map((x) => {
        try {
          return decodeURIComponent(x ?? '');
        } catch {
          return x ?? '';
        }
      });
      return { route, match, params };
    }
  }
  return null;
}
