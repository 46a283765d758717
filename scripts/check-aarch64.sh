#!/usr/bin/env bash
# Cross-builds the native addon for aarch64 (the portable path: every x86 kernel is behind
# `#if defined(__x86_64__)`) and runs the kernels there under qemu:
#   1. compiles every source binding.gyp lists with aarch64-linux-gnu-g++ -std=c++17 -O2 against the
#      node-addon-api and Node headers, with binding.gyp's defines;
#   2. links them into an aarch64 shared object and checks it is AArch64 and exports the N-API entry;
#   3. links scripts/check-aarch64.cc (no N-API) with every kernel object but addon.o and runs it under
#      qemu-aarch64: GEMM, conv2d, softmax, cross-entropy, layer/RMS norm, AdamW, attention,
#      batch norm, max pool and a strided sum against naive double-precision references, and the
#      ISA dispatch reporting "generic".
# Missing tools are installed with apt-get when running as root (not with --no-install).
# Exit: 0 passed; 1 failed (message says where); 77 skipped, tools unavailable (the reason is printed).
# Usage: scripts/check-aarch64.sh [--no-install]   (env: AARCH64_CXX, QEMU_AARCH64, AARCH64_SYSROOT)
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-aarch64: unknown argument $a" >&2; exit 1 ;;
  esac
done

skip() { echo "check-aarch64: SKIP: $*"; exit 77; }
fail() { echo "check-aarch64: FAILED: $*" >&2; exit 1; }

cxx="${AARCH64_CXX:-aarch64-linux-gnu-g++}"
sysroot="${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}"
find_qemu() {
  if [ -n "${QEMU_AARCH64:-}" ]; then echo "$QEMU_AARCH64"; return; fi
  command -v qemu-aarch64 || command -v qemu-aarch64-static || true
}
qemu="$(find_qemu)"

# ---- tools --------------------------------------------------------------------------------------
if ! command -v "$cxx" >/dev/null || [ -z "$qemu" ]; then
  if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "check-aarch64: installing the cross compiler and qemu with apt-get"
    pkgs="g++-aarch64-linux-gnu qemu-user"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y -qq --no-install-recommends $pkgs >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq --no-install-recommends $pkgs >/dev/null 2>&1 ||
        apt-get install -y -qq --no-install-recommends g++-aarch64-linux-gnu qemu-user-static >/dev/null 2>&1 ||
        skip "apt-get could not install g++-aarch64-linux-gnu and qemu-user (no package index or network?)"
    fi
    qemu="$(find_qemu)"
  fi
  command -v "$cxx" >/dev/null ||
    skip "$cxx not found (apt-get install g++-aarch64-linux-gnu, or run as root with apt-get to install it)"
fi

# ---- headers, found the way binding.gyp / node-gyp find them -------------------------------------
napi_dir="$(node -p "require('node-addon-api').include_dir" 2>/dev/null)" ||
  fail "node-addon-api is not installed (run npm ci)"
[ -f "$napi_dir/napi.h" ] || fail "napi.h not found in $napi_dir"
node_ver="$(node -p process.versions.node)"
node_inc=""
for d in ${npm_config_nodedir:+"$npm_config_nodedir/include/node"} \
  "$(node -p "require('path').resolve(process.execPath, '../../include/node')")" \
  "${XDG_CACHE_HOME:-$HOME/.cache}/node-gyp/$node_ver/include/node" \
  "$HOME/.node-gyp/$node_ver/include/node" /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ]; then node_inc="$d"; break; fi
done
[ -n "$node_inc" ] || fail "Node headers (node_api.h) not found: set npm_config_nodedir or run node-gyp install"

