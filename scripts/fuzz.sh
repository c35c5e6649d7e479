#!/usr/bin/env bash
# Runs every fuzz target for a while (default 10 s each; scripts/test.sh
# uses the default, a longer hunt is e.g. `scripts/fuzz.sh 3600`).
# Needs cargo-fuzz; RUSTC_BOOTSTRAP lets the stable toolchain build with the
# sanitizer flags cargo-fuzz uses.
#
# A short run (up to a minute a target) only shows that every target builds
# and survives some hundred thousand inputs, so it builds unoptimised: an
# optimised build uses one codegen unit, which once took ten minutes of a
# two-core CI run. A hunt builds optimised. Both fuzz workspaces share one
# target directory, so what they have in common is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
if [ "$seconds" -le 60 ]; then build=(--dev); else build=(--release); fi
target_dir="$PWD/target/fuzz"
export RUSTC_BOOTSTRAP=1
for crate in wasm-core api; do
  for target in $(cd "$crate" && cargo fuzz list); do
    echo "fuzzing $crate/$target for ${seconds}s"
    (cd "$crate" && cargo fuzz run "${build[@]}" --target-dir "$target_dir" "$target" -- \
      -max_total_time="$seconds" -print_final_stats=0 2>&1 | tail -n 1)
  done
done
