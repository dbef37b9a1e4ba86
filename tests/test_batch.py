"""The batch half against the real services: emulator → gateway → Tansu → sink → moto S3 → batch
→ Delta tables on S3; a batch run killed with SIGKILL and rerun; several batch runs writing the
same lake on S3 at once; the Delta tables as the `deltalake` Python package reads them."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import (
    PINPIPE_BIN,
    Landing,
    base_env,
    create_topics,
    drawn_rows,
    pinpipe,
    read_landing,
    run_emulator,
    run_sink_until_caught_up,
    s3_storage_options,
)

ANALYTICS = {
    "top_category_by_country": ["country", "category", "category_count"],
    "top_category_by_year": ["post_year", "category", "category_count"],
    "top_poster_by_country": ["country", "poster_name", "follower_count"],
    "top_country_by_followers": ["country", "follower_count"],
    "top_category_by_age_group": ["age_group", "category", "category_count"],
    "median_followers_by_age_group": ["age_group", "median_follower_count"],
    "users_joined_by_year": ["post_year", "number_users_joined"],
    "median_followers_by_join_year": ["post_year", "median_follower_count"],
    "median_followers_by_age_group_and_join_year": ["age_group", "post_year", "median_follower_count"],
}

# Column names and Delta types of the clean tables, as RULES.md defines them.
CLEAN = {
    "pin": [
        ("ind", "long"), ("unique_id", "string"), ("title", "string"), ("description", "string"),
        ("follower_count", "long"), ("poster_name", "string"), ("tag_list", "string"),
        ("is_image_or_video", "string"), ("image_src", "string"), ("save_location", "string"),
        ("category", "string"),
    ],
    "geo": [
        ("ind", "long"), ("country", "string"),
        ("coordinates", {"type": "array", "elementType": "double"}), ("timestamp", "timestamp"),
    ],
    "user": [("ind", "long"), ("user_name", "string"), ("age", "integer"), ("date_joined", "timestamp")],
}


def storage_options() -> dict:
    return s3_storage_options()


def delta_table(uri: str):
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=storage_options() if uri.startswith("s3://") else None)


def delta_columns(uri: str) -> list:
    schema = json.loads(delta_table(uri).schema().to_json())
    out = []
    for f in schema["fields"]:
        t = f["type"]
        if isinstance(t, dict):
            t = {k: v for k, v in t.items() if k in ("type", "elementType")}
        out.append((f["name"], t))
    return out


def rows(lake: str, sql: str) -> list[dict]:
    return pinpipe("query", "--sql", sql, "--lake", lake, "--json", check=True).json


def batch(landing: str, lake: str, uid: str, *extra) -> dict:
    return pinpipe(
        "batch", "--user-id", uid, "--landing", landing, "--lake", lake, "--json", *extra, timeout=600, check=True
    ).json


def test_batch_end_to_end_through_the_real_services(uid, bucket, procs):
    create_topics(uid, partitions=2)
    gateway = procs.gateway(uid)
    events, seed = 400, 11
    run_emulator(gateway, events, seed, "--concurrency", "4")
    landing = f"s3://{bucket}/landing"
    run_sink_until_caught_up(uid, landing, 37)
    lake = f"s3://{bucket}/lake"
    summary = batch(landing, lake, uid, "--quiet")

    drawn = drawn_rows(seed, events)
    landed = read_landing(Landing(landing))
    assert sum(len(o.records) for o in landed) == 3 * events
    for t in summary["tables"]:
        assert t["records_read"] == events, t
        assert t["dead_lettered"] == 0, t
        assert t["clean_rows"] == len(set(drawn)), t
        assert t["deduplicated"] == events - len(set(drawn)), t

    # The clean tables hold each drawn row once, with RULES.md's columns and types.
    for table, columns in CLEAN.items():
        uri = f"{lake}/batch/{table}"
        assert delta_columns(uri) == columns, uri
        data = delta_table(uri).to_pyarrow_table()
        inds = data.column("ind").to_pylist()
        assert sorted(inds) == sorted(set(drawn)), table
    for name, columns in ANALYTICS.items():
        uri = f"{lake}/analytics/{name}"
        assert [c for c, _ in delta_columns(uri)] == columns, uri
        assert delta_table(uri).to_pyarrow_table().num_rows > 0, name
    assert delta_table(f"{lake}/analytics/top_country_by_followers").to_pyarrow_table().num_rows == 1

    # What the analytics say agrees with the clean tables they come from.
    joined = rows(lake, "SELECT CAST(date_part('year', date_joined) AS INT) AS y, count(*) AS n FROM "
                        "(SELECT DISTINCT user_name, age, date_joined FROM \"user\") GROUP BY 1 ORDER BY 1")
    by_year = rows(lake, "SELECT post_year, number_users_joined FROM users_joined_by_year ORDER BY post_year")
    assert [(r["y"], r["n"]) for r in joined if 2015 <= r["y"] <= 2020] == \
        [(r["post_year"], r["number_users_joined"]) for r in by_year]

    # A second run with nothing new reads nothing and changes no clean row.
    again = batch(landing, lake, uid, "--quiet")
    assert [t["objects_read"] for t in again["tables"]] == [0, 0, 0]
    assert [t["clean_rows"] for t in again["tables"]] == [t["clean_rows"] for t in summary["tables"]]


def table_dump(lake: str) -> dict:
    out = {}
    for table in CLEAN:
        out[table] = rows(lake, f'SELECT * FROM "{table}" ORDER BY ind')
        out[f"_raw_{table}"] = rows(lake, f'SELECT count(*) AS n, count(DISTINCT _offset) AS d FROM "_raw_{table}"')
    for name, columns in ANALYTICS.items():
        out[name] = rows(lake, f"SELECT * FROM {name} ORDER BY {', '.join(columns[:-1])}")
    out["_dead_letters"] = rows(lake, "SELECT topic, object, line, raw FROM _dead_letters ORDER BY topic, object, line")
    return out


def test_batch_killed_with_sigkill_then_rerun_gives_exactly_one_clean_run(uid, tmp_path):
    landing = tmp_path / "landing"
    pinpipe("emulate", "landing", "--user-id", uid, "--landing", landing, "--events", 30000,
            "--flush-size", 250, "--seed", 5, check=True)
    # A malformed line, so dead letters are part of what must come out exactly once.
    bad = landing / "topics" / f"{uid}.geo" / "partition=0" / f"{uid}.geo+0+0000030000.json"
    bad.write_text('{"ind": 1, "timestamp": "2020-01-01 00:00:00", "latitude": 1, "longitude": 2, "country": "X"}\nnot json\n')

    reference = tmp_path / "reference"
    batch(str(landing), str(reference), uid, "--quiet")

    lake = tmp_path / "lake"
    killed_mid_run = 0
    for delay in (0.4, 0.9, 1.6, 2.4, 3.5):
        proc = subprocess.Popen(
            [PINPIPE_BIN, "batch", "--user-id", uid, "--landing", str(landing), "--lake", str(lake), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=base_env(),
        )
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
            killed_mid_run += 1
        proc.wait(timeout=60)
    assert killed_mid_run >= 2, "the batch runs finished before they could be killed; the test proved nothing"
    batch(str(landing), str(lake), uid, "--quiet")

    got, want = table_dump(str(lake)), table_dump(str(reference))
    for name in want:
        assert got[name] == want[name], f"{name} differs after kill -9 and rerun"
    assert want["_raw_pin"] == [{"n": 30000, "d": 30000}]
    assert len(want["_dead_letters"]) == 1


def test_several_batch_runs_writing_one_s3_lake_at_once(uid, bucket, tmp_path):
    landing = f"s3://{bucket}/landing"
    pinpipe("emulate", "landing", "--user-id", uid, "--landing", landing, "--events", 3000,
            "--flush-size", 100, "--seed", 9, check=True)
    lake = f"s3://{bucket}/lake"
    runs = [
        subprocess.Popen(
            [PINPIPE_BIN, "batch", "--user-id", uid, "--landing", landing, "--lake", lake, "--quiet", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base_env(),
        )
        for _ in range(3)
    ]
    outcomes = [r.communicate(timeout=600) + (r.returncode,) for r in runs]
    assert any(code == 0 for _, _, code in outcomes), outcomes
    for _, err, code in outcomes:
        if code != 0:
            # A writer that lost the race fails with a clear conflict error and wrote nothing twice.
            assert "conflict" in err.lower() or "concurrent" in err.lower() or "transaction" in err.lower(), err
    batch(landing, lake, uid, "--quiet")

    drawn = drawn_rows(9, 3000)
    for table in CLEAN:
        raw = delta_table(f"{lake}/batch/_raw_{table}").to_pyarrow_table()
        assert raw.num_rows == 3000, f"_raw_{table} holds {raw.num_rows} rows for 3000 landed records"
        assert len(set(raw.column("_offset").to_pylist())) == 3000
        clean = delta_table(f"{lake}/batch/{table}").to_pyarrow_table()
        assert sorted(clean.column("ind").to_pylist()) == sorted(set(drawn))


def run_and_kill_at(cmd: list, phrase: str, delay: float) -> bool:
    """Runs `cmd` with pinpipe's debug log and SIGKILLs it `delay` seconds after a log line holding
    `phrase`. True if it was killed while still running."""
    env = base_env(PINPIPE_LOG="warn,pinpipe=debug")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    killed = False
    for line in proc.stderr:
        if phrase in line:
            time.sleep(delay)
            killed = proc.poll() is None
            proc.kill()
            break
    proc.stderr.close()
    proc.wait(timeout=120)
    return killed


def test_daily_incremental_runs_equal_one_full_run_even_when_killed_mid_merge_and_mid_compaction(uid, tmp_path):
    """Six days landed one after the other, each followed by an incremental run (compacting
    whenever two small files pile up, vacuuming with no retention); on four days a first run is
    SIGKILLed just after it starts merging into a clean table or compacting a table, then run
    again. The tables must equal, row for row, those of one run over the whole landing zone."""
    import random

    landing, lake, full = tmp_path / "landing", tmp_path / "lake", tmp_path / "full"
    rng = random.Random(31)
    events, days = 2000, 6
    kills = {1: "merging", 2: "compacting", 3: "merging", 4: "compacting"}
    killed = 0
    for day in range(days):
        pinpipe("emulate", "landing", "--user-id", uid, "--landing", landing, "--events", events,
                "--flush-size", 250, "--seed", 40 + day, "--start-offset", day * events, check=True)
        if day == 2:
            # In a second partition, a record of ind 3 that beats every later day's (a higher
            # landing position), and a line that is no record (a dead letter, to come out once).
            bad = landing / "topics" / f"{uid}.geo" / "partition=1" / f"{uid}.geo+1+0000000000.json"
            bad.parent.mkdir(parents=True)
            bad.write_text('{"ind": 3, "timestamp": "2020-01-01 00:00:00", "latitude": 1, "longitude": 2, '
                           '"country": "X"}\nnot json\n')
        cmd = [PINPIPE_BIN, "batch", "--user-id", uid, "--landing", str(landing), "--lake", str(lake), "--quiet",
               "--compact-min-files", "2", "--vacuum-retention", "0"]
        if day in kills:
            killed += run_and_kill_at(cmd, kills[day], rng.uniform(0.0, 0.15))
        summary = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True, check=True,
                                            env=base_env(), timeout=600).stdout)
        # Each day's run reads that day's objects (and those a killed run had not committed), never all.
        assert sum(t["objects_read"] for t in summary["tables"]) <= 3 * (events // 250) + 1, summary
    assert killed >= 3, f"only {killed} runs were still running when killed; the test proved little"
    batch(str(landing), str(full), uid, "--quiet")

    got, want = table_dump(str(lake)), table_dump(str(full))
    for name in want:
        assert got[name] == want[name], f"{name}: daily runs differ from one full run"
    assert want["_raw_pin"] == [{"n": days * events, "d": days * events}]
    assert len(want["_dead_letters"]) == 1
    assert rows(str(lake), "SELECT country FROM geo WHERE ind = 3") == [{"country": "X"}]
    # Compaction kept the raw tables to a few files, and vacuum removed the replaced ones.
    raw_files = list((lake / "batch" / "_raw_pin").glob("*.parquet"))
    assert len(delta_table(str(lake / "batch" / "_raw_pin")).file_uris()) <= 2
    assert len(raw_files) <= 3, raw_files
