// Lists the import modules of a wasm file and fails on "env": the browser
// has no such module, so such a build would fail only at run time.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
const module = new WebAssembly.Module(readFileSync(file));
const modules = [...new Set(WebAssembly.Module.imports(module).map((i) => i.module))];
if (modules.includes('env')) {
  const names = WebAssembly.Module.imports(module).filter((i) => i.module === 'env').map((i) => i.name);
  console.error(`${file} imports from "env": ${names.join(', ')}`);
  process.exit(1);
}
console.log(`${file}: imports only from ${modules.join(', ') || 'nothing'}`);
