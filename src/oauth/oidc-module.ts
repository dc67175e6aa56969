/**
 * oidc-provider is loaded when a gateway starts, not when a module imports it: on Node 20 it
 * prints an "Unsupported runtime" warning at import, which CLI commands that never run the
 * authorization server (`keygate token`, `admin …`) should not show.
 */
export type OidcModule = typeof import('oidc-provider');

let loaded: OidcModule | undefined;

export async function loadOidc(): Promise<OidcModule> {
  loaded ??= await import('oidc-provider');
  return loaded;
}

/** The loaded module; only valid after loadOidc() resolved (the gateway awaits it at start). */
export function oidcModule(): OidcModule {
  if (loaded === undefined) throw new Error('oidc-provider is not loaded yet');
  return loaded;
}
