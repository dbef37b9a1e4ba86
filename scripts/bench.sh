#!/usr/bin/env bash
# Ingestion benchmark, side by side on the same broker (Tansu) in one run:
#   gateway, one-record POSTs (the original emulator's shape; keep-alive, concurrent clients)
#   gateway, 500-record POSTs
#   direct rdkafka producer (the ceiling)
#   sink (Kafka -> landing zone) vs a bare consumer of the same topics (the ceiling)
# Load comes from wrk (C, keep-alive). Everything shares this machine's cores, so read the ratios,
# not the absolute numbers.
#   BENCH_SECONDS (default 15)  BENCH_CONNECTIONS (default 256)  BENCH_RECORDS (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PINPIPE_CACHE="${PINPIPE_CACHE:-$HOME/.cache/pinpipe}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PINPIPE_CACHE/target}"
SECONDS_PER_RUN="${BENCH_SECONDS:-15}"
CONNECTIONS="${BENCH_CONNECTIONS:-256}"
RECORDS="${BENCH_RECORDS:-300000}"

scripts/setup.sh
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
cargo build --release -q -p pinpipe-cli -p pinpipe --bins --example bench_kafka
BIN="$CARGO_TARGET_DIR/release/pinpipe"
KBENCH="$CARGO_TARGET_DIR/release/examples/bench_kafka"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

uid=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
PINPIPE_LOG=warn "$BIN" topics create --user-id "$uid" --partitions 1 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PINPIPE_LOG=warn "$BIN" gateway --user-id "$uid" --listen "127.0.0.1:$port" &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

row='{"index": 7528, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf", "title": "No Title Data Available", "description": "No description available Story format", "poster_name": "User Info Error", "follower_count": "User Info Error", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.", "downloaded": 0, "save_location": "Local save in /data/mens-fashion", "category": "mens-fashion"}'
one="{\"records\": [{\"value\": $row}]}"
many=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({'records':[{'value':r}]*500}))" "$row")
lua() {  # $1 body file
  cat <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.kafka.json.v2+json"
local f = io.open("$1", "r"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %.3f %.3f %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errs))
end
LUA
}
printf '%s' "$one" >"$work/one.json"; lua "$work/one.json" >"$work/one.lua"
printf '%s' "$many" >"$work/many.json"; lua "$work/many.json" >"$work/many.lua"
url="http://127.0.0.1:$port/topics/$uid.pin"
read -r _ r1 d1 p50_1 p99_1 e1 < <(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -s "$work/one.lua" "$url" | grep RESULT)
read -r _ r2 d2 p50_2 p99_2 e2 < <(wrk -t2 -c8 -d"${SECONDS_PER_RUN}s" -s "$work/many.lua" "$url" | grep RESULT)
direct=$("$KBENCH" produce "$PINPIPE_BOOTSTRAP_SERVERS" "$uid.geo" "$RECORDS" "${#row}")

# Sink vs a bare consumer, over what the runs above put in the pin topic.
bare=$("$KBENCH" consume "$PINPIPE_BOOTSTRAP_SERVERS" "$uid.pin")
sink=$(PINPIPE_LOG=warn "$BIN" sink --json --user-id "$uid" --landing "$work/landing" --flush-size 1000 --until-caught-up)

python3 - "$r1" "$d1" "$p50_1" "$p99_1" "$e1" "$r2" "$d2" "$p50_2" "$p99_2" "$e2" "$direct" "$bare" "$sink" <<'PY'
import json, sys
a = sys.argv[1:]
r1, d1, p50_1, p99_1, e1 = int(a[0]), float(a[1]), float(a[2]), float(a[3]), int(a[4])
r2, d2, p50_2, p99_2, e2 = int(a[5]), float(a[6]), float(a[7]), float(a[8]), int(a[9])
direct, bare, sink = json.loads(a[10]), json.loads(a[11]), json.loads(a[12])
one_rps = r1 / d1
many_rps = r2 * 500 / d2
sink_rate = sink["records_landed"] / sink["consume_secs"] if sink.get("consume_secs") else 0
print(f"{'what':<44}{'records/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'vs ceiling':>12}")
print(f"{'direct rdkafka producer (ceiling)':<44}{direct['records_per_sec']:>12.0f}{'':>9}{'':>9}{'1.00':>12}")
print(f"{'gateway, 1-record POSTs':<44}{one_rps:>12.0f}{p50_1:>9.2f}{p99_1:>9.2f}{one_rps / direct['records_per_sec']:>12.2f}")
print(f"{'gateway, 500-record POSTs':<44}{many_rps:>12.0f}{p50_2:>9.2f}{p99_2:>9.2f}{many_rps / direct['records_per_sec']:>12.2f}")
print(f"{'bare consumer (ceiling)':<44}{bare['records_per_sec']:>12.0f}{'':>9}{'':>9}{'1.00':>12}")
print(f"{'sink to local landing, flush.size 1000':<44}{sink_rate:>12.0f}{'':>9}{'':>9}{sink_rate / bare['records_per_sec']:>12.2f}")
print(f"(non-2xx or socket errors: {e1} one-record, {e2} batched; sink landed {sink['records_landed']} records, "
      f"group join {sink.get('assigned_after_secs', 0):.1f} s excluded)")
PY