# ---- compile -------------------------------------------------------------------------------------
mapfile -t sources < <(grep -o '"native/[^"]*\.cc"' binding.gyp | tr -d '"')
[ "${#sources[@]}" -gt 0 ] || fail "no native sources listed in binding.gyp"
out="$(mktemp -d "${TMPDIR:-/tmp}/tunekit-aarch64.XXXXXX")"
[ -n "${CHECK_AARCH64_KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
start=$SECONDS
flags=(-std=c++17 -O2 -fPIC -pthread -fno-math-errno -fno-trapping-math -Wall -Wno-unused-function
  -DNODE_GYP_MODULE_NAME=tunekit_native -DBUILDING_NODE_EXTENSION -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -I"$napi_dir" -I"$node_inc")
echo "check-aarch64: $($cxx --version | head -1); compiling ${#sources[@]} sources (binding.gyp) with -O2"
compile() {  # source -> $out/<name>.o, diagnostics in $out/<name>.log, $out/<name>.failed on error
  local n
  n="$out/$(basename "$1" .cc)"
  "$cxx" "${flags[@]}" -c "$1" -o "$n.o" 2>"$n.log" || touch "$n.failed"
}
jobs="$(nproc 2>/dev/null || echo 2)"
for s in "${sources[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  compile "$s" &
done
wait
if compgen -G "$out/*.failed" >/dev/null; then
  cat "$out"/*.log >&2
  fail "$(for f in "$out"/*.failed; do printf 'native/%s.cc ' "$(basename "$f" .failed)"; done)does not compile for aarch64 (errors above)"
fi
warnings="$(cat "$out"/*.log)"
[ -z "$warnings" ] || { echo "$warnings"; fail "warnings compiling for aarch64 (see above)"; }

# ---- link the addon ------------------------------------------------------------------------------
objs=()
kernel_objs=()
for s in "${sources[@]}"; do
  o="$out/$(basename "$s" .cc).o"
  objs+=("$o")
  [ "$(basename "$s")" = addon.cc ] || kernel_objs+=("$o")
done
"$cxx" -shared -pthread -o "$out/tunekit_native.node" "${objs[@]}" || fail "linking the aarch64 shared object"
readelf="${cxx%g++}readelf"
command -v "$readelf" >/dev/null || readelf=readelf
if command -v "$readelf" >/dev/null; then
  [[ "$("$readelf" -h "$out/tunekit_native.node")" =~ Machine:[[:space:]]*AArch64 ]] ||
    fail "tunekit_native.node is not AArch64"
  [[ "$("$readelf" --dyn-syms -W "$out/tunekit_native.node")" == *napi_register_module_v1* ]] ||
    fail "tunekit_native.node does not export napi_register_module_v1"
fi
echo "check-aarch64: linked tunekit_native.node for AArch64 ($(($(stat -c %s "$out/tunekit_native.node") / 1024)) KiB)"

# ---- kernel driver under qemu --------------------------------------------------------------------
# -O1: GCC 12's aarch64 vectoriser has an internal error on the driver's reference loops at -O2
# (the kernels themselves build at -O2 above); the references need no speed.
"$cxx" -std=c++17 -O1 -pthread -Wall -Inative scripts/check-aarch64.cc "${kernel_objs[@]}" -o "$out/check-aarch64" ||
  fail "building the kernel driver (scripts/check-aarch64.cc) against the kernel objects"
[ -n "$qemu" ] || skip "built for aarch64, but qemu-aarch64 was not found to run the kernel checks (apt-get install qemu-user)"
run() {
  if ! "$qemu" -L "$sysroot" "$out/check-aarch64" "$@" >"$out/run.log" 2>&1; then
    cat "$out/run.log"
    fail "kernel checks under $qemu ($* threads) failed"
  fi
}
built=$((SECONDS - start))
run 3
grep -v '^ok ' "$out/run.log" || true
worst="$(sed -n 's/^ok *\(.*[^ ]\) *rel err \([^ ]*\).*/\2 \1/p' "$out/run.log" | sort -g | tail -1)"
run 1
echo "check-aarch64: $(grep -c '^ok ' "$out/run.log") kernel checks passed under $(basename "$qemu") with 3 and 1 threads" \
  "(largest error relative to the reference's max |value|: ${worst:-none})"
echo "check-aarch64: passed in $((SECONDS - start)) s ($built s cross-compiling and linking, $((SECONDS - start - built)) s under qemu)"
