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

# The cached target dir only grows: a change of features, flags or dependency
# versions leaves the old artifacts behind (cargo has no stable garbage
# collection), and a full disk makes the linker die with SIGBUS. Before a
# test run this drops the last run's process logs and emulator state; then,
# if the target dir is over its budget or the disk is nearly full, the
# incremental caches; and if that is still not enough, the whole target dir
# (the run then rebuilds it from the registry cache, which is kept).
prune_target_cache() {
  local target="$CARGO_TARGET_DIR"
  local budget_gb="${GATEWAY_TARGET_BUDGET_GB:-20}" min_free_gb="${GATEWAY_MIN_FREE_GB:-12}"
  [[ -d $target ]] || return 0
  rm -rf "$target/test-runs" "$target"/conformance-*.log "$target"/wrangler-state-*
  local size_gb free_gb
  measure() {
    size_gb="$(du -s --block-size=1G "$target" | cut -f1)"
    free_gb="$(df --output=avail --block-size=1G "$target" | tail -n 1 | tr -d ' ')"
  }
  measure
  (( size_gb > budget_gb || free_gb < min_free_gb )) || return 0
  log "target dir ${size_gb} GB, ${free_gb} GB free on its disk: dropping the incremental caches"
  rm -rf "$target"/*/incremental "$target"/*/*/incremental
  measure
  # A full disk with a small target dir is somebody else's: rebuilding ours
  # would not help.
  (( size_gb > budget_gb || (free_gb < min_free_gb && size_gb >= 4) )) || return 0
  log "target dir ${size_gb} GB, ${free_gb} GB free: removing it (everything is rebuilt)"
  rm -rf "$target"
  mkdir -p "$target"
  if (( free_gb < min_free_gb )); then
    measure
    log "warning: only ${free_gb} GB free on the disk of $target; a build may fail for lack of space"
  fi
}
