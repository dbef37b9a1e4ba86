"""The batch path under hostile clients and unlucky operators: data fidelity from the REST proxy to
the dead-letter table, keep-alive after errors, silent connections, the JSON envelope on every
error the HTTP layer can give, object-store outages under the sink and batch, and CLI input.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import (
    AWS_ENDPOINT,
    BOOTSTRAP,
    FaultyProxy,
    Landing,
    base_env,
    check_contiguous,
    create_topics,
    host_port,
    new_uid,
    pinpipe,
    read_landing,
    run_sink_until_caught_up,
    wait_for,
)

JSON_V2 = "application/vnd.kafka.json.v2+json"
BINARY_V2 = "application/vnd.kafka.binary.v2+json"


def dead_letters(lake: Path) -> list[dict]:
    from deltalake import DeltaTable

    return DeltaTable(str(lake / "batch" / "_dead_letters")).to_pyarrow_table().to_pylist()


def raw_exchange(url: str, data: bytes, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Sends `data` as is on a new connection; returns the reply's status, headers and body."""
    host, port = host_port(url.removeprefix("http://"))
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
            head, sep, body = reply.partition(b"\r\n\r\n")
            if sep:
                headers = dict(
                    line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
                )
                headers = {k.lower(): v for k, v in headers.items()}
                if len(body) >= int(headers.get("content-length", "0")):
                    break
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head, f"no reply to {data[:80]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    return int(lines[0].split()[1]), headers, body


def assert_envelope(status, headers, body, want_status, what):
    assert status == want_status, f"{what}: status {status}, body {body[:200]!r}"
    assert "json" in headers.get("content-type", ""), f"{what}: content type {headers}"
    parsed = json.loads(body)
    assert set(parsed) == {"error_code", "message"} and parsed["message"], f"{what}: {parsed}"
    assert isinstance(parsed["error_code"], int), f"{what}: {parsed}"


@pytest.fixture
def gw(services, procs):
    uid = new_uid()
    create_topics(uid)
    return procs.gateway(uid, "--max-body-bytes", 65536)


# ------------------------------------------------------------------------------------------------
# data fidelity: items 1-3


BINARY_VALUES = [b"", b"   ", b"\t\r", b"line one\nline two", b"caf\xc3\xa9 \xff\xfe", b"\xff\n"]


def test_every_acknowledged_binary_value_reaches_a_raw_row_or_a_dead_letter_with_its_bytes(gw, tmp_path):
    uid = gw.uid
    good = {"index": 7, "unique_id": "u", "title": "t", "category": "art"}
    records = [{"value": b64(v)} for v in BINARY_VALUES] + [{"value": b64(json.dumps(good).encode())}]
    r = requests.post(gw.topic_url(f"{uid}.pin"), data=json.dumps({"records": records}),
                      headers={"Content-Type": BINARY_V2}, timeout=30)
    assert r.status_code == 200, r.text
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    summary = run_sink_until_caught_up(uid, str(landing), 100)
    assert summary["records_landed"] == len(records), summary
    # Still one JSON value per line, one line per record.
    objects = read_landing(Landing(str(landing)))
    assert sum(len(o.records) for o in objects) == len(records)
    res = pinpipe("batch", "--user-id", uid, "--landing", landing, "--lake", lake, "--quiet", "--json")
    assert res.returncode == 0, res.report()
    pin = next(t for t in res.json["tables"] if t["table"] == "pin")
    assert pin["records_read"] == len(records) and pin["dead_lettered"] == len(BINARY_VALUES), pin
    assert pin["clean_rows"] == 1, pin
    letters = sorted(dead_letters(lake), key=lambda d: d["offset"])
    assert [d["raw_bytes"] for d in letters] == BINARY_VALUES
    assert [d["offset"] for d in letters] == list(range(len(BINARY_VALUES)))
    assert all(d["error"] for d in letters), letters


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_json_values_land_byte_for_byte(gw, tmp_path):
    uid = gw.uid
    values = [
        '{"index": 1, "f": -1.703900619396251e-173, "big": 123456789012345678901, "e": "caf\\u00e9"}',
        '{"index":2,"x":1.0000000000000002,"neg":-0.0,"exp":1E+400}',
        '[1.5, 2.50, 3e0]',
    ]
    body = '{"records":[' + ",".join(f'{{"value":{v}}}' for v in values) + "]}"
    r = requests.post(gw.topic_url(f"{uid}.pin"), data=body.encode(), headers={"Content-Type": JSON_V2}, timeout=30)
    assert r.status_code == 200, r.text
    landing = tmp_path / "landing"
    run_sink_until_caught_up(uid, str(landing), 100)
    keys = Landing(str(landing)).keys()
    assert len(keys) == 1, keys
    assert (landing / keys[0]).read_text().split("\n")[:-1] == values


