#!/usr/bin/env bash
# Batch benchmark, side by side on the same landing zones in one run:
#   pinpipe batch (landing -> raw/clean Delta -> nine analytics Delta tables), fresh lake each time
#   PySpark doing the same job (scripts/bench/spark_batch.py: explicit-schema JSON read, the same
#     cleaning and nine queries, clean tables and results written as Parquet), JVM start included
#   DuckDB doing the same job (scripts/bench/duckdb_batch.py: read_text of the landing objects, every
#     value as JSON/VARCHAR, the cleaning and dedup in SQL, clean tables and results as Parquet)
#   the decode floor: `cat` of every landed object (I/O) and orjson over every line, one thread
# Per size: wall time, records/s (landed lines of the three topics / wall), peak RSS of the whole
# process tree (PySpark: Python driver + JVM), pinpipe's time split, decode vs the floor, and
# whether Spark's nine analytics tables equal pinpipe's. Landing zones are written directly in the
# Confluent layout by `pinpipe emulate landing` (one partition, flush size 1000).
# Everything shares this machine's cores: read the ratios, not the absolute numbers.
#   BENCH_EVENTS (default "100000 1000000")   BENCH_SPARK_MASTER (default local[2])
#   BENCH_SPARK_MEMORY (driver memory, default 4g)   BENCH_SPARK_SHUFFLE_PARTITIONS (default 8)
#   BENCH_SPARK_CONF (more Spark settings, "key=value key=value")
#   BENCH_DIR (work directory; default a temporary one, removed at the end)
#   BENCH_DAYS (default 30), BENCH_DAY_EVENTS (default 100000): the incremental part at the end (a
#     lake of BENCH_DAYS daily runs, then one more day, against that day alone); BENCH_DAYS=0 skips it
#   BENCH_EVENTS="" skips the per-size comparison (only the incremental part runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"
SIZES="${BENCH_EVENTS-100000 1000000}"
MASTER="${BENCH_SPARK_MASTER:-local[2]}"
SPARK_MEMORY="${BENCH_SPARK_MEMORY:-4g}"
SHUFFLE="${BENCH_SPARK_SHUFFLE_PARTITIONS:-8}"
SPARK_CONF=()
for kv in ${BENCH_SPARK_CONF:-}; do SPARK_CONF+=(--conf "$kv"); done
USER_ID=0eaf46a0829f
VENV="$PINPIPE_CACHE/spark-venv"
BIN="$CARGO_TARGET_DIR/release/pinpipe"
HERE="$PWD/scripts/bench"

