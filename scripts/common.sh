# Shared settings for the project's scripts. Source it; do not run it.
# Everything installed lives outside the clone, under $GATEWAY_CACHE, so that
# repeated runs (and CI on the same machine) reuse it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GATEWAY_CACHE="${GATEWAY_CACHE:-$HOME/.cache/ai-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GATEWAY_CACHE/target}"
VENV="$GATEWAY_CACHE/venv"
export PATH="$VENV/bin:$PATH"
# Never let an AWS SDK look for instance metadata on these machines.
export AWS_EC2_METADATA_DISABLED=true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
