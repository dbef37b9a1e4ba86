"""The gateway's Kafka REST Proxy v2 contract, against a real broker (Tansu).

Error contract: every bad request gets its documented HTTP status and a JSON body
`{"error_code": N, "message": "..."}`, and nothing reaches Kafka; good traffic keeps flowing while
bad requests are being sent. Success contract: the original emulator's exact request works and
its record is in Kafka; json, binary and plain-json formats, keys and explicit partitions work;
a multi-record POST gets its offsets in request order; GET /topics lists only allowlisted,
existing topics; /metrics is Prometheus text.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import re
import threading
import urllib.parse

import pytest
import requests
from conftest import (
    TABLES,
    Procs,
    consume_all,
    create_topics,
    message_at,
    new_uid,
)

JSON_V2 = "application/vnd.kafka.json.v2+json"
BINARY_V2 = "application/vnd.kafka.binary.v2+json"
RESPONSE_V2 = "application/vnd.kafka.v2+json"
MAX_BODY = 4096


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw_request(url: str, method: str, path: str, headers: dict | None = None, body=None, chunked=False):
    """One HTTP request sent exactly as given (no path normalisation, no added headers but
    Host, Accept-Encoding and Content-Length). Returns (status, headers, parsed JSON body or text)."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        try:
            parsed_body = json.loads(data)
        except ValueError:
            parsed_body = data.decode(errors="replace")
        return resp.status, resp.headers, parsed_body
    finally:
        conn.close()


def start_contract_gateway(procs: Procs, uid: str, *extra):
    """A gateway whose allowlist holds the user's three topics plus one that does not exist."""
    return procs.gateway(
        uid,
        *[a for t in TABLES for a in ("--allow-topic", f"{uid}.{t}")],
        "--allow-topic", f"{uid}.missing",
        "--max-body-bytes", MAX_BODY,
        "--produce-timeout", "10",
        *extra,
    )


# ------------------------------------------------------------------------------------------------
# the error contract


def _big_body() -> bytes:
    body = json.dumps({"records": [{"value": {"pad": "x" * (MAX_BODY + 500)}}]}).encode()
    assert len(body) > MAX_BODY
    return body


def _chunks():
    body = _big_body()
    for i in range(0, len(body), 1000):
        yield body[i:i + 1000]


GOOD = json.dumps({"records": [{"value": {"ok": True}}]}).encode()

