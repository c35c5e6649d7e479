#!/usr/bin/env bash
# One command to see mailmesh work: a local mail server and three nodes on a
# test LAN (network namespaces: run as root), confirmed by mail; an
# attachment mailed to the owner appears in every node's drive. With a
# display the browsers are visible windows, otherwise headless; screenshots
# go to demo-output/ either way. `scripts/demo.sh --keep` leaves the nodes
# running; `scripts/demo.sh --pictures` also retakes the README's pictures
# (docs/pictures/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d tests/node_modules ] || (cd tests && npm ci --no-audit --no-fund)
cargo build -q -p mailmesh-host --bin mailmesh
[ -f extension/wasm/mailmesh_core_bg.wasm ] || scripts/build-wasm.sh
if [ -n "${DISPLAY:-}" ]; then export MAILMESH_SHOW_BROWSERS=1; fi
exec node tests/demo/demo.js "$@"
