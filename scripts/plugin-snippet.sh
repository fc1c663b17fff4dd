#!/usr/bin/env bash
# Builds the plugin crate of plugins/README.md's snippets (the blocks after `<!-- snippet: PATH -->`)
# as a crate of its own in a temporary directory, outside podctl's workspace, with a path dependency
# on crates/podctl-plugin: proves that the README's snippet compiles and that podctl-plugin builds
# on its own (no workspace inheritance, no protoc). CARGO_TARGET_DIR is reused when set.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
crate=$(mktemp -d /tmp/podctl-plugin-snippet.XXXXXX)
# With a shared CARGO_TARGET_DIR its binary would land next to podctl's, where podctl finds plugins:
# it goes again at the end.
trap 'rm -rf "$crate"; [ -z "${CARGO_TARGET_DIR:-}" ] || rm -f "$CARGO_TARGET_DIR/debug/podctl-runtime-mine"' EXIT
awk -v out="$crate" '
  /<!-- snippet: .* -->/ { path = $3; next }
  path != "" && /^ *```/ && !inside { inside = 1; file = out "/" path; system("mkdir -p \"$(dirname " file ")\""); printf "" > file; next }
  inside && /^ *```/ { inside = 0; path = ""; close(file); next }
  inside { sub(/^   /, ""); print >> file }
' plugins/README.md
for file in Cargo.toml src/main.rs; do
  [ -s "$crate/$file" ] || { echo "plugin-snippet: plugins/README.md has no snippet for $file" >&2; exit 1; }
done
sed -i "s#\"…/crates/podctl-plugin\"#\"$root/crates/podctl-plugin\"#" "$crate/Cargo.toml"
grep -q "$root/crates/podctl-plugin" "$crate/Cargo.toml" || { echo "plugin-snippet: the Cargo.toml snippet has no podctl-plugin path dependency" >&2; exit 1; }
# A workspace of its own: nothing is inherited from podctl's.
printf '\n[workspace]\n' >> "$crate/Cargo.toml"
cp Cargo.lock "$crate/Cargo.lock"   # the versions podctl is tested with; cargo drops the rest
(cd "$crate" && cargo build --quiet)
binary=${CARGO_TARGET_DIR:-$crate/target}/debug/podctl-runtime-mine
# It runs: without --socket it says how the agent starts it, and fails.
if usage=$("$binary" 2>&1); then
  echo "plugin-snippet: $binary ran without --socket" >&2; exit 1
fi
case "$usage" in *"--socket PATH"*) ;; *) echo "plugin-snippet: unexpected output: $usage" >&2; exit 1 ;; esac
echo "plugin-snippet: the README's plugin builds outside the workspace ($binary)"
