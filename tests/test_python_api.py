"""The Python module (`import pinpipe`, the wheel built by scripts/test.sh into the test venv): one
function per job returning the CLI's `--json` summary, `query` as a pyarrow.Table, the exception
hierarchy with no secret in a message, the settings' precedence, Ctrl-C stopping a running sink
with the data exactly once, a call after `os.fork()`, the core's events in Python's logging, and
the wheel's `pinpipe` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pinpipe
import pyarrow as pa
import pytest
from conftest import (
    BOOTSTRAP,
    PINPIPE_BIN,
    Landing,
    base_env,
    check_contiguous,
    create_topics,
    drawn_rows,
    read_landing,
    run_emulator,
    run_sink_until_caught_up,
    wait_for,
)
from conftest import (
    pinpipe as cli,
)
from test_batch import ANALYTICS, delta_table

# pyarrow types of the clean tables, as RULES.md defines them.
CLEAN_TYPES = {
    "pin": {
        "ind": pa.int64(), "unique_id": pa.string(), "title": pa.string(), "description": pa.string(),
        "follower_count": pa.int64(), "poster_name": pa.string(), "tag_list": pa.string(),
        "is_image_or_video": pa.string(), "image_src": pa.string(), "save_location": pa.string(),
        "category": pa.string(),
    },
    "geo": {
        "ind": pa.int64(), "country": pa.string(), "coordinates": pa.list_(pa.float64()),
        "timestamp": pa.timestamp("us", tz="UTC"),
    },
    "user": {
        "ind": pa.int64(), "user_name": pa.string(), "age": pa.int32(), "date_joined": pa.timestamp("us", tz="UTC"),
    },
}


def by_ind(row: dict) -> int:
    return row["ind"]


def python(script: str, *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs a Python script in a fresh interpreter of the test venv."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout,
        env=env if env is not None else base_env(), stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def landed(tmp_path, uid):
    """A local landing zone of 600 drawn events (flush size 100), written by the Python API."""
    landing = tmp_path / "landing"
    summary = pinpipe.emulate("landing", user_id=uid, landing=landing, events=600, flush_size=100, seed=3)
    assert summary == {
        "records_per_topic": 600, "objects_written": 18, "objects_already_present": 0,
        "bytes_written": summary["bytes_written"],
    }
    return landing


def test_batch_returns_the_cli_summary_and_the_same_tables(landed, uid, tmp_path):
    py = pinpipe.batch(user_id=uid, landing=landed, lake=tmp_path / "py-lake")
    ref = cli("batch", "--user-id", uid, "--landing", landed, "--lake", tmp_path / "cli-lake", "--json",
              check=True).json
    assert set(py) == set(ref)
    drawn = set(drawn_rows(3, 600))
    for got, want in zip(py["tables"], ref["tables"]):
        assert {k: v for k, v in got.items()} == want
        assert got["clean_rows"] == len(drawn) and got["records_read"] == 600
    assert py["analytics"] == ref["analytics"]
    assert [a["name"] for a in py["analytics"]] == list(ANALYTICS)

    # Run again: nothing new is read, nothing changes.
    again = pinpipe.batch(user_id=uid, landing=landed, lake=tmp_path / "py-lake")
    assert [t["objects_read"] for t in again["tables"]] == [0, 0, 0]
    assert again["analytics"] == py["analytics"]


def test_batch_stages_run_apart(landed, uid, tmp_path):
    lake = tmp_path / "lake"
    clean = pinpipe.batch(user_id=uid, landing=landed, lake=lake, only="clean")
    assert clean["analytics"] == [] and [t["records_read"] for t in clean["tables"]] == [600, 600, 600]
    assert not (lake / "analytics").exists()
    analytics = pinpipe.batch(lake=lake, only="analytics")
    assert analytics["tables"] == []
    assert [a["name"] for a in analytics["analytics"]] == list(ANALYTICS)
    for name in ANALYTICS:
        assert delta_table(str(lake / "analytics" / name)).to_pyarrow_table().num_rows == len(
            next(a["rows"] for a in analytics["analytics"] if a["name"] == name)
        )
    with pytest.raises(pinpipe.ConfigError, match="only"):
        pinpipe.batch(lake=lake, only="everything")


def test_query_gives_pyarrow_tables_with_the_rules_types(landed, uid, tmp_path):
    lake = tmp_path / "lake"
    pinpipe.batch(user_id=uid, landing=landed, lake=lake)
    for table, types in CLEAN_TYPES.items():
        got = pinpipe.query(table, lake=lake)
        assert isinstance(got, pa.Table)
        assert dict(zip(got.schema.names, got.schema.types)) == types, table
        # The same rows the deltalake package reads from the table.
        want = delta_table(str(lake / "batch" / table)).to_pyarrow_table()
        assert sorted(got.to_pylist(), key=by_ind) == sorted(want.to_pylist(), key=by_ind), table
    top = pinpipe.query("top_country_by_followers", lake=lake)
    assert top.num_rows == 1 and top.schema.names == ["country", "follower_count"]
    counted = pinpipe.query(sql="SELECT count(*) AS n FROM pin", lake=lake)
    assert counted.to_pylist() == [{"n": len(set(drawn_rows(3, 600)))}]
    empty = pinpipe.query(sql="SELECT ind, category FROM pin WHERE false", lake=lake)
    assert empty.num_rows == 0 and empty.schema.names == ["ind", "category"]
    assert {t["name"] for t in pinpipe.lake_tables()} >= set(CLEAN_TYPES) | set(ANALYTICS)


def test_errors_are_pinpipe_error_subclasses_without_secrets(landed, uid, tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(pinpipe.ConfigError, match="flush_sise"):
        pinpipe.sink(flush_sise=10)
    bad = tmp_path / "pinpipe.yaml"
    bad.write_text("lakee: somewhere\n")
    with pytest.raises(pinpipe.ConfigError, match="lakee"):
        pinpipe.batch(config=bad)
    with pytest.raises(pinpipe.ConfigError, match="no Kafka configured"):
        pinpipe.sink(landing=str(tmp_path / "x"), bootstrap_servers="")
    pinpipe.batch(user_id=uid, landing=landed, lake=lake)
    with pytest.raises(pinpipe.DataError, match="nope"):
        pinpipe.query(sql="SELECT nope FROM pin", lake=lake)
    with pytest.raises(pinpipe.ConfigError, match="no table named"):
        pinpipe.query("pins", lake=lake)

    secret = "s3cr3t-aws-key-that-must-not-leak"
    aws = {"access_key_id": "AKIATESTING", "secret_access_key": secret, "session_token": secret + "-token"}
    with pytest.raises(pinpipe.StorageError) as err:
        pinpipe.batch(user_id=uid, landing=f"s3://no-such-bucket-{uid}/landing", lake=str(lake), aws=aws)
    assert secret not in str(err.value) and "no-such-bucket" in str(err.value)

    password = "db-pa55word-that-must-not-leak"
    creds = tmp_path / "db_creds.yaml"
    creds.write_text(f"HOST: 127.0.0.1\nUSER: root\nPASSWORD: {password}\nDATABASE: pinterest_data\nPORT: 13306\n")
    with pytest.raises(pinpipe.SourceError) as err:
        pinpipe.emulate(source="mysql", db_creds=creds, events=1, gateway="http://127.0.0.1:9", retry_for=0)
    assert password not in str(err.value)
    assert issubclass(pinpipe.StorageError, pinpipe.PinpipeError) and issubclass(pinpipe.PinpipeError, Exception)


def test_settings_come_from_arguments_then_environment_then_file(tmp_path, uid):
    config = tmp_path / "pinpipe.yaml"
    config.write_text(f"user_id: {uid}\nflush_size: 5\nevents: 20\n")
    script = f"""
        import json, sys, pinpipe
        landing, given = {str(tmp_path)!r} + "/" + sys.argv[1], json.loads(sys.argv[2])
        print(json.dumps(pinpipe.emulate("landing", landing=landing, config={str(config)!r}, **given)))
    """

    def objects(name: str, given: dict, **env: str) -> int:
        res = subprocess.run([sys.executable, "-c", textwrap.dedent(script), name, json.dumps(given)],
                             capture_output=True, text=True, env=base_env(**env), timeout=120)
        assert res.returncode == 0, res.stderr
        summary = json.loads(res.stdout)
        assert summary["records_per_topic"] == 20
        landing = Landing(str(tmp_path / name))
        assert all(k.startswith(f"topics/{uid}.") for k in landing.keys()), "user_id comes from the file"
        return summary["objects_written"] // 3

    assert objects("file", {}) == 4, "flush_size 5 from the file: 20 records in 4 objects"
    assert objects("env", {}, PINPIPE_FLUSH_SIZE="7") == 3, "the environment beats the file"
    assert objects("arg", {"flush_size": 10}, PINPIPE_FLUSH_SIZE="7") == 2, "an argument beats the environment"
    res = python("import pinpipe; pinpipe.emulate('landing', landing='x', events=1)",
                 env=base_env(PINPIPE_FLUSH_SIZE="lots"))
    assert "pinpipe.ConfigError" in res.stderr and "PINPIPE_FLUSH_SIZE" in res.stderr, res.stderr


def test_ctrl_c_stops_a_running_sink_and_loses_nothing(uid, bucket, procs, tmp_path):
    create_topics(uid)
    gateway = procs.gateway(uid)
    run_emulator(gateway, 300, 21, "--concurrency", "4")
    landing = f"s3://{bucket}/landing"
    out = tmp_path / "sink.out"
    script = f"""
        import json, sys, pinpipe
        print("started", flush=True)
        pinpipe.sink(user_id={uid!r}, bootstrap_servers={BOOTSTRAP!r}, landing={landing!r}, flush_size=40,
                     flush_interval=0.5)
    """
    with open(out, "w") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=stdout,
                                stderr=subprocess.PIPE, text=True, env=base_env())
    try:
        target = Landing(landing)
        # Wait until the daemon has landed every posted record (it then keeps polling for more).
        wait_for(lambda: sum(len(o.records) for o in read_landing(target)) == 900 if target.count() else False,
                 120, what="the Python sink to land the posted records")
        run_emulator(gateway, 100, 22)  # more records while it runs
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    # What it had not landed is landed by the next run; nothing twice, nothing lost.
    run_sink_until_caught_up(uid, landing, 40)
    objects = read_landing(Landing(landing))
    ends = check_contiguous(objects, uid)
    assert sum(ends.values()) == 3 * 400


def test_after_fork_a_child_works_or_fails_clearly_never_hangs(landed, uid, tmp_path):
    """A child of a process that had not run a job yet (an Airflow or Celery worker parent: importing
    pinpipe starts nothing) runs jobs normally; a child of a process that had, fails at once with a
    clear PinpipeError, and the parent goes on working."""
    lake = tmp_path / "lake"
    res = python(f"""
        import os, signal, time, pinpipe
        signal.alarm(120)  # a hang fails the test instead of stalling it

        def child(work):
            pid = os.fork()
            if pid == 0:
                signal.alarm(60)
                try:
                    os._exit(work())
                except pinpipe.PinpipeError as e:
                    print("child error:", e, flush=True)
                    os._exit(7)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)

        def run():
            s = pinpipe.batch(user_id={uid!r}, landing={str(landed)!r}, lake={str(lake)!r})
            n = pinpipe.query(sql="SELECT count(*) AS n FROM geo", lake={str(lake)!r}).to_pylist()
            return 0 if n == [{{"n": s["tables"][1]["clean_rows"]}}] else 3

        pinpipe.lake_tables()  # loaded, nothing started
        print("fresh child", child(run), flush=True)
        print("parent", run(), flush=True)
        t0 = time.monotonic()
        print("child after use", child(run), round(time.monotonic() - t0) < 30, flush=True)
        print("parent again", run(), flush=True)
    """)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "fresh child 0" and lines[1] == "parent 0", res.stdout
    assert lines[2].startswith("child error: this process") and "forked from process" in lines[2], res.stdout
    assert lines[3:] == ["child after use 7 True", "parent again 0"], res.stdout


def test_core_events_reach_python_logging_only_when_asked(landed, uid, tmp_path):
    script = f"""
        import logging, sys, pinpipe
        logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s|%(levelname)s|%(message)s")
        if sys.argv[1] == "on":
            pinpipe.init_logging("DEBUG")
        pinpipe.batch(user_id={uid!r}, landing={str(landed)!r}, lake={str(tmp_path)!r} + "/lake-" + sys.argv[1])
    """
    on = subprocess.run([sys.executable, "-c", textwrap.dedent(script), "on"], capture_output=True, text=True,
                        env=base_env(), timeout=120)
    assert on.returncode == 0, on.stderr
    lines = [line.split("|", 2) for line in on.stdout.splitlines() if line.startswith("pinpipe")]
    assert any(name == "pinpipe.batch" and level == "DEBUG" and "peak_rss_mib=" in msg for name, level, msg in lines), \
        on.stdout
    off = subprocess.run([sys.executable, "-c", textwrap.dedent(script), "off"], capture_output=True, text=True,
                         env=base_env(), timeout=120)
    assert off.returncode == 0, off.stderr
    assert not [line for line in off.stdout.splitlines() if line.startswith("pinpipe")], off.stdout


def test_the_wheels_command_is_the_cli(tmp_path):
    command = Path(sys.executable).parent / "pinpipe"
    assert command.exists(), "the wheel installs a `pinpipe` command"
    native = subprocess.run([PINPIPE_BIN, "--version"], capture_output=True, text=True, check=True).stdout
    wheel = subprocess.run([command, "--version"], capture_output=True, text=True, check=True).stdout
    assert wheel == native and wheel.startswith("pinpipe ")
    listed = subprocess.run([command, "query", "--list", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout) == pinpipe.lake_tables()
    bad = subprocess.run([command, "batch", "--only", "everything"], capture_output=True, text=True)
    assert bad.returncode == 2 and "everything" in bad.stderr
    # Ctrl-C stops the wheel's command like the native one (the process dies of SIGINT or exits).
    emulate = subprocess.Popen([command, "emulate", "batch", "--gateway", "http://127.0.0.1:9", "--events", "0",
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env())
    time.sleep(1.0)
    assert emulate.poll() is None, "the emulator runs until interrupted"
    emulate.send_signal(signal.SIGINT)
    emulate.communicate(timeout=30)
    assert emulate.returncode in (0, 1, -signal.SIGINT), emulate.returncode


def test_stop_running_ends_a_sink_from_another_thread(uid, bucket, procs):
    """What the Airflow operators' on_kill calls: the running sink finishes the work in hand and
    returns its summary."""
    created = pinpipe.topics_create(user_id=uid, bootstrap_servers=BOOTSTRAP)
    assert [(t["topic"], t["created"]) for t in created] == [(f"{uid}.{t}", True) for t in ("pin", "geo", "user")]
    again = pinpipe.topics_create(user_id=uid, bootstrap_servers=BOOTSTRAP)
    assert [t["created"] for t in again] == [False, False, False]
    gateway = procs.gateway(uid)
    posted = pinpipe.emulate(gateway=gateway.url, user_id=uid, events=50, seed=23, no_sleep=True, concurrency=4)
    assert (posted["events_sent"], posted["records_sent"], posted["events_failed"]) == (50, 150, 0), posted
    landing = f"s3://{bucket}/landing"
    res = python(f"""
        import json, threading, time, pinpipe
        out = {{}}
        def run():
            out["summary"] = pinpipe.sink(user_id={uid!r}, bootstrap_servers={BOOTSTRAP!r}, landing={landing!r},
                                          flush_size=1000, flush_interval=60)
        t = threading.Thread(target=run)
        t.start()
        time.sleep(8)  # joined the group, read the 150 records, holds them (flush size and interval not reached)
        pinpipe.stop_running()
        t.join(30)
        print(json.dumps({{"alive": t.is_alive(), **out}}))
    """)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["alive"] is False
    assert got["summary"]["records_landed"] == 150, got
    assert check_contiguous(read_landing(Landing(landing)), uid)


def test_demo_runs_the_pipeline_in_process(tmp_path):
    summary = pinpipe.demo(dir=tmp_path / "demo", events=200, flush_size=50)
    assert summary["emulate"]["events_sent"] == 200 and summary["emulate"]["events_failed"] == 0
    assert summary["sink"]["records_landed"] == 600
    assert [t["records_read"] for t in summary["batch"]["tables"]] == [200, 200, 200]
    assert [a["name"] for a in summary["batch"]["analytics"]] == list(ANALYTICS)
    assert pinpipe.query("pin", lake=tmp_path / "demo" / "lake").num_rows == len(set(drawn_rows(100, 200)))
    # The streaming half, through the Kinesis stand-in: every event is a row (no deduplication).
    assert summary["emulate_stream"]["events_sent"] == 200
    assert summary["stream"]["rows"] == {"0eaf46a0829f_pin_table": 200, "0eaf46a0829f_geo_table": 200,
                                         "0eaf46a0829f_user_table": 200}
    streamed = pinpipe.query("0eaf46a0829f_geo_table", lake=tmp_path / "demo" / "lake")
    assert sorted(streamed.column("ind").to_pylist()) == sorted(drawn_rows(100, 200))


def test_the_streaming_jobs_from_python(procs, tmp_path, services):
    from conftest import new_uid

    uid = new_uid()
    created = pinpipe.streams_create(user_id=uid, shards=2)
    assert [c["changed"] for c in created] == [True, True, True]
    assert [d["open_shards"] for d in pinpipe.streams_describe(user_id=uid)] == [2, 2, 2]
    gateway = procs.gateway(uid, bootstrap="127.0.0.1:9")
    sent = pinpipe.emulate("stream", user_id=uid, gateway=gateway.url, events=30, seed=3, no_sleep=True)
    assert sent["events_sent"] == 30 and sent["records_sent"] == 90
    summary = pinpipe.stream(user_id=uid, lake=tmp_path / "lake", until_caught_up=True)
    assert sum(summary["rows"].values()) == 90 and summary["dead_letters"] == 0
    table = pinpipe.query(f"{uid}_user_table", lake=tmp_path / "lake", user_id=uid)
    assert sorted(table.column("ind").to_pylist()) == sorted(drawn_rows(3, 30))
    assert table.schema.field("sequence_number").type == pa.string()
    with pytest.raises(pinpipe.BrokerError, match="not found"):
        pinpipe.stream(user_id=new_uid(), lake=tmp_path / "other", until_caught_up=True)
    assert [c["changed"] for c in pinpipe.streams_delete(user_id=uid)] == [True, True, True]