# ------------------------------------------------------------------------------------------------
# the gateway under hostile clients: items 4-7


def test_keep_alive_connections_survive_403_and_415(gw):
    session = requests.Session()
    good = json.dumps({"records": [{"value": {"ok": 1}}]})
    failures = []
    for i in range(60):
        for url, ctype, want in [
            (f"{gw.url}/topics/nope.pin", JSON_V2, 403),
            (gw.topic_url(f"{gw.uid}.pin"), "text/plain", 415),
            (gw.topic_url(f"{gw.uid}.pin"), JSON_V2, 200),
        ]:
            try:
                r = session.post(url, data=good + " " * 2000, headers={"Content-Type": ctype}, timeout=30)
                if r.status_code != want:
                    failures.append((i, url, r.status_code, r.text))
            except requests.ConnectionError as e:
                failures.append((i, url, "connection error", str(e)))
    assert not failures, failures[:5]


def test_silent_connections_beyond_the_limit_do_not_lock_out_good_clients(services, procs):
    uid = new_uid()
    create_topics(uid)
    gw = procs.gateway(uid, "--max-connections", 40, "--idle-timeout", 3)
    host, port = host_port(gw.url.removeprefix("http://"))
    silent = []
    try:
        for _ in range(120):
            silent.append(socket.create_connection((host, port), timeout=30))
        # Half a request head, then silence (slowloris) on some.
        for s in silent[::3]:
            s.sendall(b"POST /topics/x HTTP/1.1\r\nHost: x\r\n")
        body = json.dumps({"records": [{"value": {"ok": 1}}]})
        for _ in range(20):
            r = requests.post(gw.topic_url(f"{uid}.pin"), data=body, headers={"Content-Type": JSON_V2}, timeout=20)
            assert r.status_code == 200, r.text
        # Every silent connection is closed by the gateway (evicted or timed out).
        def closed(s):
            s.settimeout(30)
            try:
                return s.recv(1024) is not None
            except (ConnectionResetError, TimeoutError):
                return True
        assert all(closed(s) for s in silent)
    finally:
        for s in silent:
            s.close()
    assert gw.proc.running(), gw.proc.report()


