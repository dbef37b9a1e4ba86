"""The stream benchmark of scripts/bench_stream.sh (boto3 and pyarrow from the test venv).

In one run, against the same Kinesis server (kinesalite) and the same pre-filled streams:
  ceiling   `pinpipe streams read --count`: a bare GetRecords loop per shard with aws-sdk-kinesis,
            every record of the three streams, oldest to tip, nothing else done with them
  stream    `pinpipe stream --until-caught-up` on a fresh local lake: the same records read,
            decoded, cleaned and committed to the three Delta stream tables
Each is run twice, alternating; the better run counts. Reported: records/s, the ratio to the
ceiling, CPU-seconds (user + system of the process) per MB of record data.

Then the latency: a `pinpipe stream` daemon (default settings) while records are put at a steady
rate; per row, the time from its Kinesis arrival (`arrival_time`, set by the server at PutRecord)
to the timestamp of the Delta commit that made it visible (read from the table's log); p50/p99.

Usage: stream_bench.py --bin PINPIPE --work DIR [--records N] [--rate R] [--seconds S]
"""

import argparse
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import boto3

TABLES = ("pin", "geo", "user")
ROWS = {
    "pin": {"index": 0, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf", "title": "No Title Data Available",
            "description": "No description available Story format", "poster_name": "User Info Error",
            "follower_count": "12k", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",
            "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.",
            "downloaded": 0, "save_location": "Local save in /data/mens-fashion", "category": "mens-fashion"},
    "geo": {"ind": 0, "timestamp": "2020-08-28 03:52:47", "latitude": -89.9787, "longitude": -173.293,
            "country": "Albania"},
    "user": {"ind": 0, "first_name": "Michelle", "last_name": "Prince", "age": 36,
             "date_joined": "2015-12-20 16:38:13"},
}
KEY = {"pin": "index", "geo": "ind", "user": "ind"}


def kinesis():
    return boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def pinpipe(binary, *args, check=True):
    env = {**os.environ, "PINPIPE_LOG": "warn"}
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=env, check=check)


def cpu_of(binary, *args):
    """Runs pinpipe; returns (wall seconds, CPU seconds of the process from wait4, its JSON stdout)."""
    env = {**os.environ, "PINPIPE_LOG": "warn"}
    started = time.monotonic()
    proc = subprocess.Popen([binary, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"pinpipe {' '.join(map(str, args))} failed: {err.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, json.loads(out)


def fill(uid, records_per_stream):
    """Puts records_per_stream rows into each stream with PutRecords of 500; returns data bytes."""
    k = kinesis()
    total = 0
    for table in TABLES:
        name = f"streaming-{uid}-{table}"
        for lo in range(0, records_per_stream, 500):
            entries = []
            for i in range(lo, min(lo + 500, records_per_stream)):
                row = dict(ROWS[table], **{KEY[table]: i})
                data = json.dumps(row).encode()
                total += len(data)
                entries.append({"Data": data, "PartitionKey": f"partition-{i % 64}"})
            while entries:
                out = k.put_records(StreamName=name, Records=entries)
                entries = [e for e, r in zip(entries, out["Records"]) if "ErrorCode" in r]
    return total


def latency(binary, work, rate, seconds):
    uid = secrets.token_hex(6)
    pinpipe(binary, "streams", "create", "--user-id", uid, "--shards", 2)
    lake = Path(work) / f"lake-latency-{uid}"
    env = {**os.environ, "PINPIPE_LOG": "warn"}
    daemon = subprocess.Popen([binary, "stream", "--user-id", uid, "--lake", str(lake)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    k = kinesis()
    stop = time.monotonic() + seconds
    i = 0
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    next_at = time.monotonic()
    while time.monotonic() < stop:
        for table in TABLES:
            entries = [{"Data": json.dumps(dict(ROWS[table], **{KEY[table]: i + j})).encode(),
                        "PartitionKey": f"partition-{(i + j) % 64}"} for j in range(per_tick)]
            k.put_records(StreamName=f"streaming-{uid}-{table}", Records=entries)
        i += per_tick
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(5)
    daemon.terminate()
    daemon.wait(60)
    import pyarrow.parquet as pq

    lat = []
    for table in TABLES:
        tdir = lake / "stream" / f"{uid}_{table}_table"
        for log in sorted((tdir / "_delta_log").glob("*.json")):
            actions = [json.loads(line) for line in log.read_text().splitlines()]
            ts = next((a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a), None)
            for a in actions:
                if "add" in a and ts is not None:
                    col = pq.read_table(tdir / a["add"]["path"], columns=["arrival_time"]).column(0)
                    lat.extend(ts - v.value / 1000 for v in col)  # microseconds -> ms
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000  # noqa: E731
    return {"rows": len(lat), "put_rate_per_stream": per_tick / tick, "p50_secs": pick(0.5), "p99_secs": pick(0.99),
            "max_secs": lat[-1] / 1000 if lat else None}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--records", type=int, default=50000, help="records per stream")
    p.add_argument("--rate", type=float, default=200, help="records per second per stream (latency run)")
    p.add_argument("--seconds", type=float, default=20)
    a = p.parse_args()
    uid = secrets.token_hex(6)
    pinpipe(a.bin, "streams", "create", "--user-id", uid, "--shards", 2)
    data_bytes = fill(uid, a.records)
    mb = data_bytes / 1e6
    results = {"ceiling": [], "stream": []}
    for round_ in range(2):
        wall, cpu, out = cpu_of(a.bin, "streams", "read", "--user-id", uid, "--count", "--json")
        assert out["records"] == 3 * a.records, out
        results["ceiling"].append((wall, cpu))
        lake = Path(a.work) / f"lake-{round_}"
        wall, cpu, out = cpu_of(a.bin, "stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json")
        assert sum(out["rows"].values()) == 3 * a.records, out
        results["stream"].append((wall, cpu))
    records = 3 * a.records
    best = {k: min(v) for k, v in results.items()}
    print(f"\nstream throughput: {records} records ({mb:.1f} MB of data) in 3 streams x 2 shards, kinesalite")
    print(f"{'':32} {'wall s':>8} {'records/s':>11} {'vs ceiling':>11} {'CPU s/MB':>9}")
    for name, label in (("ceiling", "bare GetRecords loop (ceiling)"), ("stream", "pinpipe stream --until-caught-up")):
        wall, cpu = best[name]
        ratio = best["ceiling"][0] / wall
        print(f"{label:32} {wall:8.2f} {records / wall:11.0f} {ratio:10.0%} {cpu / mb:9.3f}")
    lat = latency(a.bin, a.work, a.rate, a.seconds)
    print(f"\nlatency, PutRecord to a visible row, at {lat['put_rate_per_stream']:.0f} records/s per stream "
          f"({lat['rows']} rows): p50 {lat['p50_secs']:.2f} s, p99 {lat['p99_secs']:.2f} s, max {lat['max_secs']:.2f} s")


if __name__ == "__main__":
    main()
