"""Secrets never reach the output: not the database password (db_creds.yaml), not the API key.

A dedicated MariaDB user gets a distinctive password (a canary). `source load-mysql` and
`emulate batch --source mysql` run with -vv (and a full trace filter) in success and failure
cases (wrong password, nothing listening, unresolvable host); the canary must appear in none of
their stdout/stderr. `--help` outputs must not show secret values taken from the environment,
and a gateway and emulator reading PINPIPE_API_KEY from the environment must not log it.
"""

from __future__ import annotations

import secrets

import pytest
import requests
from conftest import (
    Result,
    base_env,
    create_topics,
    free_port,
    mysql_admin,
    mysql_admin_settings,
    new_uid,
    pinpipe,
    write_db_creds,
)


def canary(tag: str) -> tuple[str, str]:
    """A distinctive secret and its core (checked on its own, so a partial leak is caught too)."""
    core = secrets.token_hex(12)
    return f"{tag}-{core}-Canary", core


def assert_no_leak(result: Result | tuple, *needles: str) -> None:
    if isinstance(result, Result):
        texts = {"stdout": result.stdout, "stderr": result.stderr}
        what = result.describe()
    else:
        what, texts = result
    for name, text in texts.items():
        for needle in needles:
            assert needle not in text, f"secret {needle!r} appears in the {name} of {what}:\n{text[-3000:]}"


@pytest.fixture
def db_user(services, tmp_path):
    """A MariaDB user with a canary password, allowed on one database of its own."""
    user = f"pp_{secrets.token_hex(5)}"
    database = f"pinpipe_secret_{secrets.token_hex(6)}"
    password, core = canary("DbPw")
    conn = mysql_admin()
    try:
        with conn.cursor() as cur:
            for host in ("127.0.0.1", "localhost", "%"):
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@%s", (user, host))
        yield user, password, core, database
    finally:
        with conn.cursor() as cur:
            for host in ("127.0.0.1", "localhost", "%"):
                cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


def test_database_password_never_printed(db_user, tmp_path, procs):
    user, password, core, database = db_user
    admin = mysql_admin_settings()
    good = write_db_creds(tmp_path / "good.yaml", admin["host"], admin["port"], user, password, database)

    # Success: load the database and emulate from it, with the most verbose logging.
    res = pinpipe("-vv", "source", "load-mysql", "--db-creds", good, "--rows", 11_154, "--json", timeout=300)
    assert res.returncode == 0, res.report()
    assert res.json["database"] == database
    assert_no_leak(res, password, core)

    uid = new_uid()
    create_topics(uid)
    gw = procs.gateway(uid)
    emulate_args = ("emulate", "batch", "--user-id", uid, "--gateway", gw.url, "--events", 5, "--seed", 1,
                    "--no-sleep", "--source", "mysql", "--json")
    res = pinpipe("-vv", *emulate_args, "--db-creds", good, timeout=120)
    assert res.returncode == 0, res.report()
    assert res.json["events_sent"] == 5
    assert_no_leak(res, password, core)
    # A full trace filter for every crate (the MySQL driver's own logs included).
    res = pinpipe(*emulate_args, "--db-creds", good, env=base_env(PINPIPE_LOG="trace"), timeout=120)
    assert res.returncode == 0, res.report()
    assert_no_leak(res, password, core)

    # Failures: the error messages must not carry the password either.
    wrong_password, wrong_core = canary("WrongPw")
    failing = {
        "wrong-password": write_db_creds(tmp_path / "wrong.yaml", admin["host"], admin["port"], user,
                                         wrong_password, database),
        "nothing-listening": write_db_creds(tmp_path / "closed.yaml", "127.0.0.1", free_port(), user,
                                            password, database),
        "unresolvable-host": write_db_creds(tmp_path / "nohost.yaml", "db.pinpipe.invalid", 3306, user,
                                            password, database),
        "unknown-database": write_db_creds(tmp_path / "nodb.yaml", admin["host"], admin["port"], user,
                                           password, database + "_nope"),
    }
    for case, creds in failing.items():
        for env in (base_env(), base_env(PINPIPE_LOG="trace")):
            res = pinpipe("-vv", "source", "load-mysql", "--db-creds", creds, "--rows", 10, "--json",
                          env=env, timeout=180)
            # (unknown-database: the user may not create any database but its own)
            assert res.returncode != 0, f"{case}: load-mysql succeeded\n{res.report()}"
            assert_no_leak(res, password, core, wrong_password, wrong_core)
            res = pinpipe("-vv", *emulate_args, "--db-creds", creds, env=env, timeout=180)
            assert res.returncode != 0, f"{case}: emulate succeeded\n{res.report()}"
            assert_no_leak(res, password, core, wrong_password, wrong_core)
            assert "error" in res.stderr.lower(), res.report()


