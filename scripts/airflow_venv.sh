#!/usr/bin/env bash
# Creates (once) the Airflow virtualenv of the end-to-end tests, outside the work tree, and installs
# the given pinpipe wheel into it.   usage: scripts/airflow_venv.sh WHEEL
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION="${PINPIPE_AIRFLOW_VERSION:-3.3.2}"
CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
venv="${PINPIPE_AIRFLOW_VENV:-$CACHE/airflow-venv}"
wheel="${1:?usage: scripts/airflow_venv.sh WHEEL}"

if [ "$(cat "$venv/.airflow-version" 2>/dev/null)" != "$AIRFLOW_VERSION" ]; then
  echo "airflow: installing apache-airflow==$AIRFLOW_VERSION into $venv (once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION" "pyarrow>=14"
  echo "$AIRFLOW_VERSION" > "$venv/.airflow-version"
fi
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
