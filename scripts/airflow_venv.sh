#!/usr/bin/env bash
# Creates (once) the Airflow virtualenvs of the end-to-end tests, outside the work tree — Airflow 3
# and Airflow 2.10, the two lines pinpipe.airflow supports — and installs the given pinpipe wheel
# into both.   usage: scripts/airflow_venv.sh WHEEL
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
wheel="${1:?usage: scripts/airflow_venv.sh WHEEL}"

make_venv() {  # VENV VERSION
  local venv="$1" version="$2"
  if [ "$(cat "$venv/.airflow-version" 2>/dev/null)" != "$version" ]; then
    echo "airflow: installing apache-airflow==$version into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "apache-airflow==$version" "pyarrow>=14"
    echo "$version" > "$venv/.airflow-version"
  fi
  "$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
}

make_venv "${PINPIPE_AIRFLOW_VENV:-$CACHE/airflow-venv}" "${PINPIPE_AIRFLOW_VERSION:-3.3.2}"
make_venv "${PINPIPE_AIRFLOW2_VENV:-$CACHE/airflow2-venv}" "${PINPIPE_AIRFLOW2_VERSION:-2.10.5}"
