import { ConfigError, formatIssue, loadConfig } from '../../config/load.js';
import { runtimeIssues } from '../../config/runtime-check.js';
import { EXIT, type Output } from '../output.js';

/** `keygate config check [file]`: print the problems, or "ok". */
export function configCheck(file: string | undefined, out: Output, env: NodeJS.ProcessEnv = process.env): number {
  try {
    const { config, source } = loadConfig({ file, env });
    const issues = runtimeIssues(config, env);
    if (issues.length > 0) {
      for (const i of issues) out.err(`${source}: ${formatIssue(i)}`);
      return EXIT.FAILED;
    }
    out.out(`${source}: ok`);
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const source = e.message.slice(0, e.message.indexOf(':'));
    for (const i of e.issues) out.err(`${source}: ${formatIssue(i)}`);
    return EXIT.FAILED;
  }
}
