"""Source → emulator → gateway → Kafka (Tansu) → sink → landing zone (moto S3), end to end.

Every record the emulator sent is in the landing zone exactly once: the multiset of row numbers
(`index` for pin, `ind` for geo and user) landed per topic equals the multiset CPython's `random`
draws for the seed and event count; object keys follow the Confluent S3-sink layout; the objects
of each partition chain from offset 0 to the partition's end offset with no gap and no overlap.
"""

from __future__ import annotations

import collections

import pytest
from conftest import (
    TABLES,
    Landing,
    check_contiguous,
    counter_diff,
    create_topics,
    drawn_rows,
    landed_rows,
    pinpipe,
    read_landing,
    run_emulator,
    run_sink_until_caught_up,
)


def test_draws_match_the_original_emulator():
    # The brief's (and the original script's) first rows for seed 100.
    assert drawn_rows(100, 3) == [7528, 2863, 5730]


def assert_exactly_once(landing: Landing, uid: str, seed: int, events: int, flush_size: int) -> list:
    objects = read_landing(landing)
    assert objects, f"nothing landed in {landing.url}"
    ends = check_contiguous(objects, uid)
    want = collections.Counter(drawn_rows(seed, events))
    got = landed_rows(objects, uid)
    for t in TABLES:
        assert got[t] == want, f"{uid}.{t}: landed rows differ from the draws: {counter_diff(got[t], want)}"
    assert sum(ends.values()) == 3 * events
    for o in objects:
        assert 1 <= len(o.records) <= flush_size, f"{o.key} holds {len(o.records)} records (flush size {flush_size})"
    return objects


def check_rows_are_the_sources(objects, uid):
    """Rows of one event agree with each other: pin, geo and user rows of row N carry N."""
    by_table = collections.defaultdict(dict)
    for o in objects:
        table = o.topic.split(".", 1)[1]
        for r in o.records:
            by_table[table][r["index" if table == "pin" else "ind"]] = r
    for table, rows in by_table.items():
        for n, r in rows.items():
            if table == "pin":
                assert {"unique_id", "title", "category", "follower_count"} <= set(r), r
            elif table == "geo":
                assert {"timestamp", "latitude", "longitude", "country"} <= set(r), r
            else:
                assert {"first_name", "last_name", "age", "date_joined"} <= set(r), r


def test_synthetic_source_lands_every_record_exactly_once(uid, bucket, procs):
    events, seed, flush = 400, 100, 50
    create_topics(uid, partitions=2)
    gw = procs.gateway(uid)
    summary = run_emulator(gw, events, seed, "--concurrency", 4)
    assert summary["requests_retried"] >= 0
    landing_url = f"s3://{bucket}"
    sink = run_sink_until_caught_up(uid, landing_url, flush)
    assert sink["records_landed"] == 3 * events, sink
    assert sink["records_by_topic"] == {f"{uid}.{t}": events for t in TABLES}, sink
    assert sink["records_already_landed"] == 0 and sink["objects_found"] == 0, sink
    landing = Landing(landing_url)
    objects = assert_exactly_once(landing, uid, seed, events, flush)
    assert sink["objects_created"] == len(objects), sink
    check_rows_are_the_sources(objects, uid)

    # A second run finds nothing new and writes nothing.
    again = run_sink_until_caught_up(uid, landing_url, flush)
    assert again["records_landed"] == 0 and again["objects_created"] == 0, again
    assert Landing(landing_url).count() == len(objects)

    # More events, then the sink again: the new records extend the chains, still exactly once.
    run_emulator(gw, events, seed + 1, "--concurrency", 4)
    more = run_sink_until_caught_up(uid, landing_url, flush)
    assert more["records_landed"] == 3 * events, more
    objects = read_landing(landing)
    check_contiguous(objects, uid)
    want = collections.Counter(drawn_rows(seed, events)) + collections.Counter(drawn_rows(seed + 1, events))
    got = landed_rows(objects, uid)
    for t in TABLES:
        assert got[t] == want, f"{uid}.{t}: {counter_diff(got[t], want)}"


def test_flush_size_one_writes_one_object_per_record(uid, bucket, procs):
    events, seed = 40, 7
    create_topics(uid)
    gw = procs.gateway(uid)
    run_emulator(gw, events, seed, "--concurrency", 4)
    landing_url = f"s3://{bucket}"
    sink = run_sink_until_caught_up(uid, landing_url, 1)
    assert sink["records_landed"] == sink["objects_created"] == 3 * events, sink
    objects = assert_exactly_once(Landing(landing_url), uid, seed, events, 1)
    assert len(objects) == 3 * events
    # Offsets 0..events-1 of each single-partition topic, one object each, as the original connector.
    for t in TABLES:
        starts = sorted(o.start for o in objects if o.topic == f"{uid}.{t}")
        assert starts == list(range(events))