def test_every_error_carries_the_json_envelope(gw):
    topic = f"/topics/{gw.uid}.pin"
    cases = [
        ("wrong method", f"DELETE {topic} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(), 405),
        ("wrong method put", f"PUT {topic} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode(), 405),
        ("bad percent-encoding", b"GET /topics/%ZZ%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("invalid UTF-8 topic", b"GET /topics/%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("bad content-length", f"POST {topic} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode(), 400),
        ("too many headers", (f"GET {topic} HTTP/1.1\r\nHost: x\r\n"
                              + "".join(f"X-H{i}: v\r\n" for i in range(500)) + "\r\n").encode(), 431),
        ("too large header", f"GET {topic} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 100_000}\r\n\r\n".encode(), 431),
        ("10 KB URI", f"GET /topics/{'a' * 10_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
        ("65 KB URI", f"GET /topics/{'a' * 66_560} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
        ("unknown route", b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ]
    for what, data, want in cases:
        status, headers, body = raw_exchange(gw.url, data)
        assert_envelope(status, headers, body, want, what)


def test_records_written_as_arrays_are_rejected(gw):
    for body in ['{"records":[["k1",{"a":1},1]]}', '{"records":[[{"value":1}]]}', '{"records":[{"value":1,"x":2}]}']:
        r = requests.post(gw.topic_url(f"{gw.uid}.pin"), data=body, headers={"Content-Type": JSON_V2}, timeout=30)
        assert r.status_code == 422 and r.json()["error_code"] == 42206, (body, r.status_code, r.text)


# ------------------------------------------------------------------------------------------------
# the sink and batch under object-store faults: item 8


def post_events(gw, events: int, seed: int) -> None:
    res = pinpipe("emulate", "batch", "--user-id", gw.uid, "--gateway", gw.url, "--events", events, "--seed", seed,
                  "--no-sleep", "--quiet")
    assert res.returncode == 0, res.report()


def outage_schedule(proxy: FaultyProxy, start: threading.Event, steps):
    def run():
        start.wait()
        for mode, secs in steps:
            proxy.mode = mode
            time.sleep(secs)
        proxy.mode = "pass"
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_sink_rides_out_object_store_outages_exactly_once(uid, bucket, procs):
    create_topics(uid)
    proxy = FaultyProxy(AWS_ENDPOINT)
    try:
        env = base_env(AWS_ENDPOINT_URL=proxy.url)
        landing_url = f"s3://{bucket}/hardening"
        sink = procs.start(
            "sink", "sink", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--landing", landing_url,
            "--flush-size", 5, "--flush-interval", 0.2, "--retry-deadline", 60, env=env,
        )
        gw = procs.gateway(uid)
        go = threading.Event()
        schedule = outage_schedule(proxy, go, [("pass", 1), ("refuse", 3), ("pass", 1), ("reset", 2),
                                               ("pass", 1), ("drop", 2)])
        go.set()
        events = 0
        deadline = time.time() + 12
        while time.time() < deadline:
            post_events(gw, 5, seed=events)
            events += 5
        schedule.join()
        landing = Landing(landing_url)
        want = 3 * events

        def all_landed():
            assert sink.running(), sink.report()
            return sum(len(o.records) for o in read_landing(landing)) >= want
        wait_for(all_landed, 120, what="every record to land")
        sink.stop()
        objects = read_landing(landing)
        ends = check_contiguous(objects, uid)
        assert sum(ends.values()) == want and sum(len(o.records) for o in objects) == want
        assert "transient failure; retrying" in sink.stderr(), sink.report()
    finally:
        proxy.close()


def test_sink_gives_up_after_its_retry_deadline_with_one_line(uid, bucket, procs, services):
    create_topics(uid)
    gw = procs.gateway(uid)
    post_events(gw, 3, seed=1)
    proxy = FaultyProxy(AWS_ENDPOINT)
    proxy.mode = "refuse"
    try:
        res = pinpipe("sink", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--landing", f"s3://{bucket}/x",
                      "--until-caught-up", "--retry-deadline", 3, env=base_env(AWS_ENDPOINT_URL=proxy.url),
                      timeout=120)
    finally:
        proxy.close()
    assert res.returncode == 1, res.report()
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, res.report()
    assert "retry_deadline" in line[0] and "panicked" not in res.stderr, res.report()


def test_batch_retries_transient_object_store_failures(uid, bucket, procs, tmp_path):
    create_topics(uid)
    gw = procs.gateway(uid)
    post_events(gw, 30, seed=3)
    landing = f"s3://{bucket}/landing"
    run_sink_until_caught_up(uid, landing, 7)
    baseline = pinpipe("batch", "--user-id", uid, "--landing", landing, "--lake", tmp_path / "lake-a", "--quiet",
                       "--json")
    assert baseline.returncode == 0, baseline.report()
    proxy = FaultyProxy(AWS_ENDPOINT)
    go = threading.Event()
    schedule = outage_schedule(proxy, go, [("refuse", 2), ("reset", 1), ("drop", 1), ("pass", 0.3), ("reset", 1)])
    try:
        go.set()
        res = pinpipe("batch", "--user-id", uid, "--landing", landing, "--lake", tmp_path / "lake-b", "--quiet",
                      "--json", "--retry-deadline", 60, env=base_env(AWS_ENDPOINT_URL=proxy.url))
        schedule.join()
    finally:
        proxy.close()
    assert res.returncode == 0, res.report()
    assert res.json["analytics"] == baseline.json["analytics"]
    assert [t["clean_rows"] for t in res.json["tables"]] == [t["clean_rows"] for t in baseline.json["tables"]]


# ------------------------------------------------------------------------------------------------
# error lines and CLI input: items 10, 11


def test_error_lines_say_each_cause_once(tmp_path):
    res = pinpipe("emulate", "batch", "--source", "mysql", "--db-creds", tmp_path / "missing.yaml", "--events", 1)
    assert res.returncode != 0
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, res.report()
    assert line[0].count("os error 2") == 1 and "missing.yaml" in line[0], line[0]
    # A lake on an S3 endpoint that refuses every connection.
    res = pinpipe("batch", "--landing", tmp_path / "landing", "--lake", "s3://nobucket/lake", "--retry-deadline", 1,
                  "--quiet", env=base_env(AWS_ENDPOINT_URL="http://127.0.0.1:9"))
    assert res.returncode == 1, res.report()
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, res.report()
    segments = line[0].split(": ")
    assert len(segments) == len(set(segments)), line[0]
    assert len(line[0]) < 600, line[0]


def test_topics_create_rejects_zero_or_negative_partitions(services):
    uid = new_uid()
    for bad in ("0", "-3"):
        res = pinpipe("topics", "create", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, f"--partitions={bad}")
        assert res.returncode == 2 and "partitions" in res.stderr, res.report()
    listed = pinpipe("topics", "list", "--bootstrap-servers", BOOTSTRAP, "--json", check=True).json
    assert not [t for t in listed if t["name"].startswith(uid)], listed
    pinpipe("topics", "create", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, check=True)
    res = pinpipe("topics", "create", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--partitions", 3,
                  "--json", check=True)
    assert all("1 partition" in t["message"] and not t["created"] for t in res.json), res.json


# ------------------------------------------------------------------------------------------------
# a full disk and a corrupt log: items 9, 10


def limited_file_size(limit: int):
    """preexec_fn: files this process writes cannot grow past `limit` bytes; writes beyond fail
    with EFBIG, the way they fail with ENOSPC on a full disk."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_batch_on_a_full_disk_fails_in_one_line_and_the_rerun_is_exact(tmp_path):
    import subprocess

    from conftest import PINPIPE_BIN

    landing, lake, clean_lake = tmp_path / "landing", tmp_path / "lake", tmp_path / "clean-lake"
    pinpipe("emulate", "landing", "--landing", landing, "--events", 20000, "--seed", 5, check=True)
    args = [PINPIPE_BIN, "batch", "--landing", str(landing), "--lake", str(lake), "--quiet"]
    done = subprocess.run(args, capture_output=True, text=True, preexec_fn=limited_file_size(300_000),
                          env=base_env(RUST_BACKTRACE="1"), timeout=300)
    assert done.returncode == 1, done.stderr
    assert "panicked" not in done.stderr, done.stderr[:3000]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "batch/_raw_" in errors[0] and "os error 27" in errors[0], errors[0]
    rerun = pinpipe("batch", "--landing", landing, "--lake", lake, "--quiet", "--json")
    assert rerun.returncode == 0, rerun.report()
    clean = pinpipe("batch", "--landing", landing, "--lake", clean_lake, "--quiet", "--json")
    assert rerun.json["analytics"] == clean.json["analytics"]
    assert [t["clean_rows"] for t in rerun.json["tables"]] == [t["clean_rows"] for t in clean.json["tables"]]


def test_a_corrupt_delta_log_is_named_by_its_file(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    pinpipe("emulate", "landing", "--landing", landing, "--events", 50, "--seed", 5, check=True)
    pinpipe("batch", "--landing", landing, "--lake", lake, "--quiet", check=True)
    commit = sorted((lake / "batch" / "pin" / "_delta_log").glob("*.json"))[-1]
    with open(commit, "a") as f:
        f.write('\n{"add": {broken\n')
    res = pinpipe("batch", "--landing", landing, "--lake", lake, "--quiet", env=base_env(RUST_BACKTRACE="1"))
    assert res.returncode == 1, res.report()
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.report()
    assert f"_delta_log/{commit.name}" in errors[0] and "batch/pin" in errors[0], errors[0]
    assert "buoyant_kernel::" not in errors[0] and len(errors[0]) < 500, errors[0]


# ------------------------------------------------------------------------------------------------
# interrupted multipart uploads: item 12


@pytest.fixture(scope="module")
def big_landing(tmp_path_factory):
    """Enough records that the raw pin table's data file is written as a multipart upload (> 5 MiB)."""
    landing = tmp_path_factory.mktemp("big") / "landing"
    pinpipe("emulate", "landing", "--landing", landing, "--events", 200000, "--seed", 9, check=True, timeout=600)
    return landing


def test_a_failed_batch_leaves_no_incomplete_multipart_upload(big_landing, services):
    from conftest import s3_client

    bucket = f"lake-{new_uid()}"
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    proxy = FaultyProxy(AWS_ENDPOINT)
    proxy.mode = "fail-complete"
    try:
        res = pinpipe("batch", "--landing", big_landing, "--lake", f"s3://{bucket}/lake", "--quiet",
                      "--retry-deadline", 1, env=base_env(AWS_ENDPOINT_URL=proxy.url), timeout=600)
    finally:
        proxy.close()
    assert res.returncode == 1, res.report()
    assert "CompleteMultipartUpload" in res.stderr or "complete" in res.stderr.lower(), res.report()
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert left == [], left


def test_the_upload_of_a_killed_batch_is_aborted_by_a_later_run(big_landing, procs, services):
    from conftest import s3_client

    bucket = f"lake-{new_uid()}"
    s3 = s3_client()
    s3.create_bucket(Bucket=bucket)
    lake = f"s3://{bucket}/lake"
    batch = procs.start("batch", "batch", "--landing", big_landing, "--lake", lake, "--quiet")

    def uploading():
        assert batch.running(), f"batch ended before it started a multipart upload\n{batch.report()}"
        return s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

    wait_for(uploading, 300, interval=0.02, what="batch to start a multipart upload")
    batch.kill()
    orphans = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert orphans, "the killed run left no upload to clean up"

    # (Uploads younger than --abandoned-upload-age are left alone, as they may be a running
    # writer's; moto reports every upload as initiated on 2010-11-10, so that part cannot be shown
    # against it.)
    res = pinpipe("batch", "--landing", big_landing, "--lake", lake, "--quiet", "--abandoned-upload-age", 0,
                  check=True, timeout=600)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], res.report()
    assert "aborted the incomplete uploads of an earlier run" in res.stderr, res.report()


def test_shared_settings_in_the_environment_do_not_break_jobs_without_them(tmp_path):
    env = base_env(PINPIPE_BOOTSTRAP_SERVERS=BOOTSTRAP, PINPIPE_USER_ID="0123456789ab")
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    pinpipe("emulate", "landing", "--landing", landing, "--events", 20, env=env, check=True)
    pinpipe("batch", "--landing", landing, "--lake", lake, "--quiet", env=env, check=True)
    res = pinpipe("query", "top_category_by_year", "--lake", lake, "--json", env=env, check=True)
    assert res.json, res.report()
