#!/usr/bin/env bash
# services.sh - start, stop and inspect the real services that pinpipe's end-to-end tests and
# local runs use (DESIGN.md, "Real services for tests and local runs"):
#
#   tansu    Kafka-protocol broker (Tansu 0.6, cargo-installed once and cached), sqlite storage
#            that survives a broker restart
#   moto     moto's server (S3), in memory: a restart forgets everything
#   kinesis  kinesalite (Kinesis API, from npm: closer to Kinesis than moto's, whose SplitShard and
#            MergeShards move or copy the parent's records into the children), in memory
#   mariadb  a MariaDB instance owned by the project: its own datadir, socket, pid file and port;
#            the machine's own MariaDB (if any) is never touched
#
# Usage: scripts/services.sh up|down|status|env
#        scripts/services.sh start|stop|restart|logs NAME      (NAME: tansu, moto, kinesis, mariadb)
#
# `up` installs whatever is missing (cargo, pip, apt; run as root on Debian), starts only what is
# not running and waits until each service answers. `env` prints `export` lines to `eval` in a
# test harness. Everything listens on 127.0.0.1 only. Services run detached (setsid) and keep
# running after this script exits; their output goes to $PINPIPE_SERVICES_DIR/logs/NAME.log.
#
# Environment (defaults in brackets):
#   PINPIPE_CACHE                 [$HOME/.cache/pinpipe]  cached tansu build, moto venv fallback
#   PINPIPE_SERVICES_DIR          [$PINPIPE_CACHE/services]  state, logs/, run/ (pid files)
#   PINPIPE_KAFKA_PORT            [19092]
#   PINPIPE_MOTO_PORT             [15000]
#   PINPIPE_KINESIS_PORT          [14567]
#   PINPIPE_MARIADB_PORT          [13306]
#   PINPIPE_TEST_DB_PASSWORD      [pinpipe-test-pw]  password of MariaDB's root over TCP
#   PINPIPE_TANSU_BIN             [$PINPIPE_CACHE/tansu/bin/tansu]  use this tansu binary
#   PINPIPE_SERVICES_TIMEOUT      [60]    seconds to wait for a service to answer
#   PINPIPE_STOP_TIMEOUT          [20]    seconds between SIGTERM and SIGKILL
#   PINPIPE_TANSU_BUILD_TIMEOUT   [3600]  seconds to wait for the one-off tansu build
#
# Exit status: 0 on success; 1 with a one-line cause (and the log to read) on failure; 2 on a
# usage error. `status` always exits 0.

set -euo pipefail

readonly SERVICES=(tansu moto kinesis mariadb)
readonly TANSU_VERSION=0.6.0
readonly TANSU_FEATURES=dynostore,libsql

CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
DIR="${PINPIPE_SERVICES_DIR:-$CACHE/services}"
KAFKA_PORT="${PINPIPE_KAFKA_PORT:-19092}"
MOTO_PORT="${PINPIPE_MOTO_PORT:-15000}"
KINESIS_PORT="${PINPIPE_KINESIS_PORT:-14567}"
MARIADB_PORT="${PINPIPE_MARIADB_PORT:-13306}"
DB_PASSWORD="${PINPIPE_TEST_DB_PASSWORD:-pinpipe-test-pw}"
TANSU_ROOT="$CACHE/tansu"
TANSU_BIN="${PINPIPE_TANSU_BIN:-$TANSU_ROOT/bin/tansu}"
TANSU_BUILD_LOG="$CACHE/tansu-install.log"
READY_TIMEOUT="${PINPIPE_SERVICES_TIMEOUT:-60}"
STOP_TIMEOUT="${PINPIPE_STOP_TIMEOUT:-20}"
BUILD_TIMEOUT="${PINPIPE_TANSU_BUILD_TIMEOUT:-3600}"

MDB_DIR="$DIR/mariadb"
MDB_DATA="$MDB_DIR/data"
MDB_CNF="$MDB_DIR/my.cnf"
MDB_SOCK="$DIR/run/mariadb.sock"
OS_USER="$(id -un)"
MOTO_PY=""
APT_UPDATED=0

# ---------------------------------------------------------------------------------------------
# messages

