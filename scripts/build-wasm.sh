#!/usr/bin/env bash
# Builds mailmesh-core for wasm32 and binds it for the extension
# (extension/wasm/). Fails if the module imports anything from "env",
# which would mean a dependency expects a C runtime the browser lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${MAILMESH_WASM_PROFILE:-release}
cargo build -p mailmesh-core --lib --target wasm32-unknown-unknown --profile "$profile"
dir=$profile; [ "$profile" = dev ] && dir=debug
wasm-bindgen --target web --out-dir extension/wasm --no-typescript \
  "target/wasm32-unknown-unknown/$dir/mailmesh_core.wasm"
if command -v node >/dev/null; then
  node scripts/check-wasm-imports.mjs extension/wasm/mailmesh_core_bg.wasm
elif [ -n "${CI:-}" ]; then
  echo "node is needed to check the wasm imports" >&2; exit 1
else
  echo "note: node not found; skipped the check for imports from env" >&2
fi
