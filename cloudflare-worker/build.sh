#!/bin/sh
# Builds the Worker (build/index.js + build/index_bg.wasm) with worker-build,
# pointing it at local wasm-bindgen, wasm-opt and esbuild so it downloads
# nothing. wrangler runs this as its [build] command. scripts/bootstrap
# installs the tools. GATEWAY_WORKER_FEATURES adds cargo features (the
# conformance suite builds with `test-hooks`).
set -eu
cd "$(dirname "$0")"
cache="${GATEWAY_CACHE:-$HOME/.cache/ai-gateway}"
export PATH="$cache/tools/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$cache/tools/bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"
for tool in worker-build "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build.sh: $tool not found; run scripts/bootstrap (it installs worker-build, wasm-bindgen-cli and the npm tools)" >&2
    exit 1
  }
done
# Size over speed for the wasm (the Lambda release build keeps opt-level 3).
export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# wasm-bindgen needs the target_features section that `strip` removes.
export CARGO_PROFILE_RELEASE_STRIP=false
exec worker-build --release ${GATEWAY_WORKER_FEATURES:+--features "$GATEWAY_WORKER_FEATURES"}
