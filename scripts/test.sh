#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the services (Tansu, moto, MariaDB),
# runs the Rust tests with nextest and the end-to-end tests with pytest against the real services.
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
status=0
cargo nextest run --no-fail-fast || status=$?
export PINPIPE_BIN="$CARGO_TARGET_DIR/debug/pinpipe"
"$venv/bin/python" -m pytest tests -ra "$@" || status=$?
exit "$status"