# Java 17+ for Spark 4, a venv with PySpark, orjson (the floor) and pyarrow (reading Spark's output).
java_major() { "${1:-java}" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if [ -z "${JAVA_HOME:-}" ] && [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$JAVA" >/dev/null 2>&1 || [ "$(java_major "$JAVA")" -lt 17 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
fi
if ! "$VENV/bin/python" -c 'import pyspark, orjson, pyarrow, duckdb' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'pyspark>=4,<5' orjson pyarrow duckdb
fi
# Waits on the build lock if another build is running; a no-op when the binary is current.
# The same package set as scripts/bench.sh, so the two share one release build.
cargo build --release -q -p pinpipe-cli -p pinpipe --bins --example bench_kafka --example bench_decode
# The SIMD parsers for the decode floor: their own crate and target directory, tuned to this CPU.
RUSTFLAGS="-C target-cpu=native" cargo build --release -q --manifest-path scripts/bench/parse-floor/Cargo.toml \
  --target-dir "$PINPIPE_CACHE/parse-floor-target"
FLOOR_BIN="$PINPIPE_CACHE/parse-floor-target/release/parse-floor"

if [ -n "${BENCH_DIR:-}" ]; then
  work="$BENCH_DIR"; mkdir -p "$work"
else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fi
export PINPIPE_LOG=warn SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$VENV/bin/python"
PY="$VENV/bin/python"
echo "pinpipe $("$BIN" --version | awk '{print $2}'), PySpark $("$PY" -c 'import pyspark; print(pyspark.__version__)') on Java $(java_major "$JAVA"), $(nproc) cores"
echo "PySpark: master $MASTER, driver memory $SPARK_MEMORY, shuffle partitions $SHUFFLE, UI off${BENCH_SPARK_CONF:+, $BENCH_SPARK_CONF}"
echo "DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)'): default threads and memory limit"
TABLES="users_joined_by_year top_category_by_year top_category_by_country top_poster_by_country
  top_country_by_followers top_category_by_age_group median_followers_by_age_group
  median_followers_by_join_year median_followers_by_age_group_and_join_year"

targets=""
for n in $SIZES; do
  d="$work/$n"
  rm -rf "$d"; mkdir -p "$d"
  "$BIN" emulate landing --landing "$d/landing" --events "$n" --flush-size 1000 --user-id "$USER_ID" >/dev/null
  "$PY" "$HERE/measure.py" floor --landing "$d/landing" --user-id "$USER_ID" >"$d/floor.json"
  "$PY" "$HERE/measure.py" run --out "$d/pinpipe.json" --stdout "$d/pinpipe.out" -- \
    "$BIN" batch --landing "$d/landing" --lake "$d/lake" --user-id "$USER_ID" --quiet --json
  "$PY" "$HERE/measure.py" run --out "$d/spark.json" --stdout "$d/spark.out" -- \
    "$PY" "$HERE/spark_batch.py" --landing "$d/landing" --out "$d/spark" --user-id "$USER_ID" \
    --master "$MASTER" --driver-memory "$SPARK_MEMORY" --shuffle-partitions "$SHUFFLE" ${SPARK_CONF[@]+"${SPARK_CONF[@]}"} 2>"$d/spark.err" \
    || { echo "PySpark failed; its stderr:"; tail -40 "$d/spark.err"; exit 1; }
  "$PY" "$HERE/measure.py" run --out "$d/duckdb.json" --stdout "$d/duckdb.out" -- \
    "$PY" "$HERE/duckdb_batch.py" --landing "$d/landing" --out "$d/duckdb" --user-id "$USER_ID" 2>"$d/duckdb.err" \
    || { echo "DuckDB failed; its stderr:"; tail -40 "$d/duckdb.err"; exit 1; }
  match=0
  # shellcheck disable=SC2086
  "$PY" "$HERE/measure.py" compare --spark "$d/spark" --pinpipe "$BIN" --lake "$d/lake" $TABLES \
    >"$d/compare.txt" || match=$?
  # shellcheck disable=SC2086
  "$PY" "$HERE/measure.py" compare --spark "$d/duckdb" --pinpipe "$BIN" --lake "$d/lake" $TABLES \
    >"$d/compare-duckdb.txt" || match=$((match + $?))
  line=$("$PY" - "$n" "$d" "$match" "$MASTER" "$SPARK_MEMORY" <<'PY'
import json, sys
n, d, mismatch, master, mem = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
load = lambda name: json.load(open(f"{d}/{name}"))
floor, pm, sm, dm = load("floor.json"), load("pinpipe.json"), load("spark.json"), load("duckdb.json")
ps, ss, ds = load("pinpipe.out"), load("spark.out"), load("duckdb.out")
records = floor["lines"]
read = sum(t["records_read"] for t in ps["tables"])
mib = lambda kib: kib / 1024
p_rate, s_rate = records / pm["wall_secs"], records / sm["wall_secs"]
p_rss, s_rss = pm["peak_tree_rss_kib"], sm["peak_tree_rss_kib"]
print(f"\n== {n:,} events: {records:,} landed records in {floor['files']} objects "
      f"({floor['bytes'] / 2**20:,.0f} MiB; pinpipe read {read:,}) ==")
print(f"{'engine':<28}{'wall s':>9}{'records/s':>12}{'peak RSS MiB':>14}{'throughput':>12}{'memory':>9}")
print(f"{'pinpipe batch':<28}{pm['wall_secs']:>9.2f}{p_rate:>12,.0f}{mib(p_rss):>14,.0f}"
      f"{p_rate / s_rate:>11.1f}x{p_rss / s_rss:>9.3f}")
print(f"{'PySpark ' + master + ', ' + mem:<28}{sm['wall_secs']:>9.2f}{s_rate:>12,.0f}{mib(s_rss):>14,.0f}"
      f"{1:>11.1f}x{1:>9.3f}")
d_rate, d_rss = records / dm["wall_secs"], dm["peak_tree_rss_kib"]
print(f"{'DuckDB':<28}{dm['wall_secs']:>9.2f}{d_rate:>12,.0f}{mib(d_rss):>14,.0f}"
      f"{d_rate / s_rate:>11.1f}x{d_rss / s_rss:>9.3f}")
print(f"pinpipe vs DuckDB: {p_rate / d_rate:.1f}x throughput, {p_rss / d_rss:.2f} of its memory; DuckDB split: "
      f"import+connect {ds['session_start_secs']:.2f} s, read+clean+write {ds['clean_secs']:.2f} s, "
      f"analytics {ds['analytics_secs']:.2f} s")
other = ps["elapsed_secs"] - ps["decode_secs"] - ps["clean_secs"] - ps["analytics_secs"]
print(f"pinpipe split: decode {ps['decode_secs']:.2f} s (read, parse, null counts, raw Parquet files), "
      f"clean {ps['clean_secs']:.2f} s, analytics {ps['analytics_secs']:.2f} s, other {other:.2f} s "
      f"(listing, commits, quality); in-process {ps['elapsed_secs']:.2f} s of {pm['wall_secs']:.2f} s wall")
print(f"PySpark split: session/JVM start {ss['session_start_secs']:.2f} s, read+clean+write {ss['clean_secs']:.2f} s, "
      f"analytics {ss['analytics_secs']:.2f} s (Spark job {ss['job_secs']:.2f} s); "
      f"largest process (JVM) {mib(sm['max_process_rss_kib']):,.0f} MiB")
print(f"decode floor: cat {floor['cat_secs']:.3f} s (I/O, page cache), orjson one thread {floor['orjson_secs']:.2f} s "
      f"({records / floor['orjson_secs']:,.0f} lines/s); pinpipe decode {ps['decode_secs']:.2f} s = "
      f"{ps['decode_secs'] / floor['orjson_secs']:.2f}x orjson, {ps['decode_secs'] / max(floor['cat_secs'], 1e-9):.0f}x cat")
print("analytics tables, Spark and DuckDB vs pinpipe: " + ("all nine MATCH" if not mismatch else "MISMATCH (below)"))
with open(f"{d}/target", "w") as f:
    f.write(f"TARGET {n} {p_rate / s_rate:.2f} {p_rss / s_rss:.3f} {0 if mismatch else 1}\n")
PY
  )
  echo "$line"
  cat "$d/compare.txt" "$d/compare-duckdb.txt"
  targets="$targets$(cat "$d/target")"$'\n'
done

# The decode against the fastest bare parses of the same lines (in memory, every core), on the
# largest size: pinpipe's decoder, arrow-json's tape decoder and serde_json in one process, the
# SIMD parsers (sonic-rs, simd-json) in another, run back to back.
if [ -n "$SIZES" ]; then
  last="$work/$(printf '%s\n' $SIZES | tail -1)"
  echo
  echo "== decode vs bare parses, $(printf '%s\n' $SIZES | tail -1) events =="
  "$FLOOR_BIN" "$last/landing" "$USER_ID" 3
  "$CARGO_TARGET_DIR/release/examples/bench_decode" "$last/landing" "$USER_ID" 3
fi

# The project's targets, on the largest size run: >= 5x PySpark's throughput at <= 1/4 of its peak memory.
if [ -n "$targets" ]; then
read -r _ n speed memory ok < <(printf '%s' "$targets" | grep '^TARGET' | tail -1)
verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
echo
echo "target on $n events: throughput ${speed}x PySpark (>= 5x: $(verdict "$(awk -v s="$speed" 'BEGIN{print (s>=5)}')")), " \
  "peak memory ${memory} of PySpark's (<= 0.25: $(verdict "$(awk -v m="$memory" 'BEGIN{print (m<=0.25)}')")), " \
  "results $( [ "$ok" = 1 ] && echo match || echo DIFFER)"
fi

# ---- A daily run costs what the day brought: a lake holding BENCH_DAYS days of BENCH_DAY_EVENTS
# events each (one incremental run per day, upkeep on), then day BENCH_DAYS+1's run on it, against
# the same day's run on a lake holding only that day, and against rebuilding the whole lake from
# every day's objects (--full-refresh: what a run costs when it reads the whole history).
DAYS="${BENCH_DAYS:-30}"
PER_DAY="${BENCH_DAY_EVENTS:-100000}"
if [ "$DAYS" -gt 0 ]; then
  inc="$work/incremental"
  rm -rf "$inc"; mkdir -p "$inc"
  day_landing() { # day, landing dir
    "$BIN" emulate landing --landing "$2" --events "$PER_DAY" --flush-size 1000 --user-id "$USER_ID" \
      --seed $((1000 + $1)) --start-offset $(($1 * PER_DAY)) >/dev/null
  }
  t0=$(date +%s.%N)
  for ((d = 0; d < DAYS; d++)); do
    day_landing "$d" "$inc/landing"
    "$BIN" batch --landing "$inc/landing" --lake "$inc/lake" --user-id "$USER_ID" --quiet --json >"$inc/day$d.json"
  done
  history_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')
  day_landing "$DAYS" "$inc/landing"
  day_landing "$DAYS" "$inc/only-landing"
  # Alternate the two runs over a few rounds on copies, so machine noise hits both alike.
  for round in 1 2 3; do
    rm -rf "$inc/lake-r" "$inc/only-lake"; cp -r "$inc/lake" "$inc/lake-r"
    "$PY" "$HERE/measure.py" run --out "$inc/with-history-$round.json" --stdout "$inc/with-history-$round.out" -- \
      "$BIN" batch --landing "$inc/landing" --lake "$inc/lake-r" --user-id "$USER_ID" --quiet --json
    "$PY" "$HERE/measure.py" run --out "$inc/alone-$round.json" --stdout "$inc/alone-$round.out" -- \
      "$BIN" batch --landing "$inc/only-landing" --lake "$inc/only-lake" --user-id "$USER_ID" --quiet --json
  done
  "$PY" "$HERE/measure.py" run --out "$inc/rebuild.json" --stdout "$inc/rebuild.out" -- \
    "$BIN" batch --landing "$inc/landing" --lake "$inc/lake-r" --user-id "$USER_ID" --quiet --json --full-refresh
  "$PY" - "$inc" "$DAYS" "$PER_DAY" "$history_secs" <<'PY'
import json, statistics, sys
inc, days, per, history = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
load = lambda name: json.load(open(f"{inc}/{name}"))
def median(kind):
    runs = [(load(f"{kind}-{r}.json"), load(f"{kind}-{r}.out")) for r in (1, 2, 3)]
    wall = statistics.median(m["wall_secs"] for m, _ in runs)
    return wall, runs[-1][1], max(m["peak_tree_rss_kib"] for m, _ in runs) / 1024
hist, hist_out, hist_rss = median("with-history")
alone, alone_out, alone_rss = median("alone")
rebuild, rebuild_out = load("rebuild.json")["wall_secs"], load("rebuild.out")
read = lambda out: sum(t["records_read"] for t in out["tables"])
print(f"\n== day {days + 1} of {per:,} events on a lake of {days} days ({days * per:,} events, "
      f"built in {history:.0f} s by {days} daily runs) ==")
print(f"{'run':<44}{'wall s':>9}{'records read':>14}{'peak RSS MiB':>14}{'vs alone':>10}")
for name, wall, out, rss in [
    (f"day {days + 1}, lake with {days} days of history", hist, hist_out, hist_rss),
    (f"day {days + 1}, lake with only that day", alone, alone_out, alone_rss),
    (f"rebuild of all {days + 1} days (--full-refresh)", rebuild, rebuild_out, load("rebuild.json")["peak_tree_rss_kib"] / 1024),
]:
    print(f"{name:<44}{wall:>9.2f}{read(out):>14,}{rss:>14,.0f}{wall / alone:>9.2f}x")
m = hist_out["maintenance"]
print(f"day {days + 1} split with history: decode {hist_out['decode_secs']:.2f} s, clean (merge) "
      f"{hist_out['clean_secs']:.2f} s, analytics {hist_out['analytics_secs']:.2f} s, upkeep {m['secs']:.2f} s "
      f"({m['tables_compacted']} tables compacted, {m['files_vacuumed']} files vacuumed); median of 3 rounds")
ratio = hist / alone
print(f"target: day {days + 1} with {days} days of history <= 1.5x the same day alone: {ratio:.2f}x "
      f"({'met' if ratio <= 1.5 else 'NOT met'})")
PY
fi
