#!/usr/bin/env bash
# The crash-safety test with more kills than CI runs: `podctl create` SIGKILLed at 50 moments
# (and deletes killed midway, and half as many starts), each followed by `podctl delete`, checking that nothing is left.
# Usage: sudo scripts/chaos.sh [ITERATIONS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "chaos: run as root" >&2; exit 1; }
PODCTL_CHAOS_ITERATIONS="${1:-50}" cargo test --locked --test crash -- --nocapture
