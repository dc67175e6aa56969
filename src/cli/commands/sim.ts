/**
 * `keygate sim`: the Databricks workspace simulator. sim/ is a separate program that talks to
 * the gateway only over HTTP, so it is loaded by path at run time, never imported statically.
 */
import { EXIT, type Output } from '../output.js';
import { stopOnSignals } from './serve.js';

/** The slice of sim/index.ts the CLI uses, declared here so that src/ never imports sim/. */
interface SimOptions {
  host?: string;
  port?: number;
  servicePrincipals?: { clientId: string; clientSecret: string }[];
}
interface SimModule {
  startSimulator(opts?: SimOptions): Promise<{ url: string; close(): Promise<void> }>;
  demoSimOptions(): SimOptions;
}

export async function loadSimulator(): Promise<SimModule> {
  return (await import(new URL('../../../sim/index.js', import.meta.url).href)) as SimModule;
}

export async function sim(opts: { host: string; port: number }, out: Output): Promise<number> {
  const mod = await loadSimulator();
  const s = await mod.startSimulator({ ...mod.demoSimOptions(), host: opts.host, port: opts.port });
  out.out(`Databricks workspace simulator on ${s.url}`);
  out.out(`  try: curl -H "Authorization: Bearer <a PAT from sim/README.md>" ${s.url}/api/2.0/serving-endpoints`);
  await stopOnSignals(() => s.close(), out);
  return EXIT.OK;
}
