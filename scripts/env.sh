# Sourced by the other scripts: where the tools live and the versions this project pins.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
# Tools that are not cargo binaries live outside the clone, so a fresh clone reuses them.
TOOLS_DIR="${CALLQUEUE_TOOLS_DIR:-$HOME/.local/share/callqueue-tools}"
export TOOLS_DIR
TRUNK_VERSION="0.21.14"
BINARYEN_VERSION="132"
AXE_VERSION="4.14.1"
TERSER_VERSION="5.51.4"
export AXE_VERSION
export PATH="$TOOLS_DIR/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# trunk must use the installed wasm-bindgen and wasm-opt, never download its own.
export TRUNK_OFFLINE=true

# The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock"
}

step() { printf '\n==> %s\n' "$*"; }