say() { printf 'services: %s\n' "$*" >&2; }

die() {
    printf 'services: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/services.sh COMMAND [NAME]

commands:
  up              install what is missing, start every service not running, wait until all answer
  down            stop every service (SIGTERM, then SIGKILL after $PINPIPE_STOP_TIMEOUT s)
  status          one line per service: state, port, pid, log
  env             print `export` lines for a test harness to eval
  start NAME      start one service (idempotent) and wait until it answers
  stop NAME       stop one service
  restart NAME    stop, then start one service
  logs NAME       print the last 200 lines of a service's log (`logs NAME -f` follows it)

services: tansu (Kafka broker), moto (S3), kinesis (kinesalite), mariadb (MySQL)
EOF
}

log_file() { printf '%s/logs/%s.log' "$DIR" "$1"; }
pid_file() { printf '%s/run/%s.pid' "$DIR" "$1"; }

port_of() {
    case "$1" in
        tansu) printf '%s' "$KAFKA_PORT" ;;
        moto) printf '%s' "$MOTO_PORT" ;;
        kinesis) printf '%s' "$KINESIS_PORT" ;;
        mariadb) printf '%s' "$MARIADB_PORT" ;;
    esac
}

# A word that the service's command line contains: guards against a recycled pid.
cmd_marker() {
    case "$1" in
        tansu) printf 'tansu' ;;
        moto) printf 'moto.server' ;;
        kinesis) printf 'kinesalite' ;;
        mariadb) printf 'mariadbd' ;;
    esac
}

check_name() {
    local name="$1" s
    for s in "${SERVICES[@]}"; do
        [[ "$name" == "$s" ]] && return 0
    done
    printf 'services: unknown service %q (expected one of: %s)\n' "$name" "${SERVICES[*]}" >&2
    exit 2
}

