"""Shared fixtures of pinpipe's end-to-end tests.

The tests drive the real `pinpipe` binary against the real services that `scripts/services.sh`
runs: Tansu (Kafka protocol), moto (S3) and MariaDB. `scripts/test.sh` exports the services'
settings and PINPIPE_BIN; run by hand (`python -m pytest tests`), this file evaluates
`scripts/services.sh env` itself and defaults PINPIPE_BIN to the cached debug build.

Every test uses its own random 12-hex-digit user id, so topics, buckets, consumer groups and
databases never collide between tests or runs. Subprocesses (gateways, sinks, emulators) are
always stopped by the fixtures that started them, and their logs are printed at teardown (pytest
shows them when a test fails).
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICES_SH = REPO / "scripts" / "services.sh"

# The emulator's row range: the original drew randint(0, 11000).
MAX_ROW = 11_000
TABLES = ("pin", "geo", "user")
ROW_COLUMN = {"pin": "index", "geo": "ind", "user": "ind"}


# ------------------------------------------------------------------------------------------------
# environment


def _load_services_env() -> None:
    """Exports what `scripts/services.sh env` prints, unless the harness already did."""
    if os.environ.get("PINPIPE_BOOTSTRAP_SERVERS"):
        return
    try:
        out = subprocess.run(
            ["bash", str(SERVICES_SH), "env"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"cannot read the services' settings from {SERVICES_SH} env: {e}") from e
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            os.environ.setdefault(name, value)


_load_services_env()

BOOTSTRAP = os.environ.get("PINPIPE_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
AWS_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:15000")
# Kinesis is kinesalite (scripts/services.sh): moto's Kinesis moves a parent's records into its
# children on SplitShard, which no reader can stay exact over.
KINESIS_ENDPOINT = os.environ.setdefault("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:14567")
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)
# Everything the tests talk to is local: never go through a proxy.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def _default_bin() -> str:
    if os.environ.get("PINPIPE_BIN"):
        return os.environ["PINPIPE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "pinpipe" / "target")
    return str(Path(target) / "debug" / "pinpipe")


PINPIPE_BIN = _default_bin()

# Variables the CLI reads (rust/pinpipe-cli/src/env.rs): none may leak from the caller's
# environment into a test's subprocess, every test passes what it means explicitly.
_CLI_VARS = (
    "PINPIPE_CONFIG", "PINPIPE_LOG", "PINPIPE_USER_ID", "PINPIPE_BOOTSTRAP_SERVERS",
    "PINPIPE_GATEWAY", "PINPIPE_LISTEN", "PINPIPE_API_KEY", "PINPIPE_LANDING", "PINPIPE_EVENTS",
    "PINPIPE_SEED", "PINPIPE_CONCURRENCY", "PINPIPE_NO_SLEEP", "PINPIPE_FLUSH_SIZE",
    "PINPIPE_SOURCE", "PINPIPE_DB_CREDS", "PINPIPE_AWS_PROFILE", "PINPIPE_ENVIRONMENT",
)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLI_VARS}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------------
# small helpers


def new_uid() -> str:
    """A fresh 12-lowercase-hex-digit user id."""
    return secrets.token_hex(6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def host_port(hostport: str) -> tuple[str, int]:
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` passes (fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def drawn_rows(seed: int, events: int, max_row: int = MAX_ROW) -> list[int]:
    """The rows the emulator sends for `seed`: CPython's own draws, as the original script made
    them (before each event `randrange(0, 2)` seconds of sleep, then `randint(0, 11000)`)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(events):
        rng.randrange(0, 2)
        rows.append(rng.randint(0, max_row))
    return rows


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def pytest_collection_modifyitems(config, items):
    """Tests that stop a shared service (the broker) run after all the others, so a service left
    unhealthy by them cannot fail unrelated tests."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


# ------------------------------------------------------------------------------------------------
# running the binary


class Result:
    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr

    @property
    def json(self):
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"stdout of {self.describe()} is not JSON: {e}\n{self.stdout!r}") from e

    def describe(self) -> str:
        return "pinpipe " + " ".join(shlex.quote(a) for a in self.args)

    def report(self) -> str:
        return (
            f"{self.describe()} exited {self.returncode}\n--- stdout ---\n{tail(self.stdout)}"
            f"\n--- stderr ---\n{tail(self.stderr)}"
        )

    def check(self) -> Result:
        assert self.returncode == 0, self.report()
        return self


def pinpipe(*args, env: dict | None = None, timeout: float = 300, check: bool = False) -> Result:
    """Runs `pinpipe ARGS...` to completion and returns its exit status and output."""
    args = [str(a) for a in args]
    try:
        done = subprocess.run(
            [PINPIPE_BIN, *args], capture_output=True, text=True, timeout=timeout,
            env=env if env is not None else base_env(), stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(
            f"pinpipe {' '.join(args)} did not finish within {timeout}s\n--- stdout ---\n{tail(out)}"
            f"\n--- stderr ---\n{tail(err)}"
        ) from None
    result = Result(args, done.returncode, done.stdout, done.stderr)
    return result.check() if check else result


class Proc:
    """A long-running pinpipe subprocess; output goes to files so it can be read at any time."""

    def __init__(self, name: str, args, logdir: Path, env: dict | None = None):
        self.name = name
        self.args = [str(a) for a in args]
        self.stdout_path = logdir / f"{name}.stdout"
        self.stderr_path = logdir / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(
            [PINPIPE_BIN, *self.args], stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
            env=env if env is not None else base_env(),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not finish within {timeout}s\n--- stderr ---\n{tail(self.stderr())}"
            ) from None

    def json(self):
        try:
            return json.loads(self.stdout())
        except json.JSONDecodeError as e:
            raise AssertionError(f"stdout of {self.name} is not JSON: {e}\n{self.stdout()!r}") from e

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.running():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait(timeout=30)
        self._out.close()
        self._err.close()
        return self.popen.returncode

    def report(self) -> str:
        return (
            f"{self.name}: pinpipe {' '.join(self.args)} (exit {self.popen.poll()})\n"
            f"--- stdout ---\n{tail(self.stdout())}\n--- stderr ---\n{tail(self.stderr())}"
        )


class Gateway:
    def __init__(self, proc: Proc, url: str, uid: str):
        self.proc, self.url, self.uid = proc, url, uid

    def topic_url(self, topic: str) -> str:
        return f"{self.url}/topics/{topic}"


class Procs:
    """Starts pinpipe daemons for one test and stops every one of them at teardown."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.started: list[Proc] = []
        self._counts: collections.Counter = collections.Counter()

    def start(self, name: str, *args, env: dict | None = None) -> Proc:
        self._counts[name] += 1
        unique = f"{name}-{self._counts[name]}"
        proc = Proc(unique, args, self.logdir, env=env)
        self.started.append(proc)
        return proc

    def gateway(self, uid: str, *extra, env: dict | None = None, bootstrap: str = BOOTSTRAP) -> Gateway:
        """Starts `pinpipe gateway` on a port the OS picks and waits until /healthz answers."""
        import requests

        proc = self.start(
            "gateway", "gateway", "--user-id", uid, "--bootstrap-servers", bootstrap,
            "--listen", "127.0.0.1:0", *extra, env=env,
        )
        pattern = re.compile(r"gateway listening on (http://127\.0\.0\.1:\d+)")

        def listening():
            if not proc.running():
                raise AssertionError(f"the gateway exited while starting\n{proc.report()}")
            m = pattern.search(proc.stderr())
            return m.group(1) if m else None

        url = wait_for(listening, 30, what="the gateway to listen")

        def healthy():
            try:
                r = requests.get(f"{url}/healthz", timeout=5)
                return r.status_code == 200 and r.json() == {"status": "ok"}
            except requests.RequestException:
                return False

        wait_for(healthy, 30, what="the gateway's /healthz")
        return Gateway(proc, url, uid)

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def procs(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    p = Procs(logdir)
    try:
        yield p
    finally:
        p.stop_all()
        for proc in p.started:
            print(f"\n===== {proc.report()}")


# ------------------------------------------------------------------------------------------------
# services


@pytest.fixture(scope="session")
def services():
    """Fails (does not skip) when the binary or a service is missing: these tests are the
    end-to-end check of the product, a silent skip would hide that nothing was tested."""
    problems = []
    if not os.access(PINPIPE_BIN, os.X_OK):
        problems.append(f"pinpipe binary not found at {PINPIPE_BIN} (set PINPIPE_BIN or build it)")
    checks = {
        "Kafka (tansu)": BOOTSTRAP.split(",")[0],
        "S3 (moto)": re.sub(r"^https?://", "", AWS_ENDPOINT).rstrip("/"),
        "Kinesis (kinesalite)": re.sub(r"^https?://", "", KINESIS_ENDPOINT).rstrip("/"),
        "MySQL (mariadb)": f"{os.environ.get('PINPIPE_TEST_MYSQL_HOST', '127.0.0.1')}:"
        f"{os.environ.get('PINPIPE_TEST_MYSQL_PORT', '13306')}",
    }
    for name, hp in checks.items():
        host, port = host_port(hp)
        if not port_open(host, port):
            problems.append(f"{name} is not reachable at {hp} (scripts/services.sh up)")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def uid(services):
    return new_uid()


def create_topics(uid: str, partitions: int = 1) -> None:
    res = pinpipe(
        "topics", "create", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP,
        "--partitions", partitions, "--json", timeout=120,
    ).check()
    created = {t["topic"] for t in res.json}
    assert created == {f"{uid}.{t}" for t in TABLES}, res.report()
    # The broker may take a moment before every partition has a leader.
    wait_for(lambda: _topics_ready(uid, partitions), 60, what=f"topics of {uid} to be ready")


def _topics_ready(uid: str, partitions: int) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    md = admin.list_topics(timeout=10)
    for t in TABLES:
        topic = md.topics.get(f"{uid}.{t}")
        if topic is None or topic.error is not None or len(topic.partitions) != partitions:
            return False
        if any(p.leader < 0 for p in topic.partitions.values()):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Kafka


def kafka_consumer():
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"pytest-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    })


def partition_ids(topic: str) -> list[int]:
    c = kafka_consumer()
    try:
        md = c.list_topics(topic, timeout=10)
        return sorted(md.topics[topic].partitions)
    finally:
        c.close()


def high_watermarks(topic: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    c = kafka_consumer()
    try:
        md = c.list_topics(topic, timeout=10)
        out = {}
        for p in sorted(md.topics[topic].partitions):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            out[p] = high
        return out
    finally:
        c.close()


def consume_all(topic: str, timeout: float = 60) -> list:
    """Every message of `topic` (all partitions, up to the high watermarks seen now)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    highs = high_watermarks(topic)
    wanted = {p: h for p, h in highs.items() if h > 0}
    c = kafka_consumer()
    messages = []
    try:
        if not wanted:
            return []
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        position = {p: 0 for p in wanted}
        deadline = time.monotonic() + timeout
        while any(position[p] < h for p, h in wanted.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to {wanted} (at {position})"
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                continue
            messages.append(msg)
            position[msg.partition()] = max(position[msg.partition()], msg.offset() + 1)
        return messages
    finally:
        c.close()


def message_at(topic: str, partition: int, offset: int, timeout: float = 30):
    from confluent_kafka import TopicPartition

    c = kafka_consumer()
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() == offset:
                return msg
        raise AssertionError(f"no message at {topic}/{partition}@{offset}")
    finally:
        c.close()


# ------------------------------------------------------------------------------------------------
# S3 (moto) and the landing zone


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=AWS_ENDPOINT, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def kinesis_client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kinesis", endpoint_url=KINESIS_ENDPOINT, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def s3_storage_options() -> dict:
    """What the `deltalake` package needs to read a lake on moto."""
    return {
        "AWS_ENDPOINT_URL": AWS_ENDPOINT,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    }


def delta_rows(uri: str) -> list[dict]:
    """Every row of a Delta table (local path or s3://), read with the `deltalake` package."""
    from deltalake import DeltaTable

    options = s3_storage_options() if str(uri).startswith("s3://") else None
    return DeltaTable(str(uri), storage_options=options).to_pyarrow_table().to_pylist()


def create_streams(uid: str, shards: int = 2) -> None:
    res = pinpipe("streams", "create", "--user-id", uid, "--shards", shards, "--json", timeout=120).check()
    assert {c["stream"] for c in res.json} == {f"streaming-{uid}-{t}" for t in TABLES}, res.report()


@pytest.fixture
def bucket(uid):
    """The user's landing bucket `user-<uid>-bucket`, created empty in moto."""
    name = f"user-{uid}-bucket"
    s3_client().create_bucket(Bucket=name)
    return name


class Landing:
    """Reads a landing zone (s3://bucket[/prefix] or a local directory)."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("s3://"):
            rest = url[len("s3://"):]
            self.bucket, _, prefix = rest.partition("/")
            self.prefix = prefix.strip("/")
            self.s3 = s3_client()
            self.dir = None
        else:
            self.dir = Path(url)
            self.s3 = None

    def keys(self) -> list[str]:
        """Every object key, relative to the landing zone's prefix."""
        if self.dir is not None:
            if not self.dir.exists():
                return []
            return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())
        base = f"{self.prefix}/" if self.prefix else ""
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            out.extend(o["Key"][len(base):] for o in page.get("Contents", []))
        return sorted(out)

    def read(self, key: str) -> bytes:
        if self.dir is not None:
            return (self.dir / key).read_bytes()
        full = f"{self.prefix}/{key}" if self.prefix else key
        return self.s3.get_object(Bucket=self.bucket, Key=full)["Body"].read()

    def count(self) -> int:
        return len(self.keys())


KEY_RE = re.compile(r"^topics/(?P<topic>[^/]+)/partition=(?P<p>\d+)/(?P<t2>[^/]+)\+(?P<p2>\d+)\+(?P<off>\d{10})\.json$")


class LandedObject:
    def __init__(self, key, topic, partition, start, records):
        self.key, self.topic, self.partition, self.start, self.records = key, topic, partition, start, records


def read_landing(landing: Landing) -> list[LandedObject]:
    """Parses every object of the landing zone, asserting the Confluent S3-sink layout: keys
    `topics/<topic>/partition=<p>/<topic>+<p>+<start offset, 10 digits>.json`, one JSON value a line."""
    objects = []
    for key in landing.keys():
        m = KEY_RE.match(key)
        assert m, f"object key {key!r} does not follow topics/<topic>/partition=<p>/<topic>+<p>+<offset:010>.json"
        assert m["topic"] == m["t2"] and m["p"] == m["p2"], f"object key {key!r} names two partitions"
        data = landing.read(key)
        assert data.endswith(b"\n"), f"{key}: the last line is not terminated"
        lines = data.decode("utf-8").split("\n")[:-1]
        assert lines, f"{key} is empty"
        records = []
        for i, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AssertionError(f"{key} line {i + 1} is not JSON: {e}: {line[:200]!r}") from None
        objects.append(LandedObject(key, m["topic"], int(m["p"]), int(m["off"]), records))
    return objects


def check_contiguous(objects: list[LandedObject], uid: str) -> dict[tuple[str, int], int]:
    """Each partition's objects chain with no gap and no overlap from offset 0 to the partition's
    end offset in Kafka. Returns the record count per (topic, partition)."""
    by_tp = collections.defaultdict(list)
    for o in objects:
        by_tp[(o.topic, o.partition)].append(o)
    ends = {}
    for t in TABLES:
        topic = f"{uid}.{t}"
        for p, high in high_watermarks(topic).items():
            chain = sorted(by_tp.get((topic, p), []), key=lambda o: o.start)
            expected = 0
            for o in chain:
                assert o.start == expected, (
                    f"{topic}/{p}: object {o.key} starts at {o.start}, expected {expected} "
                    f"({'gap' if o.start > expected else 'overlap'}); chain: "
                    f"{[(x.start, len(x.records)) for x in chain]}"
                )
                expected = o.start + len(o.records)
            assert expected == high, (
                f"{topic}/{p}: landed objects cover offsets 0..{expected}, Kafka's end offset is {high}"
            )
            ends[(topic, p)] = expected
    extra = set(by_tp) - set(ends)
    assert not extra, f"objects for partitions that are not the user's topics': {sorted(extra)}"
    return ends


def landed_rows(objects: list[LandedObject], uid: str) -> dict[str, collections.Counter]:
    """Multiset of row numbers (`index` for pin, `ind` for geo and user) per table."""
    out = {t: collections.Counter() for t in TABLES}
    for o in objects:
        table = o.topic[len(uid) + 1:]
        assert o.topic == f"{uid}.{table}" and table in TABLES, f"unexpected topic {o.topic}"
        for r in o.records:
            assert isinstance(r, dict), f"{o.key}: record is not an object: {r!r}"
            out[table][r[ROW_COLUMN[table]]] += 1
    return out


def counter_diff(got: collections.Counter, want: collections.Counter) -> str:
    missing = want - got
    extra = got - want
    return (
        f"{sum(missing.values())} missing (e.g. {sorted(missing.items())[:10]}), "
        f"{sum(extra.values())} extra (e.g. {sorted(extra.items())[:10]})"
    )


# ------------------------------------------------------------------------------------------------
# MySQL (the project's MariaDB)


def mysql_admin_settings() -> dict:
    return {
        "host": os.environ.get("PINPIPE_TEST_MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("PINPIPE_TEST_MYSQL_PORT", "13306")),
        "user": os.environ.get("PINPIPE_TEST_MYSQL_USER", "root"),
        "password": os.environ.get("PINPIPE_TEST_MYSQL_PASSWORD", os.environ.get("PINPIPE_TEST_DB_PASSWORD", "")),
    }


def mysql_admin():
    import pymysql

    s = mysql_admin_settings()
    return pymysql.connect(
        host=s["host"], port=s["port"], user=s["user"], password=s["password"], autocommit=True,
        connect_timeout=10,
    )


def write_db_creds(path: Path, host: str, port: int, user: str, password: str, database: str) -> Path:
    # JSON strings are valid YAML scalars: no quoting surprises whatever the password holds.
    path.write_text(
        f"HOST: {json.dumps(host)}\nUSER: {json.dumps(user)}\nPASSWORD: {json.dumps(password)}\n"
        f"DATABASE: {json.dumps(database)}\nPORT: {port}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def mysql_database(services, tmp_path):
    """A database name unique to the test (dropped afterwards) and a db_creds.yaml for it,
    using the MariaDB admin account of the services."""
    name = f"pinpipe_test_{secrets.token_hex(6)}"
    s = mysql_admin_settings()
    creds = write_db_creds(tmp_path / "db_creds.yaml", s["host"], s["port"], s["user"], s["password"], name)
    try:
        yield name, creds
    finally:
        try:
            conn = mysql_admin()
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            conn.close()
        except Exception as e:  # noqa: BLE001 - cleanup must not mask the test's result
            print(f"could not drop database {name}: {e}")


# ------------------------------------------------------------------------------------------------
# pipeline steps


def run_emulator(gateway: Gateway, events: int, seed: int, *extra, timeout: float = 300) -> dict:
    res = pinpipe(
        "emulate", "batch", "--user-id", gateway.uid, "--gateway", gateway.url, "--events", events,
        "--seed", seed, "--no-sleep", "--quiet", "--json", *extra, timeout=timeout,
    )
    assert res.returncode == 0, res.report()
    summary = res.json
    assert summary["events_sent"] == events and summary["events_failed"] == 0, res.report()
    assert summary["records_sent"] == 3 * events, res.report()
    return summary


def run_sink_until_caught_up(uid: str, landing: str, flush_size: int, *extra, timeout: float = 300) -> dict:
    res = pinpipe(
        "sink", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--landing", landing,
        "--flush-size", flush_size, "--until-caught-up", "--json", *extra, timeout=timeout,
    )
    assert res.returncode == 0, res.report()
    return res.json


# ------------------------------------------------------------------------------------------------
# faults


class FaultyProxy:
    """A TCP proxy in front of a server (S3, Kinesis) that can refuse connections, reset them,
    pass requests on and drop the replies, or (`fail-complete`) hold back S3's
    CompleteMultipartUpload requests."""

    def __init__(self, target: str):
        self.target = host_port(target.removeprefix("http://"))
        self.mode = "pass"
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.listen(128)
        self.closed = False
        self.open: set = set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.mode == "refuse" or self.mode == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            if self.mode == "throttle":
                threading.Thread(target=self._throttle, args=(client,), daemon=True).start()
                continue
            threading.Thread(target=self._pipe, args=(client, self.mode), daemon=True).start()

    def _pipe(self, client, mode):
        try:
            upstream = socket.create_connection(self.target, timeout=30)
        except OSError:
            client.close()
            return
        self.open.add(client)

        def forward(src, dst, drop):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if drop and self.mode == "drop":
                        break  # the reply is lost
                    if not drop and self.mode == "fail-complete" and data.startswith(b"POST ") \
                            and b"uploadId=" in data.split(b"\r\n", 1)[0]:
                        break  # CompleteMultipartUpload never arrives
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=forward, args=(client, upstream, False), daemon=True).start()
        forward(upstream, client, True)

    def _throttle(self, client):
        """Answers each request the way Kinesis answers over its limit."""
        body = b'{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}'
        reply = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                chunk = client.recv(65536)
                if not chunk:
                    break
                rest += chunk
            client.sendall(reply)
        except OSError:
            pass
        finally:
            client.close()

    def outage(self, mode: str) -> None:
        """Switches to `mode` and resets every connection open now (keep-alive ones included)."""
        self.mode = mode
        for conn in list(self.open):
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
            self.open.discard(conn)

    def close(self):
        self.closed = True
        self.server.close()
