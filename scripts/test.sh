#!/usr/bin/env bash
# Runs every test: formatting, lints, Rust tests, the wasm build check and
# the end-to-end tests in real Chromium against a real Postfix + Dovecot.
# The end-to-end part needs root (it starts mail servers) and the packages
# that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts (seconds since this script began), so a
# CI log shows where the time goes.
step() { printf '\n\033[1m== %s\033[0m (at %ds)\n' "$*" "$SECONDS"; }

step "rustfmt"
cargo fmt --all --check
step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p mailmesh-core --lib --target wasm32-unknown-unknown -- -D warnings
step "cargo test"
cargo test --workspace
step "fuzz (a short run of every target)"
scripts/fuzz.sh "${MAILMESH_FUZZ_SECONDS:-10}"
step "wasm build (no imports from env)"
scripts/build-wasm.sh
step "end-to-end tests"
cargo build -p mailmesh-host --bin mailmesh --examples
[ -d tests/node_modules ] || (cd tests && npm ci)
cd tests
# Waits inside the tests give up after a stretch of idle machine time
# (harness/idle-time.js); the per-test timeout is the backstop for a hang
# that keeps the machine busy.
node --test --test-concurrency=1 --test-timeout=900000 e2e/
