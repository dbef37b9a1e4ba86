#!/usr/bin/env bash
# Stream benchmark, side by side on the same pre-filled Kinesis streams (kinesalite) in one run:
#   a bare GetRecords loop per shard with aws-sdk-kinesis (`pinpipe streams read --count`, the
#   ceiling) against `pinpipe stream --until-caught-up` (read, decode, clean, commit to Delta),
#   records/s and CPU-seconds per MB; then the PutRecord-to-visible-row latency p50/p99 of a
#   `pinpipe stream` daemon at a steady put rate (scripts/bench/stream_bench.py).
# Everything shares this machine's cores (kinesalite included): read the ratios.
#   BENCH_STREAM_RECORDS (records per stream, default 50000)
#   BENCH_STREAM_RATE (records/s per stream in the latency run, default 200)
#   BENCH_STREAM_SECONDS (length of the latency run, default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"
scripts/setup.sh
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
venv="$PINPIPE_CACHE/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import boto3, pyarrow' 2>/dev/null || "$venv/bin/pip" install -q -r tests/requirements.txt
cargo build --release -q -p pinpipe-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/bench/stream_bench.py --bin "$CARGO_TARGET_DIR/release/pinpipe" --work "$work" \
  --records "${BENCH_STREAM_RECORDS:-50000}" --rate "${BENCH_STREAM_RATE:-200}" --seconds "${BENCH_STREAM_SECONDS:-20}"
