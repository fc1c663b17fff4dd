#!/usr/bin/env bash
# Builds podctl's example WASI guests and copies them next to this script:
#   hello.wasm, misbehave.wasm              wasm32-wasip1 core modules
#   greeter.wasm, tcp-echo.wasm, prober.wasm  wasm32-wasip2 components
# Idempotent: a second run only re-checks (cargo is a no-op when nothing changed).
# Needs rustup (for the two WASI targets) and crates.io (first build only; Cargo.lock is pinned).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# Always this workspace's own target dir, whatever the caller's environment says.
export CARGO_TARGET_DIR="$here/target"

if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-wasip1 wasm32-wasip2 >/dev/null 2>&1 ||
    rustup target add wasm32-wasip1 wasm32-wasip2
else
  echo "build.sh: rustup not found; assuming wasm32-wasip1 and wasm32-wasip2 are installed" >&2
fi

cargo_flags=(--release --locked)
if [[ -n "${QUIET:-}" ]]; then cargo_flags+=(--quiet); fi
cargo build "${cargo_flags[@]}" --target wasm32-wasip1 -p hello -p misbehave
cargo build "${cargo_flags[@]}" --target wasm32-wasip2 -p greeter -p tcp-echo -p prober

# name, target, expected kind (the 8-byte header: version 1 = core module, 0x0d = component)
guests=(
  "hello wasm32-wasip1 module"
  "misbehave wasm32-wasip1 module"
  "greeter wasm32-wasip2 component"
  "tcp-echo wasm32-wasip2 component"
  "prober wasm32-wasip2 component"
)
status=0
for entry in "${guests[@]}"; do
  read -r name target kind <<<"$entry"
  src="target/$target/release/$name.wasm"
  header="$(head -c 8 "$src" | od -An -tx1 | tr -d ' \n')"
  case "$header" in
    0061736d01000000) got=module ;;
    0061736d0d000100) got=component ;;
    *) got="unknown($header)" ;;
  esac
  if [[ "$got" != "$kind" ]]; then
    echo "build.sh: $src is a $got, expected a $kind" >&2
    status=1
  fi
  # Copy only when changed, so an unchanged guest keeps its mtime.
  if ! cmp -s "$src" "$name.wasm"; then
    cp "$src" "$name.wasm.tmp" && chmod 0644 "$name.wasm.tmp" && mv -f "$name.wasm.tmp" "$name.wasm"
  fi
  printf '%-16s %8d bytes  %-14s %s\n' "$name.wasm" "$(stat -c %s "$name.wasm")" "$target" "$kind"
done
exit "$status"
