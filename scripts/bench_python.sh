#!/usr/bin/env bash
# Python binding benchmark, side by side in one run on this machine:
#   pinpipe.batch(...) from Python  vs  the `pinpipe batch` command, on the same landing zone (a
#     fresh lake each run, runs alternated): the binding should add nothing;
#   pinpipe.query(<1M-row table>) into a pyarrow.Table  vs  the deltalake package's
#     DeltaTable(...).to_pyarrow_table() on the same table.
# Both use release builds: the native CLI and a release wheel built on the same target directory,
# or, with BENCH_WHEEL=path/to/a/release.whl, that wheel and the `pinpipe` command it installs (the
# same compiled code on both sides; the command adds the Python interpreter's start, ~0.05 s).
#   BENCH_EVENTS (default 1000000: 3M landed records; the 1M-row table is _raw_pin)
#   BENCH_RUNS (default 3)   BENCH_DIR (work directory; default a temporary one, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"
EVENTS="${BENCH_EVENTS:-1000000}"
RUNS="${BENCH_RUNS:-3}"
VENV="$PINPIPE_CACHE/bench-python-venv"
BIN="$CARGO_TARGET_DIR/release/pinpipe"

if [ -n "${BENCH_WHEEL:-}" ]; then
  wheel="$BENCH_WHEEL"
  BIN="$VENV/bin/pinpipe"
else
  cargo build --release -q -p pinpipe-cli
  scripts/wheel.sh --release-local --out "$PINPIPE_CACHE/wheels-release" >/dev/null
  wheel="$(ls -t "$PINPIPE_CACHE"/wheels-release/pinpipe-*.whl | head -1)"
fi
if ! "$VENV/bin/python" -c 'import deltalake, pyarrow' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'deltalake>=1,<2' 'pyarrow>=15'
fi
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheel"

if [ -n "${BENCH_DIR:-}" ]; then
  work="$BENCH_DIR"; mkdir -p "$work"
else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fi
export PINPIPE_LOG=warn
"$BIN" emulate landing --landing "$work/landing" --events "$EVENTS" --flush-size 1000 --seed 100 >/dev/null
"$VENV/bin/python" scripts/bench/python_bench.py "$BIN" "$work" "$RUNS"