# (id, method, topic path segment ("{pin}" etc. are the user's topics), headers, body, status, code)
ERROR_CASES = [
    ("malformed-json", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [', 400, 400),
    ("not-json", "POST", "{pin}", {"Content-Type": JSON_V2}, b"hello", 400, 400),
    ("empty-body", "POST", "{pin}", {"Content-Type": JSON_V2}, b"", 400, 400),
    ("content-type-text", "POST", "{pin}", {"Content-Type": "text/plain"}, GOOD, 415, 415),
    ("content-type-xml", "POST", "{pin}", {"Content-Type": "application/xml"}, GOOD, 415, 415),
    ("content-type-avro", "POST", "{pin}", {"Content-Type": "application/vnd.kafka.avro.v2+json"}, GOOD, 415, 415),
    ("content-type-missing", "POST", "{pin}", {}, GOOD, 415, 415),
    ("accept-html", "POST", "{pin}", {"Content-Type": JSON_V2, "Accept": "text/html"}, GOOD, 406, 406),
    ("accept-xml-text", "POST", "{pin}", {"Content-Type": JSON_V2, "Accept": "application/xml, text/plain"}, GOOD, 406, 406),
    ("topic-missing", "POST", "{missing}", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-dotdot-etc", "POST", "..%2Fetc", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-dotdot-passwd", "POST", "..%2F..%2Fetc%2Fpasswd", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-slash", "POST", "a%2Fb", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-space", "POST", "a%20b", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-encoded-dotdot", "POST", "%2E%2E", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-encoded-dot", "POST", "%2E", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-non-ascii", "POST", "t%C3%B3pico", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-nul", "POST", "a%00b", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-too-long", "POST", "x" * 250, {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("path-user-topic-dotdot", "POST", "{pin}%2F..%2F{geo}", {"Content-Type": JSON_V2}, GOOD, 404, 40401),
    ("not-allowlisted-other-user", "POST", "{other_pin}", {"Content-Type": JSON_V2}, GOOD, 403, 40301),
    ("not-allowlisted-name", "POST", "some-other-topic", {"Content-Type": JSON_V2}, GOOD, 403, 40301),
    ("too-large", "POST", "{pin}", {"Content-Type": JSON_V2}, _big_body(), 413, 413),
    ("too-large-chunked", "POST", "{pin}", {"Content-Type": JSON_V2}, "CHUNKED", 413, 413),
    ("records-empty", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": []}', 422, 42206),
    ("records-object", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": {}}', 422, 42206),
    ("records-missing", "POST", "{pin}", {"Content-Type": JSON_V2}, b"{}", 422, 42206),
    ("body-array", "POST", "{pin}", {"Content-Type": JSON_V2}, b"[1, 2]", 422, 42206),
    ("record-empty", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [{}]}', 422, 42206),
    ("record-not-object", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [1]}', 422, 42206),
    ("partition-negative", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [{"value": 1, "partition": -1}]}', 422, 42206),
    ("partition-string", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [{"value": 1, "partition": "x"}]}', 422, 42206),
    ("binary-bad-base64", "POST", "{pin}", {"Content-Type": BINARY_V2}, b'{"records": [{"value": "!!not base64!!"}]}', 422, 42206),
    ("binary-bad-base64-key", "POST", "{pin}", {"Content-Type": BINARY_V2}, b'{"records": [{"key": "%%%", "value": "aGVsbG8="}]}', 422, 42206),
    ("binary-object-value", "POST", "{pin}", {"Content-Type": BINARY_V2}, b'{"records": [{"value": {"a": 1}}]}', 422, 42206),
    ("partition-out-of-range", "POST", "{pin}", {"Content-Type": JSON_V2}, b'{"records": [{"value": 1, "partition": 99}]}', 404, 40402),
    ("describe-missing", "GET", "{missing}", {}, None, 404, 40401),
    ("describe-path-trick", "GET", "..%2Fetc", {}, None, 404, 40401),
    ("describe-not-allowlisted", "GET", "{other_pin}", {}, None, 403, 40301),
]


def send_case(gw, uid: str, other: str, case):
    _, method, segment, headers, body, _, _ = case
    segment = segment.format(
        pin=f"{uid}.pin", geo=f"{uid}.geo", missing=f"{uid}.missing", other_pin=f"{other}.pin"
    )
    if body == "CHUNKED":
        return raw_request(gw.url, method, f"/topics/{segment}", headers, body=_chunks(), chunked=True)
    return raw_request(gw.url, method, f"/topics/{segment}", headers, body=body)


def assert_error(status, headers, body, want_status, want_code, what):
    assert status == want_status, f"{what}: status {status}, body {body!r}"
    assert isinstance(body, dict), f"{what}: body is not a JSON object: {body!r}"
    assert body.get("error_code") == want_code, f"{what}: {body!r}"
    assert isinstance(body.get("message"), str) and body["message"], f"{what}: {body!r}"
    assert set(body) == {"error_code", "message"}, f"{what}: unexpected fields in {body!r}"
    ctype = headers.get("Content-Type", "")
    assert "json" in ctype, f"{what}: content type {ctype!r}"


@pytest.fixture(scope="module")
def contract_gateway(services, tmp_path_factory):
    """One gateway shared by the parametrised error cases (none of them writes anything)."""
    uid, other = new_uid(), new_uid()
    create_topics(uid, partitions=3)
    create_topics(other)
    procs = Procs(tmp_path_factory.mktemp("contract-logs"))
    try:
        gw = start_contract_gateway(procs, uid)
        yield gw, uid, other
    finally:
        procs.stop_all()


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_contract(contract_gateway, case):
    gw, uid, other = contract_gateway
    status, headers, body = send_case(gw, uid, other, case)
    assert_error(status, headers, body, case[5], case[6], case[0])


def test_bad_requests_write_nothing_and_good_traffic_keeps_flowing(services, procs):
    uid, other = new_uid(), new_uid()
    create_topics(uid)
    create_topics(other)
    gw = start_contract_gateway(procs, uid)
    good_topic = f"{uid}.user"
    session_errors: list[str] = []
    good: list[dict] = []
    lock = threading.Lock()
    stop = threading.Event()

    def good_stream(thread: int):
        with requests.Session() as s:
            n = 0
            # At least 40 requests per thread, and keep going while bad requests are sent.
            while n < 40 or not stop.is_set():
                value = {"thread": thread, "n": n}
                try:
                    r = s.post(gw.topic_url(good_topic), json={"records": [{"value": value}]},
                               headers={"Content-Type": JSON_V2}, timeout=60)
                except requests.RequestException as e:
                    with lock:
                        session_errors.append(f"{value}: {e}")
                    return
                with lock:
                    if r.status_code != 200:
                        session_errors.append(f"{value}: {r.status_code} {r.text}")
                    else:
                        good.append(value)
                n += 1
                if n >= 400:
                    return

    threads = [threading.Thread(target=good_stream, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    try:
        for _round in range(3):
            for case in ERROR_CASES:
                status, headers, body = send_case(gw, uid, other, case)
                assert_error(status, headers, body, case[5], case[6], case[0])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not session_errors, f"good requests failed while bad ones were sent: {session_errors[:5]}"
    assert len(good) >= 120
    # Bad requests produced nothing; every good record is in Kafka exactly once.
    for t in ("pin", "geo"):
        assert consume_all(f"{uid}.{t}") == [], f"a rejected request reached {uid}.{t}"
    landed = sorted((json.loads(m.value()) for m in consume_all(good_topic)), key=lambda v: (v["thread"], v["n"]))
    assert landed == sorted(good, key=lambda v: (v["thread"], v["n"]))


# ------------------------------------------------------------------------------------------------
# API key


def test_api_key_is_required_when_configured(services, procs):
    uid = new_uid()
    create_topics(uid)
    key = "k3y-" + new_uid()
    gw = procs.gateway(uid, "--api-key", key)
    url = gw.topic_url(f"{uid}.pin")
    payload = {"records": [{"value": {"a": 1}}]}
    for headers in ({}, {"x-api-key": "wrong"}, {"x-api-key": key + "x"}, {"x-api-key": key[:-1]}, {"x-api-key": ""}):
        r = requests.post(url, json=payload, headers={"Content-Type": JSON_V2, **headers}, timeout=60)
        assert_error(r.status_code, r.headers, r.json(), 403, 40301, f"POST with {headers}")
        r = requests.get(f"{gw.url}/topics", headers=headers, timeout=60)
        assert_error(r.status_code, r.headers, r.json(), 403, 40301, f"GET /topics with {headers}")
    r = requests.post(url, json=payload, headers={"Content-Type": JSON_V2, "x-api-key": key}, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.get(f"{gw.url}/topics", headers={"x-api-key": key}, timeout=60)
    assert r.status_code == 200 and r.json() == sorted(f"{uid}.{t}" for t in TABLES), r.text
    assert requests.get(f"{gw.url}/healthz", timeout=10).status_code == 200
    assert [json.loads(m.value()) for m in consume_all(f"{uid}.pin")] == [{"a": 1}]


# ------------------------------------------------------------------------------------------------
# success contract


@pytest.fixture
def gw3(services, procs):
    """A gateway with default settings over a user whose topics have 3 partitions."""
    uid = new_uid()
    create_topics(uid, partitions=3)
    return procs.gateway(uid)


def assert_offsets_body(r, n):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(RESPONSE_V2), r.headers
    body = r.json()
    assert set(body) == {"offsets", "key_schema_id", "value_schema_id"}, body
    assert body["key_schema_id"] is None and body["value_schema_id"] is None, body
    assert len(body["offsets"]) == n, body
    for o in body["offsets"]:
        assert set(o) == {"partition", "offset", "error_code", "error"}, o
        assert isinstance(o["partition"], int) and isinstance(o["offset"], int) and o["offset"] >= 0, o
        assert o["error_code"] is None and o["error"] is None, o
    return body["offsets"]


def test_original_emulator_request_works_unchanged(gw3):
    """The original user_posting_emulation.py, request for request."""
    uid = gw3.uid
    pin = {
        "index": 7528, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf",
        "title": "No Title Data Available", "description": "No description available Story format",
        "poster_name": "User Info Error", "follower_count": "User Info Error",
        "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "is_image_or_video": "multi-video(story page format)",
        "image_src": "Image src error.", "downloaded": 0, "save_location": "Local save in /data/mens-fashion",
        "category": "mens-fashion",
    }
    geo = {
        "ind": 7528, "timestamp": datetime.datetime(2020, 8, 28, 3, 52, 47),
        "latitude": -89.9787, "longitude": -173.293, "country": "Albania",
    }
    user = {
        "ind": 7528, "first_name": "Abigail", "last_name": "Ali", "age": 20,
        "date_joined": datetime.datetime(2015, 10, 24, 11, 23, 51),
    }
    for table, row in (("pin", pin), ("geo", geo), ("user", user)):
        invoke_url = f"{gw3.url}/topics/{uid}.{table}"
        payload = json.dumps({"records": [{"value": row}]}, default=str)
        headers = {"Content-Type": "application/vnd.kafka.json.v2+json"}
        response = requests.request("POST", invoke_url, headers=headers, data=payload)
        (offset,) = assert_offsets_body(response, 1)
        msg = message_at(f"{uid}.{table}", offset["partition"], offset["offset"])
        stored = json.loads(msg.value())
        assert stored == json.loads(json.dumps(row, default=str))
        assert msg.key() is None
    assert json.loads(message_at(f"{uid}.geo", *_only_offset(uid, "geo")).value())["timestamp"] == "2020-08-28 03:52:47"


def _only_offset(uid, table):
    msgs = consume_all(f"{uid}.{table}")
    assert len(msgs) == 1
    return msgs[0].partition(), msgs[0].offset()


def test_plain_application_json_is_accepted(gw3):
    r = requests.post(gw3.topic_url(f"{gw3.uid}.geo"), data=json.dumps({"records": [{"value": {"x": "é"}}]}),
                      headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
                      timeout=60)
    (o,) = assert_offsets_body(r, 1)
    assert json.loads(message_at(f"{gw3.uid}.geo", o["partition"], o["offset"]).value()) == {"x": "é"}


def test_binary_format_keys_and_explicit_partition(gw3):
    topic = f"{gw3.uid}.pin"
    records = [
        {"key": b64(b"\x00\xffkey"), "value": b64(b"\x01\x02 binary \xfe\xff"), "partition": 2},
        {"value": b64(b"no key"), "partition": 0},
        {"key": b64(b"tombstone"), "value": None, "partition": 1},
        {"value": b64(b"")},
    ]
    r = requests.post(gw3.topic_url(topic), json={"records": records},
                      headers={"Content-Type": BINARY_V2, "Accept": RESPONSE_V2}, timeout=60)
    offsets = assert_offsets_body(r, len(records))
    assert [o["partition"] for o in offsets[:3]] == [2, 0, 1]
    want = [(b"\x00\xffkey", b"\x01\x02 binary \xfe\xff"), (None, b"no key"), (b"tombstone", None), (None, b"")]
    for o, (key, value) in zip(offsets, want):
        msg = message_at(topic, o["partition"], o["offset"])
        assert msg.key() == key
        # An empty value may come back as b"" or None depending on the client: both mean "no bytes".
        assert (msg.value() or b"") == (value or b"") and (value is not None or msg.value() is None)


def test_json_keys_are_json_text_and_pick_one_partition(gw3):
    topic = f"{gw3.uid}.user"
    records = [{"key": "user-42", "value": {"n": i}} for i in range(6)] + [{"key": {"a": [1, 2]}, "value": [1, "two"]}]
    r = requests.post(gw3.topic_url(topic), json={"records": records}, headers={"Content-Type": JSON_V2}, timeout=60)
    offsets = assert_offsets_body(r, len(records))
    assert len({o["partition"] for o in offsets[:6]}) == 1, f"one key went to several partitions: {offsets}"
    for o, rec in zip(offsets, records):
        msg = message_at(topic, o["partition"], o["offset"])
        assert json.loads(msg.key()) == rec["key"]
        assert json.loads(msg.value()) == rec["value"]


def test_multi_record_post_offsets_in_request_order(gw3):
    topic = f"{gw3.uid}.geo"
    parts = [2, 0, 1, 2, 2, 0, None, 1, 0, 2, None, 1, 0, 0, 2]
    records = []
    for i, p in enumerate(parts):
        rec = {"value": {"i": i}}
        if p is not None:
            rec["partition"] = p
        records.append(rec)
    for _round in range(2):
        r = requests.post(gw3.topic_url(topic), json={"records": records}, headers={"Content-Type": JSON_V2}, timeout=60)
        offsets = assert_offsets_body(r, len(records))
        for o, p in zip(offsets, parts):
            if p is not None:
                assert o["partition"] == p, offsets
        assert len({(o["partition"], o["offset"]) for o in offsets}) == len(offsets), offsets
        last: dict[int, int] = {}
        for o in offsets:
            assert o["offset"] > last.get(o["partition"], -1), f"offsets not in request order: {offsets}"
            last[o["partition"]] = o["offset"]
        for i, o in enumerate(offsets):
            assert json.loads(message_at(topic, o["partition"], o["offset"]).value()) == {"i": i}


def test_list_and_describe_topics(services, procs):
    uid, other = new_uid(), new_uid()
    create_topics(uid, partitions=3)
    create_topics(other)
    gw = start_contract_gateway(procs, uid)
    r = requests.get(f"{gw.url}/topics", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(RESPONSE_V2)
    # Allowlisted and existing only: not `<uid>.missing` (allowlisted, absent), not the other
    # user's topics (present, not allowlisted).
    assert r.json() == sorted(f"{uid}.{t}" for t in TABLES)
    r = requests.get(gw.topic_url(f"{uid}.pin"), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == f"{uid}.pin"
    assert sorted(p["partition"] for p in body["partitions"]) == [0, 1, 2]
    # A gateway allowing every topic lists the other user's topics too.
    gw_all = procs.gateway(uid, "--allow-topic", "*")
    names = requests.get(f"{gw_all.url}/topics", timeout=60).json()
    assert {f"{uid}.{t}" for t in TABLES} | {f"{other}.{t}" for t in TABLES} <= set(names)


SAMPLE_RE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?'
    r" (?P<value>[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|Inf))(?: [0-9]+)?$"
)


def parse_prometheus(text: str) -> dict[str, float]:
    samples = {}
    types = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$", line)
            assert m, f"bad comment line: {line!r}"
            if m[1] == "TYPE":
                assert m[3] in {"counter", "gauge", "histogram", "summary", "untyped"}, line
                types[m[2]] = m[3]
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples[m["name"] + (m["labels"] or "")] = float(m["value"])
    for key in samples:
        name = key.split("{")[0]
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"sample {key} has no # TYPE"
    return samples


def test_metrics_are_prometheus_text(gw3):
    url = gw3.topic_url(f"{gw3.uid}.pin")
    for i in range(3):
        assert requests.post(url, json={"records": [{"value": i}, {"value": -i}]},
                             headers={"Content-Type": JSON_V2}, timeout=60).status_code == 200
    assert requests.post(url, data=b"{nope", headers={"Content-Type": JSON_V2}, timeout=60).status_code == 400
    assert requests.post(url, data=b'{"records":[]}', headers={"Content-Type": JSON_V2}, timeout=60).status_code == 422
    r = requests.get(f"{gw3.url}/metrics", timeout=60)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    s = parse_prometheus(r.text)
    assert s['pinpipe_gateway_requests_total{status="200"}'] == 3
    assert s['pinpipe_gateway_requests_total{status="400"}'] == 1
    assert s['pinpipe_gateway_requests_total{status="422"}'] == 1
    assert s['pinpipe_gateway_records_total{outcome="acknowledged"}'] == 6
    assert s['pinpipe_gateway_records_total{outcome="failed"}'] == 0
    count = s["pinpipe_gateway_request_duration_seconds_count"]
    assert count == 5
    buckets = sorted(
        ((float(k.split('le="')[1].split('"')[0]), v) for k, v in s.items()
         if k.startswith("pinpipe_gateway_request_duration_seconds_bucket")),
    )
    assert buckets[-1] == (float("inf"), count)
    values = [v for _, v in buckets]
    assert values == sorted(values), f"histogram buckets are not cumulative: {buckets}"
