#!/usr/bin/env node
// Thin shim: the CLI is compiled to dist/ by `npm run build`.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