@pytest.mark.parametrize("kind", ["s3-prefix", "local-dir"])
def test_landing_prefix_and_local_directory(uid, bucket, procs, tmp_path, kind):
    events, seed, flush = 60, 3, 16
    create_topics(uid)
    gw = procs.gateway(uid)
    run_emulator(gw, events, seed, "--concurrency", 2)
    landing_url = f"s3://{bucket}/landing/zone" if kind == "s3-prefix" else str(tmp_path / "landing")
    sink = run_sink_until_caught_up(uid, landing_url, flush)
    assert sink["records_landed"] == 3 * events, sink
    assert_exactly_once(Landing(landing_url), uid, seed, events, flush)
    if kind == "s3-prefix":
        # Everything under the prefix, nothing at the bucket's root.
        root = Landing(f"s3://{bucket}").keys()
        assert root and all(k.startswith("landing/zone/topics/") for k in root), root[:5]


def test_mysql_source_lands_every_record_exactly_once(uid, bucket, procs, mysql_database):
    database, creds = mysql_database
    load = pinpipe("source", "load-mysql", "--db-creds", creds, "--json", timeout=300).check()
    summary = load.json
    assert summary["database"] == database and summary["rows_per_table"] == 11_154, summary
    # Loading again is harmless (rows replaced, not duplicated).
    pinpipe("source", "load-mysql", "--db-creds", creds, "--json", timeout=300).check()
    from conftest import mysql_admin

    conn = mysql_admin()
    try:
        with conn.cursor() as cur:
            for table in ("pinterest_data", "geolocation_data", "user_data"):
                cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
                assert cur.fetchone()[0] == 11_154, table
    finally:
        conn.close()

    events, seed, flush = 300, 100, 50
    create_topics(uid, partitions=2)
    gw = procs.gateway(uid)
    run_emulator(gw, events, seed, "--concurrency", 4, "--source", "mysql", "--db-creds", creds)
    landing_url = f"s3://{bucket}"
    sink = run_sink_until_caught_up(uid, landing_url, flush)
    assert sink["records_landed"] == 3 * events, sink
    objects = assert_exactly_once(Landing(landing_url), uid, seed, events, flush)
    check_rows_are_the_sources(objects, uid)
    # Datetimes from MySQL reach the landing zone as text.
    geo = next(r for o in objects if o.topic == f"{uid}.geo" for r in o.records)
    assert isinstance(geo["timestamp"], str) and len(geo["timestamp"]) >= 19, geo


def test_the_demo_summary_fits_a_screen_or_two_and_names_the_rest(tmp_path):
    import re

    res = pinpipe("demo", "--events", 1000, "--dir", tmp_path / "demo", timeout=600).check()
    lines = res.stdout.splitlines()
    assert len(lines) < 150, f"{len(lines)} lines"
    assert "streaming half" in res.stdout
    lake = tmp_path / "demo" / "lake"
    # Each long table shows its first rows and says how to see the rest; the count is right.
    pattern = r"… (\d+) more rows: pinpipe query (\w+) --lake " + re.escape(str(lake))
    more = {name: rest for rest, name in re.findall(pattern, res.stdout)}
    assert "top_category_by_country" in more, res.stdout
    for name, rest in more.items():
        rows = pinpipe("query", name, "--lake", lake, "--json").check().json
        assert len(rows) == int(rest) + 8, name
    # --json keeps every row.
    full = pinpipe("demo", "--events", 200, "--dir", tmp_path / "demo2", "--json", timeout=600).check().json
    by_name = {a["name"]: a["rows"] for a in full["batch"]["analytics"]}
    assert len(by_name["top_category_by_country"]) > 8
    # A second run in the same directory starts over: new in-process Kafka, new landing zone.
    again = pinpipe("demo", "--events", 200, "--dir", tmp_path / "demo2", "--json", timeout=600).check().json
    assert again["sink"]["records_landed"] == 600 and again["batch"] == {**full["batch"], **{
        k: again["batch"][k] for k in again["batch"] if k.endswith("_secs") or k in ("run_id", "maintenance")}}
    # A directory the demo did not make is left alone.
    (tmp_path / "mine" / "landing").mkdir(parents=True)
    res = pinpipe("demo", "--events", 10, "--dir", tmp_path / "mine")
    assert res.returncode == 1 and "not made by pinpipe demo" in res.stderr, res.report()
