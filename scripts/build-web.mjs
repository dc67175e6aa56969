// Builds the browser pages: bundles web/{login,enroll,devices,step-up,approve,admin}.ts with esbuild and
// copies the HTML and the stylesheets next to them in dist/web/. Silent on success; exits non-zero on error.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'web');
const out = join(root, 'dist', 'web');
const pages = ['login', 'enroll', 'devices', 'step-up', 'approve', 'admin'];
const styles = ['style.css', 'admin.css'];

try {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: pages.map((p) => join(src, `${p}.ts`)),
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning', // esbuild prints its own warnings and errors
  });
  await Promise.all([
    ...pages.map((p) => copyFile(join(src, `${p}.html`), join(out, `${p}.html`))),
    ...styles.map((f) => copyFile(join(src, f), join(out, f))),
  ]);
} catch (err) {
  // esbuild has already printed its diagnostics; anything else (fs errors) is reported here.
  if (!Array.isArray(err?.errors)) console.error(`build-web: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
