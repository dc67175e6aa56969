import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * CLI tests run the real `bin/keygate.js`, which loads the build in dist/. `npm test` builds
 * first; a bare `npx vitest` builds here when there is no build yet.
 */
export default function setup(): void {
  if (!existsSync(new URL('../dist/src/cli/main.js', import.meta.url))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  }
}
