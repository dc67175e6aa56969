// Writes docs/configuration.md and docs/keygate.schema.json from src/config/schema.ts.
import { writeFileSync } from 'node:fs';
import { configurationMarkdown, editorSchema } from '../src/config/docs.js';

writeFileSync('docs/configuration.md', configurationMarkdown());
writeFileSync('docs/keygate.schema.json', editorSchema());
console.log('wrote docs/configuration.md and docs/keygate.schema.json');
