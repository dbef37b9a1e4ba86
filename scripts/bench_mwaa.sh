#!/usr/bin/env bash
# `pinpipe mwaa deploy` (first and unchanged) against boto3 re-uploading the same files, in one run
# (scripts/bench/mwaa_deploy.py): the binary and the wheel that `make test` builds (debug), the
# tests' MWAA fake and Airflow 3 venv, moto from scripts/services.sh.   BENCH_ROUNDS (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"
scripts/services.sh start moto
eval "$(scripts/services.sh env)"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
cargo build -q --bins
scripts/wheel.sh --dev --out "$PINPIPE_CACHE/wheels" >/dev/null
wheel="$(ls -t "$PINPIPE_CACHE"/wheels/pinpipe-*.whl | head -1)"
scripts/airflow_venv.sh "$wheel"
"$PINPIPE_CACHE/venv/bin/python" scripts/bench/mwaa_deploy.py "$CARGO_TARGET_DIR/debug/pinpipe" "$wheel" \
  "${BENCH_ROUNDS:-3}"
