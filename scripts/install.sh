#!/usr/bin/env bash
# Installs and starts mailmesh on this machine (Linux or macOS with Rust):
# builds the host and the wasm core, puts `mailmesh` in ~/.local/bin,
# registers the native host with Chrome, Chromium, Brave and Edge, starts the
# engine, and says how to load the extension. Safe to run again (updates).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin_dir=${MAILMESH_BIN_DIR:-$HOME/.local/bin}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'mailmesh install: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "Rust is needed: see https://rustup.rs, then run this again."
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32 target"
  rustup target add wasm32-unknown-unknown
fi
wb_version=$(scripts/wasm-bindgen-version.sh)
if ! wasm-bindgen --version 2>/dev/null | grep -qF "$wb_version"; then
  say "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

say "building the host (release)"
cargo build --release -p mailmesh-host
say "building the wasm core into extension/wasm"
scripts/build-wasm.sh

mkdir -p "$bin_dir"
if [ -x "$bin_dir/mailmesh" ] && "$bin_dir/mailmesh" status >/dev/null 2>&1; then
  say "stopping the running engine to update it"
  "$bin_dir/mailmesh" stop
fi
install -m 0755 target/release/mailmesh "$bin_dir/mailmesh"
say "registering the native host with your browsers"
"$bin_dir/mailmesh" install --browser all
say "starting the engine"
"$bin_dir/mailmesh" run --detach

ext_id=$(grep -o 'EXTENSION_ID: &str = "[a-p]*"' native-host/src/lib.rs | grep -o '[a-p]\{32\}')
cat <<MSG

mailmesh is installed and running ($bin_dir/mailmesh).
Load the extension once in each browser:
  1. Open chrome://extensions (brave://extensions, edge://extensions).
  2. Turn on "Developer mode" (top right).
  3. Click "Load unpacked" and choose: $repo/extension
The extension id is $ext_id. If the popup says the host is not found, run:
  $bin_dir/mailmesh doctor
MSG
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "Note: $bin_dir is not on your PATH; add it to use \`mailmesh\` directly.";; esac
