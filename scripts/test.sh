#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start their own containerd (temporary
# root, state and socket) and need root, runc and the CNI plugins; installs those and builds the
# example WASM guests first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test: run as root (the integration tests create namespaces and CNI networks)" >&2; exit 1; }
scripts/setup.sh
QUIET=1 wasm-examples/build.sh >/dev/null   # the WASM guests the tests run
cargo test --workspace --locked "$@"
scripts/plugin-snippet.sh   # plugins/README.md's plugin builds on its own
