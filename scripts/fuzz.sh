#!/usr/bin/env bash
# Fuzzes the manifest parser and archive import for SECONDS (default 600, split between the two;
# CI runs 60). A crash prints the seed and writes the input to /tmp/podctl-fuzz-*.bin; rerun one
# with PODCTL_FUZZ_SEED=N. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PODCTL_FUZZ_SECS="${1:-600}" cargo test --locked --release --test fuzz -- --nocapture
