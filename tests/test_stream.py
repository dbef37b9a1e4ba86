"""The streaming half against a real Kinesis API server (kinesalite) and S3 (moto): the gateway's
Kinesis-proxy resources and their error contract, `pinpipe streams`, the streaming emulator, and
`pinpipe stream` writing every record exactly once into the Delta stream tables, also when the
reader is SIGKILLed again and again while records flow.
"""

from __future__ import annotations

import base64
import collections
import datetime
import json
import random
import threading
import time

import requests
from conftest import (
    TABLES,
    base_env,
    create_streams,
    delta_rows,
    drawn_rows,
    kinesis_client,
    new_uid,
    pinpipe,
    s3_client,
    wait_for,
)

ROW_KEY = {"pin": "index", "geo": "ind", "user": "ind"}


def stream_name(uid: str, table: str) -> str:
    return f"streaming-{uid}-{table}"


def kinesis_records(stream: str) -> list[dict]:
    """Every record of every shard of a stream, read straight from Kinesis."""
    k = kinesis_client()
    out = []
    for shard in k.list_shards(StreamName=stream)["Shards"]:
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"]
        while it:
            page = k.get_records(ShardIterator=it, Limit=10000)
            out.extend(page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            it = page.get("NextShardIterator")
    return out


def stream_gateway(procs, uid: str, *extra, env: dict | None = None):
    """A gateway whose Kinesis side is in front of kinesalite (the Kafka side is not used here)."""
    return procs.gateway(uid, *extra, bootstrap="127.0.0.1:9", env=env)


# ------------------------------------------------------------------------------------------------
# pinpipe streams


def test_streams_are_created_described_listed_and_deleted(services):
    uid = new_uid()
    res = pinpipe("streams", "create", "--user-id", uid, "--shards", 2, "--json", timeout=120).check()
    assert [c["changed"] for c in res.json] == [True, True, True], res.report()
    again = pinpipe("streams", "create", "--user-id", uid, "--shards", 2, "--json", timeout=120).check()
    assert [c["changed"] for c in again.json] == [False, False, False]
    assert all("already exists" in c["message"] for c in again.json)

    described = pinpipe("streams", "describe", "--user-id", uid, "--json").check().json
    assert [d["name"] for d in described] == [stream_name(uid, t) for t in TABLES]
    for d in described:
        assert d["status"] == "ACTIVE" and d["open_shards"] == 2
        assert [s["parent_shard_id"] for s in d["shards"]] == [None, None]

    # A split shows in describe as a closed parent and two children naming it.
    k = kinesis_client()
    pin = stream_name(uid, "pin")
    first = described[0]["shards"][0]
    middle = (int(first["starting_hash_key"]) + int(first["ending_hash_key"])) // 2
    k.split_shard(StreamName=pin, ShardToSplit=first["shard_id"], NewStartingHashKey=str(middle))
    wait_for(lambda: k.describe_stream_summary(StreamName=pin)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
             30, what="the split to finish")
    text = pinpipe("streams", "describe", "--user-id", uid, "--stream", pin).check().stdout
    assert "closed" in text and text.count(first["shard_id"]) == 3, text

    listed = pinpipe("streams", "list", "--json").check().json
    assert set(stream_name(uid, t) for t in TABLES) <= set(listed)

    gone = pinpipe("streams", "delete", "--user-id", uid, "--json", timeout=120).check().json
    assert [c["changed"] for c in gone] == [True, True, True]
    assert not set(stream_name(uid, t) for t in TABLES) & set(pinpipe("streams", "list", "--json").check().json)
    res = pinpipe("streams", "describe", "--user-id", uid)
    assert res.returncode == 1 and "not found" in res.stderr and res.stderr.count("\n") == 1, res.report()


# ------------------------------------------------------------------------------------------------
# the gateway's Kinesis side


def test_the_original_streaming_client_works_unchanged(procs, services):
    uid = new_uid()
    create_streams(uid, shards=2)
    gw = stream_gateway(procs, uid)
    row = {"ind": 7528, "timestamp": datetime.datetime(2020, 8, 28, 3, 52, 47), "latitude": -89.9787,
           "longitude": -173.293, "country": "Albania"}
    name = stream_name(uid, "geo")
    invoke_url = f"{gw.url}/streams/{name}/record"
    # The original script's request, character for character.
    payload = json.dumps({"StreamName": name, "Data": row, "PartitionKey": "partition-1"}, default=str)
    headers = {"Content-Type": "application/json"}
    response = requests.request("PUT", invoke_url, headers=headers, data=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ShardId"].startswith("shardId-") and body["SequenceNumber"].isdigit(), body
    records = kinesis_records(name)
    assert len(records) == 1
    stored = records[0]
    assert stored["SequenceNumber"] == body["SequenceNumber"] and stored["PartitionKey"] == "partition-1"
    assert json.loads(stored["Data"]) == json.loads(json.dumps(row, default=str))
    assert json.loads(stored["Data"])["timestamp"] == "2020-08-28 03:52:47"


def test_put_records_and_the_read_resources(procs, services):
    uid = new_uid()
    create_streams(uid, shards=1)
    gw = stream_gateway(procs, uid)
    name = stream_name(uid, "pin")
    body = {"records": [{"data": "plain text", "partition-key": "a"}, {"data": {"index": 1}, "partition-key": "b"},
                        {"data": [1, 2], "partition-key": "c"}]}
    r = requests.put(f"{gw.url}/streams/{name}/records", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["FailedRecordCount"] == 0 and len(r.json()["Records"]) == 3
    assert all(x["ShardId"] == "shardId-000000000000" for x in r.json()["Records"])

    d = requests.get(f"{gw.url}/streams/{name}").json()["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE" and [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000000"]
    assert requests.get(f"{gw.url}/streams").json() == {"HasMoreStreams": False, "StreamNames": sorted(
        stream_name(uid, t) for t in TABLES)}

    it = requests.get(f"{gw.url}/streams/{name}/sharditerator", params={"shard-id": "shardId-000000000000"})
    assert it.status_code == 200, it.text
    page = requests.get(f"{gw.url}/streams/{name}/records", headers={"Shard-Iterator": it.json()["ShardIterator"]})
    assert page.status_code == 200, page.text
    data = [base64.b64decode(x["Data"]) for x in page.json()["Records"]]
    assert data == [b"plain text", b'{"index": 1}', b"[1, 2]"]
    assert [x["SequenceNumber"] for x in page.json()["Records"]] == [x["SequenceNumber"] for x in r.json()["Records"]]
    assert page.json()["NextShardIterator"]


def test_bad_input_at_the_kinesis_resources_gets_a_4xx_with_a_json_body_while_good_traffic_flows(procs, services):
    uid = new_uid()
    create_streams(uid, shards=1)
    # The allowlist names one stream that does not exist, to tell "unknown" from "not allowed".
    missing = f"streaming-{uid}-missing"
    gw = stream_gateway(procs, uid, "--api-key", "sekret-key", *[
        a for t in TABLES for a in ("--allow-stream", stream_name(uid, t))], "--allow-stream", missing)
    good_stream = stream_name(uid, "user")
    key = {"x-api-key": "sekret-key"}
    stop = threading.Event()
    sent: list[int] = []
    failures: list[str] = []

    def good_traffic():
        n = 0
        while not stop.is_set():
            r = requests.put(f"{gw.url}/streams/{good_stream}/record", headers=key,
                             json={"StreamName": good_stream, "Data": {"ind": n}, "PartitionKey": f"k{n}"})
            if r.status_code == 200:
                sent.append(n)
            else:
                failures.append(f"{r.status_code} {r.text}")
            n += 1

    worker = threading.Thread(target=good_traffic)
    worker.start()
    name = stream_name(uid, "pin")
    url = f"{gw.url}/streams/{name}/record"
    cases = [
        ("bad JSON", url, key, b'{"Data": {"a": 1}, "PartitionKey": ', 400, 400, "not valid JSON"),
        ("missing PartitionKey", url, key, json.dumps({"StreamName": name, "Data": {"a": 1}}).encode(), 422, 42206,
         "PartitionKey is missing"),
        ("Data over 1 MiB", url, key, json.dumps({"Data": "x" * (1024 * 1024), "PartitionKey": "p"}).encode(), 413,
         413, "at most 1048576"),
        ("unknown stream", f"{gw.url}/streams/{missing}/record", key,
         json.dumps({"Data": {"a": 1}, "PartitionKey": "p"}).encode(), 404, 40401, "not found"),
        ("stream outside the allowlist", f"{gw.url}/streams/streaming-{new_uid()}-pin/record", key,
         json.dumps({"Data": {"a": 1}, "PartitionKey": "p"}).encode(), 403, 40301, "allowlist"),
        ("wrong API key", url, {"x-api-key": "nope"}, json.dumps({"Data": {"a": 1}, "PartitionKey": "p"}).encode(),
         403, 40301, "x-api-key"),
        ("no API key", url, {}, json.dumps({"Data": {"a": 1}, "PartitionKey": "p"}).encode(), 403, 40301, "x-api-key"),
        ("StreamName of another stream", url, key,
         json.dumps({"StreamName": good_stream, "Data": {"a": 1}, "PartitionKey": "p"}).encode(), 422, 42206,
         "differs"),
        ("501 records", f"{gw.url}/streams/{name}/records", key,
         json.dumps({"records": [{"data": 1, "partition-key": "k"}] * 501}).encode(), 422, 42206, "1 to 500"),
        ("records not a list", f"{gw.url}/streams/{name}/records", key, b'{"records": {}}', 422, 42206, "records"),
    ]
    try:
        for what, target, headers, body, status, code, words in cases:
            r = requests.put(target, headers={"Content-Type": "application/json", **headers}, data=body)
            assert r.status_code == status, (what, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json"), (what, r.headers)
            assert r.json()["error_code"] == code and words in r.json()["message"], (what, r.json())
        r = requests.get(f"{gw.url}/streams/{name}/records", headers=key)
        assert r.status_code == 400 and "Shard-Iterator" in r.json()["message"], r.text
        r = requests.get(f"{gw.url}/streams/{name}/sharditerator", headers=key)
        assert r.status_code == 400 and "shard-id" in r.json()["message"], r.text
    finally:
        time.sleep(0.5)
        stop.set()
        worker.join()
    assert not failures, failures[:3]
    assert len(sent) > 10
    stored = [json.loads(r["Data"])["ind"] for r in kinesis_records(good_stream)]
    assert sorted(stored) == sorted(sent)
    assert kinesis_records(name) == [], "no rejected record reached Kinesis"


# ------------------------------------------------------------------------------------------------
# pinpipe stream: emulator -> gateway -> Kinesis -> Delta


def emulate_stream(gw, events: int, seed: int, *extra) -> dict:
    res = pinpipe("emulate", "stream", "--user-id", gw.uid, "--gateway", gw.url, "--events", events, "--seed", seed,
                  "--no-sleep", "--quiet", "--json", *extra, timeout=600)
    assert res.returncode == 0, res.report()
    return res.json


def stream_tables(lake: str, uid: str) -> dict[str, list[dict]]:
    return {t: delta_rows(f"{lake}/stream/{uid}_{t}_table") for t in TABLES}


def assert_exactly_once(tables: dict[str, list[dict]], seed: int, events: int, draws: list[int] | None = None):
    want = collections.Counter(draws if draws is not None else drawn_rows(seed, events))
    for t, rows in tables.items():
        got = collections.Counter(r["ind"] for r in rows)
        assert got == want, f"{t}: missing {sum((want - got).values())}, extra {sum((got - want).values())}"
        positions = [(r["shard_id"], r["sequence_number"]) for r in rows]
        assert len(set(positions)) == len(positions), f"{t}: a Kinesis record appears twice"


def test_emulator_to_delta_every_record_exactly_once_and_cleaned(procs, services):
    uid = new_uid()
    create_streams(uid, shards=2)
    bucket = f"lake-{uid}"
    s3_client().create_bucket(Bucket=bucket)
    lake = f"s3://{bucket}/lake"
    gw = stream_gateway(procs, uid)
    summary = emulate_stream(gw, 150, 5, "--concurrency", 4)
    assert summary["events_sent"] == 150 and summary["events_failed"] == 0

    res = pinpipe("stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json", timeout=300).check()
    assert sum(res.json["rows"].values()) == 450 and res.json["dead_letters"] == 0, res.report()
    tables = stream_tables(lake, uid)
    assert_exactly_once(tables, 5, 150)

    # Cleaned per RULES.md, with the record's position after the clean columns.
    pin = tables["pin"]
    assert list(pin[0]) == ["ind", "unique_id", "title", "description", "follower_count", "poster_name",
                            "tag_list", "is_image_or_video", "image_src", "save_location", "category",
                            "shard_id", "sequence_number", "arrival_time"]
    assert all(r["follower_count"] is None or isinstance(r["follower_count"], int) for r in pin)
    assert all(r["save_location"] is None or r["save_location"].startswith("/") for r in pin)
    assert all(r["title"] != "No Title Data Available" for r in pin)
    geo = tables["geo"]
    assert all(len(r["coordinates"]) == 2 for r in geo)
    user = tables["user"]
    assert list(user[0])[:4] == ["ind", "user_name", "age", "date_joined"]
    assert all(r["arrival_time"] is not None and r["shard_id"].startswith("shardId-") for r in user)

    # The same rows as batch's cleaning gives: a row drawn twice is two rows here, one there.
    sent = {json.loads(r["Data"])[ROW_KEY["pin"]]: json.loads(r["Data"]) for r in kinesis_records(stream_name(uid, "pin"))}
    assert set(r["ind"] for r in pin) == set(sent)

    # A second run appends only what came since.
    emulate_stream(gw, 40, 6)
    again = pinpipe("stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json", timeout=300).check()
    assert sum(again.json["rows"].values()) == 120, again.report()
    assert_exactly_once(stream_tables(lake, uid), 0, 0, drawn_rows(5, 150) + drawn_rows(6, 40))
    nothing = pinpipe("stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json", timeout=300).check()
    assert sum(nothing.json["rows"].values()) == 0 and nothing.json["commits"] == 0, nothing.report()


def test_undecodable_records_go_to_the_dead_letters_with_their_bytes(tmp_path, services):
    uid = new_uid()
    create_streams(uid, shards=1)
    k = kinesis_client()
    name = stream_name(uid, "user")
    payloads = [b'{"ind": 1, "first_name": "Ann", "last_name": "Lee", "age": 33, "date_joined": "2016-01-01 00:00:00"}',
                b"not json", b"", b"\xff\xfe", b'{"first_name": "no key"}', b"[1, 2]",
                b'{"ind": 2, "first_name": " Bo ", "age": "40", "date_joined": "2017-02-03 04:05:06"}']
    for i, p in enumerate(payloads):
        k.put_record(StreamName=name, Data=p, PartitionKey=f"k{i}")
    lake = tmp_path / "lake"
    res = pinpipe("stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json", timeout=300).check()
    assert res.json["dead_letters"] == 5, res.report()
    rows = delta_rows(lake / "stream" / f"{uid}_user_table")
    assert sorted((r["ind"], r["user_name"], r["age"]) for r in rows) == [(1, "Ann Lee", 33), (2, "Bo", 40)]
    dead = delta_rows(lake / "stream" / "_dead_letters")
    assert sorted(d["raw_bytes"] for d in dead) == sorted(payloads[1:6])
    assert all(d["stream"] == name and d["shard_id"] == "shardId-000000000000" and d["error"] for d in dead)
    # Run again: nothing is read twice, no dead letter is written twice.
    again = pinpipe("stream", "--user-id", uid, "--lake", lake, "--until-caught-up", "--json", timeout=300).check()
    assert again.json["dead_letters"] == 0 and len(delta_rows(lake / "stream" / "_dead_letters")) == 5


def test_a_reader_killed_at_random_moments_loses_and_duplicates_nothing(procs, tmp_path, services):
    uid = new_uid()
    create_streams(uid, shards=2)
    lake = str(tmp_path / "lake")
    gw = stream_gateway(procs, uid)
    events, seed = 600, 11
    emulator = procs.start("emulate", "emulate", "stream", "--user-id", uid, "--gateway", gw.url, "--events", events,
                           "--seed", seed, "--no-sleep", "--concurrency", 2, "--quiet")
    rng = random.Random(4)
    kills = 0
    # A stable worker id: a restarted reader takes its own leases back at once.
    args = ("stream", "--user-id", uid, "--lake", lake, "--worker-id", "reader-a", "--commit-interval", 0.2)
    while kills < 12:
        reader = procs.start("reader", *args)
        time.sleep(rng.uniform(0.5, 3.0))
        assert reader.running(), reader.report()
        reader.kill()
        kills += 1
    assert emulator.wait(600) == 0, emulator.report()
    res = pinpipe(*args, "--until-caught-up", "--json", timeout=300).check()
    assert res.json["lost_races"] == 0, res.report()
    assert_exactly_once(stream_tables(lake, uid), seed, events)


# ------------------------------------------------------------------------------------------------
# resharding, shared shards, an unreachable endpoint


def put_rows(uid: str, start: int, count: int, keys: int = 16) -> list[tuple[str, int]]:
    """Puts `count` pin, geo and user rows (ind start..start+count) straight to Kinesis, each with
    partition key k<ind % keys>, in PutRecords calls of 100; returns (key, ind) in put order."""
    k = kinesis_client()
    order = []
    for table in TABLES:
        name = stream_name(uid, table)
        for lo in range(start, start + count, 100):
            entries = []
            for i in range(lo, min(lo + 100, start + count)):
                row = {ROW_KEY[table]: i, "title": f"t{i}", "country": "Chad", "first_name": "A", "age": 30,
                       "timestamp": "2020-01-01 00:00:00", "date_joined": "2016-01-01 00:00:00"}
                entries.append({"Data": json.dumps(row).encode(), "PartitionKey": f"k{i % keys}"})
            while entries:
                out = k.put_records(StreamName=name, Records=entries)
                retry = [e for e, r in zip(entries, out["Records"]) if "ErrorCode" in r]
                if table == "pin":
                    order.extend((e["PartitionKey"], json.loads(e["Data"])[ROW_KEY[table]])
                                 for e, r in zip(entries, out["Records"]) if "ErrorCode" not in r)
                entries = retry
    return order


def rows_in_commit_order(table_dir) -> list[dict]:
    """A local Delta table's rows in the order they were appended: commit by commit, file by file."""
    import pyarrow.parquet as pq

    rows = []
    for log in sorted((table_dir / "_delta_log").glob("*.json")):
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                path = table_dir / urllib_unquote(action["add"]["path"])
                rows.extend(pq.read_table(path).to_pylist())
    return rows


def urllib_unquote(path: str) -> str:
    import urllib.parse

    return urllib.parse.unquote(path)


def wait_for_rows(lake, uid: str, want: int, timeout: float = 180) -> None:
    def complete():
        try:
            return all(len(delta_rows(f"{lake}/stream/{uid}_{t}_table")) >= want for t in TABLES)
        except Exception:
            return False
    wait_for(complete, timeout, interval=1, what=f"{want} rows in each stream table")


def assert_each_ind_once(lake, uid: str, count: int) -> None:
    for t in TABLES:
        got = collections.Counter(r["ind"] for r in delta_rows(f"{lake}/stream/{uid}_{t}_table"))
        assert got == collections.Counter(range(count)), f"{t}: missing {sorted(set(range(count)) - set(got))[:5]}, " \
                                                         f"twice {[i for i, n in got.items() if n > 1][:5]}"


def test_a_split_and_a_merge_lose_nothing_and_keep_the_order_of_each_partition_key(procs, tmp_path, services):
    uid = new_uid()
    create_streams(uid, shards=2)
    lake = tmp_path / "lake"
    reader = procs.start("reader", "stream", "--user-id", uid, "--lake", lake, "--commit-interval", 0.2,
                         "--lease-duration", 3)
    k = kinesis_client()
    pin = stream_name(uid, "pin")
    order = put_rows(uid, 0, 400)
    shards = {s["ShardId"]: s for s in k.list_shards(StreamName=pin)["Shards"]}
    first = shards["shardId-000000000000"]["HashKeyRange"]
    k.split_shard(StreamName=pin, ShardToSplit="shardId-000000000000",
                  NewStartingHashKey=str((int(first["StartingHashKey"]) + int(first["EndingHashKey"])) // 2))
    wait_for(lambda: k.describe_stream_summary(StreamName=pin)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
             30, what="the split")
    order += put_rows(uid, 400, 400)
    # Merge the upper child of the split with its neighbour, the stream's other original shard.
    children = [s for s in k.list_shards(StreamName=pin)["Shards"] if s.get("ParentShardId") == "shardId-000000000000"]
    upper = max(children, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    k.merge_shards(StreamName=pin, ShardToMerge=upper["ShardId"], AdjacentShardToMerge="shardId-000000000001")
    wait_for(lambda: k.describe_stream_summary(StreamName=pin)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
             30, what="the merge")
    order += put_rows(uid, 800, 400)
    wait_for_rows(lake, uid, 1200)
    assert reader.stop() == 0, reader.report()
    assert_each_ind_once(lake, uid, 1200)

    rows = rows_in_commit_order(lake / "stream" / f"{uid}_pin_table")
    assert {r["shard_id"] for r in rows} == {f"shardId-00000000000{i}" for i in range(5)}
    put_position = {ind: i for i, (_, ind) in enumerate(order)}
    by_key = collections.defaultdict(list)
    for r in rows:
        by_key[f"k{r['ind'] % 16}"].append(put_position[r["ind"]])
    for key, positions in by_key.items():
        assert positions == sorted(positions), f"rows of partition key {key} are out of PutRecord order"


def lease_owners(lake) -> dict[str, str]:
    out = {}
    for f in (lake / "stream" / "_leases").glob("*/*.json"):
        out[f"{f.parent.name}/{f.stem}"] = json.loads(f.read_text())["owner"]
    return out


def test_two_readers_share_the_shards_and_one_takes_over_when_the_other_is_killed(procs, tmp_path, services):
    uid = new_uid()
    create_streams(uid, shards=2)
    lake = tmp_path / "lake"
    args = ("stream", "--user-id", uid, "--lake", lake, "--commit-interval", 0.2, "--lease-duration", 3)
    a = procs.start("reader-a", *args, "--worker-id", "reader-a")
    b = procs.start("reader-b", *args, "--worker-id", "reader-b")
    wait_for(lambda: set(lease_owners(lake).values()) == {"reader-a", "reader-b"} and len(lease_owners(lake)) == 6,
             60, what="both readers to hold leases")
    put_rows(uid, 0, 300)
    wait_for_rows(lake, uid, 1)
    a.kill()
    put_rows(uid, 300, 300)
    wait_for(lambda: set(lease_owners(lake).values()) == {"reader-b"}, 60, what="reader-b to take every lease over")
    put_rows(uid, 600, 300)
    wait_for_rows(lake, uid, 900)
    assert b.stop() == 0, b.report()
    assert_each_ind_once(lake, uid, 900)


def test_the_reader_waits_while_kinesis_is_unreachable_and_resumes(procs, tmp_path, services):
    from conftest import KINESIS_ENDPOINT, FaultyProxy

    uid = new_uid()
    create_streams(uid, shards=2)
    lake = tmp_path / "lake"
    proxy = FaultyProxy(KINESIS_ENDPOINT)
    try:
        reader = procs.start("reader", "stream", "--user-id", uid, "--lake", lake, "--commit-interval", 0.2,
                             env=base_env(AWS_ENDPOINT_URL_KINESIS=proxy.url))
        put_rows(uid, 0, 200)
        wait_for_rows(lake, uid, 1)
        proxy.outage("refuse")
        put_rows(uid, 200, 200)
        time.sleep(4)
        proxy.outage("reset")
        time.sleep(2)
        assert reader.running(), reader.report()
        proxy.mode = "pass"
        put_rows(uid, 400, 200)
        wait_for_rows(lake, uid, 600)
        assert reader.stop() == 0, reader.report()
    finally:
        proxy.close()
    assert "backing off" in reader.stderr(), reader.report()
    assert_each_ind_once(lake, uid, 600)


def test_kinesis_throttling_is_a_retriable_503_at_the_gateway_and_waited_out_by_the_reader(procs, tmp_path, services):
    from conftest import KINESIS_ENDPOINT, FaultyProxy

    uid = new_uid()
    create_streams(uid, shards=1)
    proxy = FaultyProxy(KINESIS_ENDPOINT)
    lake = tmp_path / "lake"
    try:
        env = base_env(AWS_ENDPOINT_URL_KINESIS=proxy.url)
        gw = stream_gateway(procs, uid, env=env)
        name = stream_name(uid, "geo")
        put = {"StreamName": name, "Data": {"ind": 1}, "PartitionKey": "p"}
        proxy.outage("throttle")
        r = requests.put(f"{gw.url}/streams/{name}/record", json=put)
        assert r.status_code == 503, r.text
        assert r.json()["error_code"] == 50003 and "ProvisionedThroughputExceeded" in r.json()["message"], r.text
        assert r.headers["Retry-After"] == "1"
        proxy.outage("pass")
        put_rows(uid, 0, 100)
        reader = procs.start("reader", "stream", "--user-id", uid, "--lake", lake, "--commit-interval", 0.2, env=env)
        wait_for_rows(lake, uid, 1)
        put_rows(uid, 100, 100)
        proxy.outage("throttle")
        time.sleep(8)
        assert reader.running(), reader.report()
        proxy.outage("pass")
        wait_for_rows(lake, uid, 200)
        assert reader.stop() == 0, reader.report()
    finally:
        proxy.close()
    assert "throttling or unreachable" in reader.stderr(), reader.report()
    assert_each_ind_once(lake, uid, 200)
