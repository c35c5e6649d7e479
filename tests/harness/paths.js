// Where the harness finds the things it runs.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXTENSION_DIR = path.join(REPO, 'extension');
export const CHROMIUM = process.env.MAILMESH_CHROMIUM ?? '/usr/bin/chromium';

/** The extension id, fixed by the `key` in extension/manifest.json. */
export const EXTENSION_ID = 'pjbfgnkmdcidapkfndhmnmhimjcloilo';

/** The mailmesh binary: $MAILMESH_BIN, else the debug build. */
export function mailmeshBin() {
  const bin = process.env.MAILMESH_BIN ?? path.join(REPO, 'target/debug/mailmesh');
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist; run \`cargo build\` first`);
  return bin;
}

/** The impostor used by the mesh tests (native-host/examples/impostor.rs). */
export function impostorBin() {
  const bin = path.join(REPO, 'target/debug/examples/impostor');
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist; run \`cargo build --examples\` first`);
  return bin;
}

/** Fails early with the fix when the wasm core has not been built. */
export function checkExtensionBuilt() {
  const wasm = path.join(EXTENSION_DIR, 'wasm/mailmesh_core_bg.wasm');
  if (!fs.existsSync(wasm)) throw new Error(`${wasm} is missing; run scripts/build-wasm.sh first`);
}
