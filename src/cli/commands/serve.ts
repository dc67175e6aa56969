import { ConfigError, formatIssue, loadConfig } from '../../config/load.js';
import { runtimeIssues } from '../../config/runtime-check.js';
import type { Config } from '../../config/schema.js';
import { Gateway } from '../../server/gateway.js';
import { EXIT, type Output } from '../output.js';

/** Load and check the config; print each problem on its own line. */
export function loadOrReport(
  file: string | undefined,
  out: Output,
  env: NodeJS.ProcessEnv,
): { config: Config; source: string } | undefined {
  try {
    const loaded = loadConfig({ file, env });
    const issues = runtimeIssues(loaded.config, env);
    if (issues.length === 0) return loaded;
    for (const i of issues) out.err(`${loaded.source}: ${formatIssue(i)}`);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    out.err(e.message);
  }
  return undefined;
}

/** Stop on SIGTERM/SIGINT: drain in-flight requests, then exit. A second signal exits at once. */
export function stopOnSignals(stop: () => Promise<void>, out: Output): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        out.err(`${sig} again: exiting without waiting`);
        process.exit(EXIT.FAILED);
      }
      stopping = true;
      out.err(`${sig}: draining in-flight requests…`);
      stop().then(resolve, (e: unknown) => {
        out.err(`shutdown failed: ${(e as Error).message}`);
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** `keygate serve`: run the gateway until a signal. */
export async function serve(file: string | undefined, out: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const loaded = loadOrReport(file, out, env);
  if (!loaded) return EXIT.FAILED;
  const gw = await Gateway.create({ config: loaded.config, env });
  const url = await gw.listen();
  out.err(`keygate: listening on ${url} (public URL ${gw.publicOrigin}; config: ${loaded.source})`);
  await stopOnSignals(() => gw.close(), out);
  return EXIT.OK;
}