HELP_COMMANDS = [
    ("--help",),
    ("-h",),
    ("help",),
    ("gateway", "--help"),
    ("gateway", "-h"),
    ("help", "gateway"),
    ("emulate", "--help"),
    ("emulate", "batch", "--help"),
    ("emulate", "batch", "-h"),
    ("sink", "--help"),
    ("topics", "create", "--help"),
    ("source", "load-mysql", "--help"),
    ("demo", "--help"),
    ("mwaa", "deploy", "--help"),
    ("mwaa", "trigger", "--help"),
    ("mwaa", "status", "--help"),
]


def test_help_outputs_show_no_secrets(services, tmp_path):
    api_key, api_core = canary("ApiKey")
    db_password, db_core = canary("HelpDbPw")
    creds = write_db_creds(tmp_path / "db_creds.yaml", "127.0.0.1", 3306, "someone", db_password, "pinterest_data")
    env = base_env(PINPIPE_API_KEY=api_key, PINPIPE_DB_CREDS=str(creds), PINPIPE_USER_ID="0123456789ab")
    seen_api_key_flag = False
    for args in HELP_COMMANDS:
        res = pinpipe(*args, env=env, timeout=60)
        assert res.returncode == 0, res.report()
        assert res.stdout.strip(), f"{res.describe()} printed no help"
        assert_no_leak(res, api_key, api_core, db_password, db_core)
        seen_api_key_flag |= "--api-key" in res.stdout
    assert seen_api_key_flag, "no help output documents --api-key"


def test_api_key_from_environment_is_never_logged(services, procs):
    uid = new_uid()
    create_topics(uid)
    api_key, core = canary("ApiKey")
    gw = procs.gateway(uid, "-vv", env=base_env(PINPIPE_API_KEY=api_key))
    url = gw.topic_url(f"{uid}.pin")
    body = {"records": [{"value": {"n": 1}}]}
    ctype = {"Content-Type": "application/vnd.kafka.json.v2+json"}
    # The gateway did take the key from the environment.
    r = requests.post(url, json=body, headers=ctype, timeout=60)
    assert r.status_code == 403, r.text
    assert api_key not in r.text and core not in r.text
    r = requests.post(url, json=body, headers={**ctype, "x-api-key": "wrong"}, timeout=60)
    assert r.status_code == 403 and api_key not in r.text and core not in r.text, r.text
    r = requests.post(url, json=body, headers={**ctype, "x-api-key": api_key}, timeout=60)
    assert r.status_code == 200, r.text

    emulate = ("-vv", "emulate", "batch", "--user-id", uid, "--gateway", gw.url, "--events", 4, "--seed", 2,
               "--no-sleep", "--json")
    res = pinpipe(*emulate, env=base_env(PINPIPE_API_KEY=api_key), timeout=120)
    assert res.returncode == 0, res.report()
    assert_no_leak(res, api_key, core)
    res = pinpipe(*emulate, env=base_env(PINPIPE_API_KEY=api_key, PINPIPE_LOG="trace"), timeout=120)
    assert res.returncode == 0, res.report()
    assert_no_leak(res, api_key, core)
    # The wrong key fails (403 is final), and the failure does not print the key it was given.
    wrong, wrong_core = canary("WrongKey")
    res = pinpipe(*emulate, "--retry-for", 5, env=base_env(PINPIPE_API_KEY=wrong), timeout=120)
    assert res.returncode != 0, res.report()
    assert_no_leak(res, api_key, core, wrong, wrong_core)

    assert gw.proc.stop() == 0, gw.proc.report()
    assert_no_leak(("pinpipe gateway -vv", {"stdout": gw.proc.stdout(), "stderr": gw.proc.stderr()}), api_key, core,
                   wrong, wrong_core)
    # -vv really was verbose (so the check above looked at debug logs).
    assert "DEBUG" in gw.proc.stderr() or "TRACE" in gw.proc.stderr(), gw.proc.stderr()[-2000:]
