#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the services (Tansu, moto, MariaDB),
# builds the wheel into a test venv and an Airflow venv, runs the Rust tests with nextest and the
# end-to-end tests (CLI, Python API, Airflow, MWAA against a fake control plane and a real
# Airflow REST API) with pytest against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."

export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"

scripts/setup.sh
scripts/services.sh up
eval "$(scripts/services.sh env)"

# Python tools for the end-to-end tests, in a venv outside the work tree.
venv="$PINPIPE_CACHE/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
req_stamp="$venv/.requirements.sha"
if [ ! -f "$req_stamp" ] || ! sha256sum --quiet -c "$req_stamp" >/dev/null 2>&1; then
  "$venv/bin/pip" install -q -r tests/requirements.txt
  sha256sum tests/requirements.txt > "$req_stamp"
fi

cargo build --bins
# The wheel (debug profile, on the shared target directory: only the extension crate is extra) into
# the test venv and into an Airflow venv, both cached outside the work tree.
scripts/wheel.sh --dev --out "$PINPIPE_CACHE/wheels"
wheel="$(ls -t "$PINPIPE_CACHE"/wheels/pinpipe-*.whl | head -1)"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
scripts/airflow_venv.sh "$wheel"

status=0
cargo nextest run --no-fail-fast || status=$?
export PINPIPE_BIN="$CARGO_TARGET_DIR/debug/pinpipe"
export PINPIPE_WHEEL="$wheel"
export PINPIPE_AIRFLOW_VENV="${PINPIPE_AIRFLOW_VENV:-$PINPIPE_CACHE/airflow-venv}"
export PINPIPE_AIRFLOW2_VENV="${PINPIPE_AIRFLOW2_VENV:-$PINPIPE_CACHE/airflow2-venv}"
"$venv/bin/python" -m pytest tests -ra "$@" || status=$?
exit "$status"
