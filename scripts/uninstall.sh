#!/usr/bin/env bash
# Undoes scripts/install.sh: stops the engine, removes the native host
# manifests and the binary. Your node home (keys, data) stays unless you
# pass --purge.
set -euo pipefail
bin_dir=${MAILMESH_BIN_DIR:-$HOME/.local/bin}
bin="$bin_dir/mailmesh"
purge=no
[ "${1:-}" = "--purge" ] && purge=yes

if [ -x "$bin" ]; then
  home=$("$bin" status --json 2>/dev/null | sed -n 's/.*"home": "\(.*\)".*/\1/p' || true)
  "$bin" stop 2>/dev/null || true
  "$bin" uninstall --browser all
  rm -f "$bin"
  echo "removed $bin"
  if [ "$purge" = yes ] && [ -n "$home" ]; then
    rm -rf "$home"
    echo "removed the node home $home"
  fi
else
  echo "mailmesh is not installed in $bin_dir"
fi
echo "Remove the extension from chrome://extensions if you loaded it."
