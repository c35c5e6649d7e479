#!/usr/bin/env bash
# Builds mailmesh-core for wasm32 and binds it for the extension
# (extension/wasm/). Fails if the module imports anything from "env",
# which would mean a dependency expects a C runtime the browser lacks.
#
# MAILMESH_WASM_VARIANT=simd128 (default) or scalar: simd128 is what
# `scripts/bench core` measured faster (BLAKE3 and ChaCha20 vectorise); all
# browsers mailmesh supports have wasm SIMD. MAILMESH_WASM_OUT overrides
# the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${MAILMESH_WASM_VARIANT:-simd128}
out=${MAILMESH_WASM_OUT:-extension/wasm}
features=()
case "$variant" in
  simd128) export RUSTFLAGS="-C target-feature=+simd128"; features=(--features simd) ;;
  scalar) export RUSTFLAGS="" ;;
  *) echo "unknown MAILMESH_WASM_VARIANT $variant" >&2; exit 2 ;;
esac
# One target directory per variant, so switching does not rebuild the other.
target_dir="target/wasm-$variant"
CARGO_TARGET_DIR="$target_dir" cargo build -p mailmesh-core --lib --target wasm32-unknown-unknown --profile wasm "${features[@]}"
wasm-bindgen --target web --out-dir "$out" --no-typescript \
  "$target_dir/wasm32-unknown-unknown/wasm/mailmesh_core.wasm"
if command -v node >/dev/null; then
  node scripts/check-wasm-imports.mjs "$out/mailmesh_core_bg.wasm"
elif [ -n "${CI:-}" ]; then
  echo "node is needed to check the wasm imports" >&2; exit 1
else
  echo "note: node not found; skipped the check for imports from env" >&2
fi
