// Validates an AsyncAPI document (a file path, or stdin) with @asyncapi/parser: the official
// AsyncAPI JSON Schema of its version, then the parser's own rules (references resolve, ids are
// unique, ...). Prints every diagnostic; exits 1 when any is an error.
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const source = readFileSync(process.argv[2] ?? 0, 'utf8');
const parser = new Parser();
const diagnostics = await parser.validate(source);
const names = ['error', 'warning', 'information', 'hint'];
for (const d of diagnostics) {
  console.log(`${names[d.severity] ?? d.severity}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const version = JSON.parse(source).asyncapi;
if (errors.length > 0) {
  console.log(`INVALID: ${errors.length} errors against AsyncAPI ${version}`);
  process.exit(1);
}
console.log(`VALID: AsyncAPI ${version}, ${diagnostics.length} diagnostics, none an error`);
