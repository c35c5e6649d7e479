#!/usr/bin/env bash
# Runs every fuzz target for a while (default 10 s each; scripts/test.sh
# uses the default, a longer hunt is e.g. `scripts/fuzz.sh 3600`).
# Needs cargo-fuzz; RUSTC_BOOTSTRAP lets the stable toolchain build with the
# sanitizer flags cargo-fuzz uses.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
export RUSTC_BOOTSTRAP=1
for crate in wasm-core native-host; do
  for target in $(cd "$crate" && cargo fuzz list); do
    echo "fuzzing $crate/$target for ${seconds}s"
    (cd "$crate" && cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=0 2>&1 | tail -n 1)
  done
done