check_config() {
    local p
    for p in "$KAFKA_PORT" "$MOTO_PORT" "$KINESIS_PORT" "$MARIADB_PORT"; do
        if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
            die "invalid port: $p"
        fi
    done
    if (($(printf '%s\n' "$KAFKA_PORT" "$MOTO_PORT" "$KINESIS_PORT" "$MARIADB_PORT" | sort -u | wc -l) != 4)); then
        die "the four ports must differ (kafka $KAFKA_PORT, moto $MOTO_PORT, kinesis $KINESIS_PORT, mariadb $MARIADB_PORT)"
    fi
    for p in "$READY_TIMEOUT" "$STOP_TIMEOUT" "$BUILD_TIMEOUT"; do
        [[ "$p" =~ ^[0-9]+$ ]] || die "invalid timeout: $p"
    done
    # A unix socket path must fit in sun_path (108 bytes).
    ((${#MDB_SOCK} < 100)) || die "PINPIPE_SERVICES_DIR is too long for a unix socket path: $MDB_SOCK"
}

# ---------------------------------------------------------------------------------------------
# processes

# Prints the pid of the running service NAME, or fails.
running_pid() {
    local name="$1" pf pid cmdline
    pf="$(pid_file "$name")"
    [[ -s "$pf" ]] || return 1
    pid="$(<"$pf")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$(cmd_marker "$name")"* ]] || return 1
    printf '%s' "$pid"
}

port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# launch NAME WORKDIR COMMAND...: start COMMAND detached in its own session, output appended to
# the service's log, its pid in the service's pid file (written, atomically, by the process
# itself, which then execs COMMAND, so the pid is the service's own).
launch() {
    local name="$1" workdir="$2" log pf
    shift 2
    log="$(log_file "$name")"
    pf="$(pid_file "$name")"
    rm -f "$pf"
    printf '\n==== %s services.sh: starting %s ====\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
    (
        cd "$workdir"
        # fds 8 and 9 hold this script's locks: the service must not inherit them.
        # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash
        setsid nohup bash -c 'echo "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pf" "$@" \
            </dev/null >>"$log" 2>&1 8>&- 9>&- &
    )
}

show_log_tail() {
    local log
    log="$(log_file "$1")"
    [[ -f "$log" ]] || return 0
    printf -- '--- last lines of %s ---\n' "$log" >&2
    tail -n 15 "$log" >&2 || true
    printf -- '---\n' >&2
}

# wait_ready NAME: wait until the service's process is up and NAME_ready succeeds; on failure
# or timeout, stop what was started and fail pointing at the log.
wait_ready() {
    local name="$1" deadline
    deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if running_pid "$name" >/dev/null; then
            if "${name}_ready"; then
                return 0
            fi
        elif [[ -s "$(pid_file "$name")" ]] && ! running_pid "$name" >/dev/null; then
            show_log_tail "$name"
            die "$name exited while starting; see $(log_file "$name")"
        fi
        sleep 0.5
    done
    show_log_tail "$name"
    stop_service "$name" >/dev/null 2>&1 || true
    die "$name did not answer on 127.0.0.1:$(port_of "$name") within ${READY_TIMEOUT}s; see $(log_file "$name")"
}

# signal_service SIG PID: signal the service's process group (setsid made PID its leader, so
# the group is exactly what launch started), or PID alone if it leads no group.
signal_service() {
    kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

# stop_service NAME: SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL.
stop_service() {
    local name="$1" pid deadline
    if ! pid="$(running_pid "$name")"; then
        rm -f "$(pid_file "$name")"
        say "$name: not running"
        return 0
    fi
    signal_service TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name: still running ${STOP_TIMEOUT}s after SIGTERM, sending SIGKILL (pid $pid)"
        signal_service KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do
            sleep 0.1
        done
    fi
    rm -f "$(pid_file "$name")"
    printf '==== %s services.sh: stopped %s ====\n' "$(date -u +%FT%TZ)" "$name" >>"$(log_file "$name")"
    say "$name: stopped (pid $pid)"
}

# ---------------------------------------------------------------------------------------------
# installation

as_root() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

apt_install() {
    local log="$DIR/logs/install.log"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if ((APT_UPDATED == 0)); then
        say "apt-get update (log: $log)"
        as_root apt-get update >>"$log" 2>&1 || die "apt-get update failed; see $log"
        APT_UPDATED=1
    fi
    say "apt-get install $* (log: $log)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
        >>"$log" 2>&1 || die "apt-get install $* failed; see $log"
}

# Prints the pid of a `cargo install tansu ... --root TANSU_ROOT` running on this machine, if any
# (started by another run of this script or by hand).
tansu_build_pid() {
    local f cmdline
    for f in /proc/[0-9]*/cmdline; do
        cmdline="$(tr '\0' ' ' <"$f" 2>/dev/null)" || continue
        if [[ "$cmdline" == *cargo*install*tansu*"--root $TANSU_ROOT "* ]]; then
            f="${f#/proc/}"
            printf '%s' "${f%/cmdline}"
            return 0
        fi
    done
    return 1
}

# wait_for_build PID LOG: wait for a tansu build to end, with a line of progress every minute.
wait_for_build() {
    local pid="$1" log="$2" deadline next
    deadline=$((SECONDS + BUILD_TIMEOUT))
    next=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        if ((SECONDS >= next)); then
            say "tansu: still building ($(grep -c Compiling "$log" 2>/dev/null || true) crates compiled; log: $log)"
            next=$((SECONDS + 60))
        fi
        sleep 2
    done
}

ensure_tansu() {
    local pid
    [[ -x "$TANSU_BIN" ]] && return 0
    [[ -z "${PINPIPE_TANSU_BIN:-}" ]] || die "PINPIPE_TANSU_BIN=$PINPIPE_TANSU_BIN is not an executable"
    mkdir -p "$CACHE"
    # One build at a time: another run of this script holds this lock while it builds.
    exec 9>"$CACHE/tansu-install.lock"
    if ! flock -n 9; then
        say "tansu: another services.sh is building it; waiting (log: $TANSU_BUILD_LOG)"
        flock -w "$BUILD_TIMEOUT" 9 || die "timed out waiting for the tansu build; see $TANSU_BUILD_LOG"
    fi
    if [[ ! -x "$TANSU_BIN" ]] && pid="$(tansu_build_pid)"; then
        say "tansu: a build is already running (pid $pid); waiting for it (log: $TANSU_BUILD_LOG)"
        wait_for_build "$pid" "$TANSU_BUILD_LOG" ||
            die "the running tansu build (pid $pid) did not finish within ${BUILD_TIMEOUT}s; see $TANSU_BUILD_LOG"
        [[ -x "$TANSU_BIN" ]] ||
            die "the tansu build (pid $pid) ended without $TANSU_BIN; see $TANSU_BUILD_LOG, then run again"
    fi
    if [[ ! -x "$TANSU_BIN" ]]; then
        if ! command -v cargo >/dev/null 2>&1; then
            [[ -x "$HOME/.cargo/bin/cargo" ]] || die "cargo not found: install the Rust toolchain"
            PATH="$HOME/.cargo/bin:$PATH"
        fi
        if ! command -v cc >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1 ||
            ! command -v pkg-config >/dev/null 2>&1; then
            apt_install build-essential cmake pkg-config
        fi
        say "tansu: building $TANSU_VERSION once into $TANSU_ROOT (~25 min on 2 cores; log: $TANSU_BUILD_LOG)"
        # In its own process group, so a timeout can stop rustc too; an interrupted run leaves the
        # build going, and the next run waits for it instead of starting another.
        setsid --wait cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" \
            --root "$TANSU_ROOT" </dev/null >"$TANSU_BUILD_LOG" 2>&1 9>&- &
        pid=$!
        if ! wait_for_build "$pid" "$TANSU_BUILD_LOG"; then
            signal_service TERM "$pid"
            die "the tansu build did not finish within ${BUILD_TIMEOUT}s; see $TANSU_BUILD_LOG"
        fi
        wait "$pid" || {
            tail -n 15 "$TANSU_BUILD_LOG" >&2 || true
            die "cargo install tansu failed; see $TANSU_BUILD_LOG"
        }
        [[ -x "$TANSU_BIN" ]] || die "cargo install tansu did not produce $TANSU_BIN; see $TANSU_BUILD_LOG"
    fi
    flock -u 9
    exec 9>&-
}

moto_usable() {
    "$1" -c 'import flask, flask_cors, moto.server, moto.s3.responses, moto.kinesis.responses' \
        >/dev/null 2>&1
}

ensure_moto() {
    local venv="$CACHE/moto-venv" log="$DIR/logs/install.log"
    [[ -n "$MOTO_PY" ]] && return 0
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip python3-venv
    if moto_usable python3; then
        MOTO_PY="$(python3 -c 'import sys; print(sys.executable)')"
        return 0
    fi
    if [[ -x "$venv/bin/python" ]] && moto_usable "$venv/bin/python"; then
        MOTO_PY="$venv/bin/python"
        return 0
    fi
    say "moto: pip install \"moto[server]\" (log: $log)"
    if python3 -m pip install "moto[server]" >>"$log" 2>&1 && moto_usable python3; then
        MOTO_PY="$(python3 -c 'import sys; print(sys.executable)')"
        return 0
    fi
    # An externally managed (PEP 668) or pip-less Python: use a venv of our own.
    say "moto: installing into a venv at $venv instead (log: $log)"
    if ! python3 -m venv "$venv" >>"$log" 2>&1; then
        apt_install python3-venv
        python3 -m venv "$venv" >>"$log" 2>&1 || die "python3 -m venv failed; see $log"
    fi
    "$venv/bin/python" -m pip install "moto[server]" >>"$log" 2>&1 ||
        die "pip install moto[server] failed; see $log"
    moto_usable "$venv/bin/python" || die "moto's server does not import after installing it; see $log"
    MOTO_PY="$venv/bin/python"
}

# kinesalite from npm, at the versions of scripts/kinesalite/package-lock.json, into the cache.
KINESALITE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kinesalite"
KINESALITE_DIR="$CACHE/kinesalite"

ensure_kinesalite() {
    local log="$DIR/logs/install.log"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    cp "$KINESALITE_SRC/serve.js" "$KINESALITE_DIR/serve.js" 2>/dev/null || true
    if [[ -f "$KINESALITE_DIR/node_modules/kinesalite/index.js" ]] &&
        cmp -s "$KINESALITE_SRC/package-lock.json" "$KINESALITE_DIR/package-lock.json"; then
        return 0
    fi
    say "kinesis: npm ci kinesalite into $KINESALITE_DIR (log: $log)"
    mkdir -p "$KINESALITE_DIR"
    cp "$KINESALITE_SRC/package.json" "$KINESALITE_SRC/package-lock.json" "$KINESALITE_SRC/serve.js" "$KINESALITE_DIR/"
    # --ignore-scripts: its optional leveldown build is not needed (the store is in memory).
    (cd "$KINESALITE_DIR" && npm ci --ignore-scripts --no-audit --no-fund) >>"$log" 2>&1 ||
        die "npm ci kinesalite failed; see $log"
}

# Binaries of the Debian packages; /usr/sbin may be missing from a non-root PATH.
mdb_bin() {
    local b
    for b in "$@"; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        elif [[ -x "/usr/sbin/$b" ]]; then
            printf '/usr/sbin/%s' "$b"
            return 0
        fi
    done
    return 1
}

ensure_mariadb() {
    if ! mdb_bin mariadbd >/dev/null || ! mdb_bin mariadb >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    mdb_bin mariadbd >/dev/null || die "mariadbd not found after installing mariadb-server"
}

# ---------------------------------------------------------------------------------------------
# readiness checks

# A Kafka ApiVersions (v0) request must get a response with error code 0.
tansu_ready() {
    port_open "$KAFKA_PORT" || return 1
    python3 - "$KAFKA_PORT" <<'EOF' 2>/dev/null
import socket, struct, sys

def read(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit(1)
        buf += chunk
    return buf

client = b"pinpipe-services"
body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as sock:
    sock.sendall(struct.pack(">i", len(body)) + body)
    (size,) = struct.unpack(">i", read(sock, 4))
    correlation_id, error_code = struct.unpack(">ih", read(sock, size)[:6])
sys.exit(0 if (correlation_id, error_code) == (7, 0) else 1)
EOF
}

# http_answers PORT: any HTTP response on 127.0.0.1:PORT; proxies are bypassed.
http_answers() {
    port_open "$1" || return 1
    python3 - "http://127.0.0.1:$1/" <<'EOF' 2>/dev/null
import sys, urllib.error, urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1], timeout=3).read()
except urllib.error.HTTPError:
    pass
EOF
}

# moto maps / to S3's ListBuckets.
moto_ready() { http_answers "$MOTO_PORT"; }

kinesis_ready() { http_answers "$KINESIS_PORT"; }

mariadb_ready() {
    "$(mdb_bin mariadb-admin mysqladmin)" --no-defaults --protocol=SOCKET --socket="$MDB_SOCK" \
        --connect-timeout=2 ping >/dev/null 2>&1
}

# The check a test makes: root over TCP with the password, running a query.
mariadb_tcp_ready() {
    MYSQL_PWD="$DB_PASSWORD" "$(mdb_bin mariadb mysql)" --no-defaults --protocol=TCP \
        --host=127.0.0.1 --port="$MARIADB_PORT" --user=root --connect-timeout=3 \
        --batch --skip-column-names --execute='SELECT 1' >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# tansu

start_tansu() {
    local workdir="$DIR/tansu" url="tcp://127.0.0.1:$KAFKA_PORT"
    ensure_tansu
    mkdir -p "$workdir"
    # The sqlite path is relative to the working directory (an absolute one comes out doubled).
    # The env -u's keep variables that tansu reads (clap `env =`) from changing the broker.
    launch tansu "$workdir" env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY \
        -u DATA_LAKE -u ICEBERG_CATALOG -u ICEBERG_NAMESPACE -u ICEBERG_WAREHOUSE \
        -u DELTA_DATABASE -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL \
        -u STORAGE_ENGINE \
        "$TANSU_BIN" broker \
        --cluster-id pinpipe \
        --listener-url "$url" \
        --advertised-listener-url "$url" \
        --storage-engine sqlite://tansu.db
    wait_ready tansu
}

# ---------------------------------------------------------------------------------------------
# moto

start_moto() {
    ensure_moto
    mkdir -p "$DIR/moto"
    launch moto "$DIR/moto" "$MOTO_PY" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT"
    wait_ready moto
}

# ---------------------------------------------------------------------------------------------
# kinesis

start_kinesis() {
    ensure_kinesalite
    mkdir -p "$DIR/kinesis"
    launch kinesis "$DIR/kinesis" node "$KINESALITE_DIR/serve.js" "$KINESIS_PORT"
    wait_ready kinesis
}

# ---------------------------------------------------------------------------------------------
# mariadb

write_mariadb_cnf() {
    mkdir -p "$MDB_DIR/tmp" "$MDB_DATA"
    cat >"$MDB_CNF" <<EOF
# Written by scripts/services.sh on every start: edits are overwritten.
[mariadbd]
user = $OS_USER
datadir = $MDB_DATA
tmpdir = $MDB_DIR/tmp
socket = $MDB_SOCK
pid-file = $DIR/run/mariadbd.pid
log-error = $(log_file mariadb)
port = $MARIADB_PORT
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 200
EOF
}

init_mariadb() {
    local log="$DIR/logs/mariadb-install.log"
    [[ -f "$MDB_DATA/.pinpipe-initialised" ]] && return 0
    say "mariadb: initialising a datadir in $MDB_DATA (log: $log)"
    find "$MDB_DATA" -mindepth 1 -delete
    "$(mdb_bin mariadb-install-db mysql_install_db)" --defaults-file="$MDB_CNF" \
        --datadir="$MDB_DATA" --user="$OS_USER" --auth-root-authentication-method=socket \
        --skip-test-db --skip-name-resolve >>"$log" 2>&1 ||
        die "mariadb-install-db failed; see $log"
    touch "$MDB_DATA/.pinpipe-initialised"
}

# mdb_admin SQL: run SQL over the socket as this OS user (unix_socket auth, set up by
# mariadb-install-db), falling back to root with the password. The SQL goes through stdin, so
# the password in it never shows on a command line.
mdb_admin() {
    local client
    client="$(mdb_bin mariadb mysql)"
    "$client" --no-defaults --protocol=SOCKET --socket="$MDB_SOCK" --user="$OS_USER" \
        --batch <<<"$1" >/dev/null 2>&1 && return 0
    MYSQL_PWD="$DB_PASSWORD" "$client" --no-defaults --protocol=SOCKET --socket="$MDB_SOCK" \
        --user=root --batch <<<"$1" >/dev/null
}

# root: unix_socket or password over the socket, password over TCP from 127.0.0.1 / ::1.
# Run on every start, so a changed PINPIPE_TEST_DB_PASSWORD takes effect.
provision_mariadb() {
    local pw host sql=""
    pw="${DB_PASSWORD//\\/\\\\}"
    pw="${pw//\'/\\\'}"
    for host in 127.0.0.1 ::1; do
        sql+="CREATE USER IF NOT EXISTS 'root'@'$host';"
        sql+="ALTER USER 'root'@'$host' IDENTIFIED BY '$pw';"
        sql+="GRANT ALL PRIVILEGES ON *.* TO 'root'@'$host' WITH GRANT OPTION;"
    done
    sql+="ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$pw');"
    # mariadb-install-db grants root@<hostname> proxy rights, which skip-name-resolve warns about.
    sql+="DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');"
    sql+="FLUSH PRIVILEGES;"
    mdb_admin "$sql" ||
        die "could not set up MariaDB's root user over $MDB_SOCK; see $(log_file mariadb) (a datadir made with another password: stop mariadb and delete $MDB_DIR)"
    mariadb_tcp_ready ||
        die "MariaDB does not accept root with the password over 127.0.0.1:$MARIADB_PORT; see $(log_file mariadb)"
}

start_mariadb() {
    ensure_mariadb
    mkdir -p "$MDB_DIR"
    write_mariadb_cnf
    init_mariadb
    rm -f "$MDB_SOCK"
    # --defaults-file must come first; it keeps /etc/mysql (the system instance's config) out.
    launch mariadb "$MDB_DIR" "$(mdb_bin mariadbd)" --defaults-file="$MDB_CNF"
    wait_ready mariadb
}

# ---------------------------------------------------------------------------------------------
# commands

# start NAME: start unless running; either way wait until it answers.
cmd_start() {
    local name="$1" pid port
    port="$(port_of "$name")"
    mkdir -p "$DIR/logs" "$DIR/run"
    if pid="$(running_pid "$name")"; then
        wait_ready "$name"
        [[ "$name" == mariadb ]] && provision_mariadb
        say "$name: already running (pid $pid) on 127.0.0.1:$port"
        return 0
    fi
    if port_open "$port"; then
        die "$name: 127.0.0.1:$port is already in use by a process this script did not start (no live pid in $(pid_file "$name")); stop it or set another port"
    fi
    "start_$name"
    [[ "$name" == mariadb ]] && provision_mariadb
    say "$name: started (pid $(running_pid "$name")) on 127.0.0.1:$port; log: $(log_file "$name")"
}

cmd_status() {
    local name pid port state
    for name in "${SERVICES[@]}"; do
        port="$(port_of "$name")"
        if pid="$(running_pid "$name")"; then
            if "${name}_ready"; then
                state=running
            else
                state="running(not answering)"
            fi
            printf '%-8s %-22s port=%-5s pid=%-7s log=%s\n' "$name" "$state" "$port" "$pid" \
                "$(log_file "$name")"
        else
            printf '%-8s %-22s port=%-5s pid=%-7s log=%s\n' "$name" stopped "$port" - \
                "$(log_file "$name")"
        fi
    done
}

cmd_env() {
    printf 'export %s=%q\n' \
        PINPIPE_BOOTSTRAP_SERVERS "127.0.0.1:$KAFKA_PORT" \
        PINPIPE_TANSU_BIN "$TANSU_BIN" \
        AWS_ENDPOINT_URL "http://127.0.0.1:$MOTO_PORT" \
        AWS_ENDPOINT_URL_KINESIS "http://127.0.0.1:$KINESIS_PORT" \
        AWS_ACCESS_KEY_ID testing \
        AWS_SECRET_ACCESS_KEY testing \
        AWS_DEFAULT_REGION us-east-1 \
        AWS_REGION us-east-1 \
        PINPIPE_TEST_MYSQL_HOST 127.0.0.1 \
        PINPIPE_TEST_MYSQL_PORT "$MARIADB_PORT" \
        PINPIPE_TEST_MYSQL_USER root \
        PINPIPE_TEST_MYSQL_PASSWORD "$DB_PASSWORD" \
        PINPIPE_TEST_DB_PASSWORD "$DB_PASSWORD"
}

cmd_logs() {
    local log
    log="$(log_file "$1")"
    [[ -f "$log" ]] || die "no log yet for $1 ($log)"
    if [[ "${2:-}" == -f ]]; then
        exec tail -n 200 -f "$log"
    fi
    tail -n 200 "$log"
}

# Mutating commands take this lock, so two runs never start the same service twice.
take_lock() {
    mkdir -p "$DIR/logs" "$DIR/run"
    exec 8>"$DIR/run/services.lock"
    flock -w "$((BUILD_TIMEOUT + 300))" 8 || die "timed out waiting for another services.sh ($DIR/run/services.lock)"
}

main() {
    local cmd="${1:-}" name
    case "$cmd" in
        up | down | status | env)
            (($# == 1)) || {
                usage
                exit 2
            }
            ;;
        start | stop | restart)
            (($# == 2)) || {
                usage
                exit 2
            }
            check_name "$2"
            ;;
        logs)
            (($# == 2 || $# == 3)) || {
                usage
                exit 2
            }
            check_name "$2"
            ;;
        -h | --help | help)
            usage
            exit 0
            ;;
        *)
            usage
            exit 2
            ;;
    esac
    check_config

    case "$cmd" in
        up)
            take_lock
            for name in mariadb moto kinesis tansu; do
                cmd_start "$name"
            done
            ;;
        down)
            take_lock
            for name in "${SERVICES[@]}"; do
                stop_service "$name"
            done
            ;;
        start)
            take_lock
            cmd_start "$2"
            ;;
        stop)
            take_lock
            stop_service "$2"
            ;;
        restart)
            take_lock
            stop_service "$2"
            cmd_start "$2"
            ;;
        status) cmd_status ;;
        env) cmd_env ;;
        logs) cmd_logs "$2" "${3:-}" ;;
    esac
}

main "$@"
