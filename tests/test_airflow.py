"""The daily DAG in real Airflow (3.x and 2.10, the versions scripts/airflow_venv.sh pins; SQLite),
with the wheel installed in Airflow's own venv: `dags/` loads with no import errors and without
loading the native core, and `airflow dags test 0eaf46a0829f_dag <date>` against Tansu and moto's
S3 — after the emulator posted events through the gateway — fills the clean and the nine analytics
Delta tables with what the CLI computes from the same landing zone, and its stream catch-up task
fills the stream tables from Kinesis (kinesalite) with every streamed record once. A second `dags test` of the
same date, and a retried task, leave every table's rows unchanged.

AWS and Kafka reach the tasks only through Airflow connections (`aws_default`, `kafka_default`)
and Variables: the Airflow processes run with no AWS_* or PINPIPE_* variable set."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import (
    AWS_ENDPOINT,
    BOOTSTRAP,
    KINESIS_ENDPOINT,
    REPO,
    base_env,
    create_streams,
    create_topics,
    delta_rows,
    drawn_rows,
    pinpipe,
    run_emulator,
    tail,
)
from test_batch import ANALYTICS, CLEAN, delta_table

DAG_ID = "0eaf46a0829f_dag"
DATE = "2026-12-01"


# Airflow major version -> the venv scripts/airflow_venv.sh makes for it.
VENVS = {"3": "PINPIPE_AIRFLOW_VENV", "2": "PINPIPE_AIRFLOW2_VENV"}
DEFAULT_VENVS = {"3": "airflow-venv", "2": "airflow2-venv"}


def airflow_venv(major: str) -> Path:
    venv = os.environ.get(VENVS[major]) or str(Path.home() / ".cache" / "pinpipe" / DEFAULT_VENVS[major])
    path = Path(venv)
    if not (path / "bin" / "airflow").exists():
        pytest.fail(f"no Airflow {major} venv at {path} (scripts/airflow_venv.sh WHEEL makes it)", pytrace=False)
    return path


class Airflow:
    """One Airflow home (SQLite) serving the repository's dags/ folder."""

    def __init__(self, major: str, home: Path, variables: dict[str, str], connections: dict[str, dict]):
        self.venv = airflow_venv(major)
        self.home = home
        env = {k: v for k, v in base_env().items() if not k.startswith(("AWS_", "PINPIPE_", "AIRFLOW"))}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            PATH=f"{self.venv / 'bin'}:{env.get('PATH', '')}",
        )
        for name, value in variables.items():
            env[f"AIRFLOW_VAR_{name.upper()}"] = value
        for name, conn in connections.items():
            env[f"AIRFLOW_CONN_{name.upper()}"] = json.dumps(conn)
        self.env = env
        self.run("db", "migrate", timeout=300)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run([str(self.venv / "bin" / "airflow"), *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"airflow {' '.join(args)} exited {done.returncode}\n" \
            f"--- stdout ---\n{tail(done.stdout, 80)}\n--- stderr ---\n{tail(done.stderr, 80)}"
        return done

    def xcom(self, task_id: str):
        """The value the task returned, as the metadata database holds it (JSON)."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value'", (DAG_ID, task_id)
            ).fetchall()
        assert rows, f"no XCom return_value for {task_id}"
        value = rows[-1][0]
        value = json.loads(value.decode() if isinstance(value, bytes) else value)
        return json.loads(value) if isinstance(value, str) else value

    def python(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                              env=self.env, timeout=300)


def storage() -> dict:
    return {"AWS_ENDPOINT_URL": AWS_ENDPOINT, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def dump(lake: str) -> dict:
    """Every row of the clean and analytics tables, read by the deltalake package."""
    from deltalake import DeltaTable

    out = {}
    for name in [f"batch/{t}" for t in CLEAN] + [f"analytics/{a}" for a in ANALYTICS]:
        rows = DeltaTable(f"{lake}/{name}", storage_options=storage()).to_pyarrow_table().to_pylist()
        out[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


@pytest.fixture(params=["3", "2"], ids=["airflow3", "airflow2"])
def airflow(request, tmp_path, uid, bucket):
    return Airflow(
        request.param,
        tmp_path / "airflow",
        variables={
            "pinpipe_user_id": uid,
            "pinpipe_landing": f"s3://{bucket}/landing",
            "pinpipe_lake": f"s3://{bucket}/lake",
        },
        connections={
            "aws_default": {
                "conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": AWS_ENDPOINT,
                          "service_config": {"kinesis": {"endpoint_url": KINESIS_ENDPOINT}}},
            },
            "kafka_default": {"conn_type": "kafka", "extra": {"bootstrap.servers": BOOTSTRAP, "group.id": "ignored"}},
        },
    )


def test_the_dag_folder_loads_without_errors_or_the_native_core(airflow):
    res = airflow.python(
        "import sys\n"
        "try:\n"
        "    from airflow.dag_processing.dagbag import DagBag\n"  # Airflow 3.3+
        "except ImportError:\n"
        "    from airflow.models.dagbag import DagBag\n"
        f"bag = DagBag({str(REPO / 'dags')!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        f"dag = bag.get_dag({DAG_ID!r})\n"
        "print('>', sorted(t.task_id for t in dag.tasks), 'pinpipe._core' in sys.modules)\n"
        "print('>', [(t.task_id, sorted(t.downstream_task_ids)) for t in dag.tasks])\n"
        "print('>', dag.catchup, dag.default_args['retries'], dag.default_args['owner'])\n"
    )
    assert res.returncode == 0, res.stderr
    assert [line for line in res.stdout.splitlines() if line.startswith("> ")] == [
        "> ['analytics', 'clean', 'sink_drain', 'stream_catch_up'] False",
        "> [('sink_drain', ['clean']), ('clean', ['analytics']), ('analytics', []), ('stream_catch_up', [])]",
        "> False 1 0eaf46a0829f",
    ], res.stdout


def test_dags_test_runs_the_batch_pipeline_exactly_once(airflow, uid, bucket, procs, tmp_path):
    create_topics(uid, partitions=2)
    create_streams(uid, shards=2)
    gateway = procs.gateway(uid)
    events, seed = 300, 41
    run_emulator(gateway, events, seed, "--concurrency", "4")
    streamed = pinpipe("emulate", "stream", "--user-id", uid, "--gateway", gateway.url, "--events", 120, "--seed", 42,
                       "--no-sleep", "--quiet", timeout=300)
    assert streamed.returncode == 0, streamed.report()

    first = airflow.run("dags", "test", DAG_ID, DATE)
    lake = f"s3://{bucket}/lake"
    got = dump(lake)

    # What the CLI makes of the same landing zone, in a lake of its own.
    reference = f"s3://{bucket}/reference-lake"
    pinpipe("batch", "--user-id", uid, "--landing", f"s3://{bucket}/landing", "--lake", reference, "--quiet",
            check=True, timeout=600)
    want = dump(reference)
    drawn = set(drawn_rows(seed, events))
    for table in CLEAN:
        assert sorted(r["ind"] for r in got[f"batch/{table}"]) == sorted(drawn), table
    for name in want:
        assert got[name] == want[name], f"{name}: the DAG's table differs from the CLI's"
        if name.startswith("analytics/"):
            assert got[name], f"{name} is empty"

    # Each task's summary went to XCom and to the task log, with the core's own events.
    log = first.stdout + first.stderr
    assert "draining to the end offsets seen at start" in log, tail(log, 60)  # the sink's own event
    assert f"records_landed={3 * events}" in log, tail(log, 60)
    assert f"pin: {events} read, {len(drawn)} clean rows" in log, tail(log, 60)
    sink = airflow.xcom("sink_drain")
    assert sink["records_landed"] == 3 * events and sink["objects_created"] > 0, sink
    clean = airflow.xcom("clean")
    assert [(t["table"], t["records_read"], t["clean_rows"]) for t in clean["tables"]] == [
        (t, events, len(drawn)) for t in CLEAN
    ], clean
    analytics = airflow.xcom("analytics")
    assert [a["name"] for a in analytics["analytics"]] == list(ANALYTICS)
    stream = airflow.xcom("stream_catch_up")
    assert stream["rows"] == {f"{uid}_{t}_table": 120 for t in ("geo", "pin", "user")}, stream
    streamed_rows = {t: sorted(r["ind"] for r in delta_rows(f"{lake}/stream/{uid}_{t}_table")) for t in CLEAN}
    assert streamed_rows == {t: sorted(drawn_rows(42, 120)) for t in CLEAN}

    # The same date again, then one task retried alone: nothing is added twice.
    airflow.run("dags", "test", DAG_ID, DATE)
    assert dump(lake) == got, "a second dags test of the same date changed the tables"
    assert {t: sorted(r["ind"] for r in delta_rows(f"{lake}/stream/{uid}_{t}_table")) for t in CLEAN} == streamed_rows
    airflow.run("tasks", "test", DAG_ID, "clean", DATE)
    assert dump(lake) == got, "a retried clean task changed the tables"
    raw = delta_table(f"{lake}/batch/_raw_pin").to_pyarrow_table()
    assert raw.num_rows == events, f"_raw_pin holds {raw.num_rows} rows for {events} posted records"
