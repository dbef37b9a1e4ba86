"""`pinpipe mwaa deploy|trigger|status` against MWAA's control plane as `tests/mwaa_fake.py` fakes
it (MWAA has no emulator), with everything it points at real: moto's S3 (versioned buckets) and a
real Airflow 3.3.2 REST API (`tests/airflow_api.py`) serving the DAG folder that `deploy` uploaded.

- deploy, then trigger: that Airflow holds the new run, and status shows it; a second deploy
  uploads nothing and does not update the environment; a dry run changes nothing;
- the CLI-token path on an environment too old for InvokeRestApi;
- the plugins.zip deploy built installs offline in a fresh virtualenv and `import pinpipe.airflow`
  works;
- a profile in a temporary ~/.aws/config, with no key variable set, takes sink, batch and deploy
  to moto;
- the errors a user meets: one line, exit 1, no secret.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from airflow_api import AirflowApi
from conftest import (
    AWS_ENDPOINT,
    BOOTSTRAP,
    REPO,
    base_env,
    create_topics,
    delta_rows,
    new_uid,
    pinpipe,
    run_emulator,
    s3_client,
    wait_for,
)
from mwaa_fake import MwaaFake

DAG_ID = "0eaf46a0829f_dag"
SECRET = "pinpipe-mwaa-test-secret-9f2c"


def dev_wheel() -> Path:
    """The pinpipe wheel `scripts/test.sh` built (PINPIPE_WHEEL), else the newest cached one."""
    if os.environ.get("PINPIPE_WHEEL"):
        return Path(os.environ["PINPIPE_WHEEL"])
    cache = Path(os.environ.get("PINPIPE_CACHE") or Path.home() / ".cache" / "pinpipe")
    wheels = sorted(cache.glob("wheels/pinpipe-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        pytest.fail(f"no pinpipe wheel under {cache}/wheels (scripts/wheel.sh --dev --out ... builds it)", pytrace=False)
    return wheels[-1]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    with AirflowApi(tmp_path_factory.mktemp("airflow-home")) as api:
        yield api


@pytest.fixture(scope="module")
def fake(airflow):
    with MwaaFake(airflow, AWS_ENDPOINT, update_seconds=0.5) as f:
        yield f


def versioned_bucket(name: str | None = None, versioned: bool = True) -> str:
    name = name or f"mwaa-{new_uid()}"
    s3 = s3_client()
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def mwaa_env(fake: MwaaFake, **extra: str) -> dict:
    """The environment of a `pinpipe mwaa` run: MWAA at the fake, S3 at moto, a distinctive secret."""
    return base_env(AWS_ENDPOINT_URL_MWAA=fake.url, AWS_SECRET_ACCESS_KEY=SECRET, **extra)


def mwaa(fake: MwaaFake, *args, env: dict | None = None, timeout: float = 300):
    return pinpipe("mwaa", *args, env=env or mwaa_env(fake), timeout=timeout)


def deploy(fake: MwaaFake, name: str, *extra, dags: Path = REPO / "dags", env: dict | None = None):
    return mwaa(
        fake, "deploy", "--environment", name, "--dags", dags, "--wheel", dev_wheel(), "--poll-interval", "0.1",
        "--wait-timeout", "120", "--json", *extra, env=env,
    )


def trivial_dag(folder: Path, dag_id: str) -> Path:
    """A DAG folder holding one DAG of one empty task (each test its own id: the environments share
    one Airflow)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dag_id}.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow.providers.standard.operators.empty import EmptyOperator\n"
        f"with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n"
        "    EmptyOperator(task_id='noop')\n"
    )
    return folder


def versions(bucket: str, key: str) -> list[str]:
    listed = s3_client().list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [v["VersionId"] for v in listed if v["Key"] == key]


def one_line_error(res, *needles: str) -> str:
    """The run failed with one `error:` line, the last, holding every needle (progress lines may
    come before it), and no secret anywhere."""
    assert res.returncode == 1, res.report()
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.report()
    assert not any(" ERROR " in line or " WARN " in line for line in lines), res.report()
    for needle in needles:
        assert needle in errors[0], res.report()
    assert SECRET not in res.stdout + res.stderr, res.report()
    return errors[0]


def test_deploy_then_trigger_runs_the_dag_in_airflow_and_status_shows_it(fake, airflow):
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6")

    res = deploy(fake, name).check()
    summary = res.json
    files = {f["key"]: f for f in summary["files"]}
    assert set(files) == {f"dags/{DAG_ID}.py", "plugins.zip", "requirements.txt"}, res.report()
    assert all(f["action"] == "upload" for f in files.values()), res.report()
    assert summary["updated"] and summary["status"] == "AVAILABLE", res.report()
    # The environment runs exactly the object versions deploy uploaded.
    described = fake.describe(name)
    assert described["PluginsS3Path"] == "plugins.zip" and described["RequirementsS3Path"] == "requirements.txt"
    assert described["PluginsS3ObjectVersion"] == files["plugins.zip"]["version_id"] == versions(bucket, "plugins.zip")[0]
    assert described["RequirementsS3ObjectVersion"] == files["requirements.txt"]["version_id"]
    assert len(fake.calls("UpdateEnvironment", name)) == 1
    # plugins.zip holds the wheel and the constraints; requirements.txt installs from it offline.
    s3 = s3_client()
    plugins = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key="plugins.zip")["Body"].read()))
    assert sorted(plugins.namelist()) == sorted(["constraints.txt", dev_wheel().name])
    assert plugins.read(dev_wheel().name) == dev_wheel().read_bytes()
    requirements = s3.get_object(Bucket=bucket, Key="requirements.txt")["Body"].read().decode().splitlines()
    assert [line for line in requirements if not line.startswith("#")] == [
        "--find-links /usr/local/airflow/plugins",
        "--no-index",
        "--constraint /usr/local/airflow/plugins/constraints.txt",
        f"pinpipe=={summary['pinpipe_version']}",
    ]
    dag_source = s3.get_object(Bucket=bucket, Key=f"dags/{DAG_ID}.py")["Body"].read()
    assert dag_source == (REPO / "dags" / f"{DAG_ID}.py").read_bytes()
    assert any("linux_x86_64" in w for w in summary["warnings"]), "the dev wheel is not manylinux: deploy says so"

    res = mwaa(fake, "trigger", "--environment", name, "--conf", '{"source": "test_mwaa"}', "--json").check()
    run = res.json
    assert run["dag_id"] == DAG_ID and run["via"] == "rest-api" and run["dag_run_id"], res.report()
    # The real Airflow holds the run, with its conf.
    runs = airflow.get(f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    held = [r for r in runs if r["dag_run_id"] == run["dag_run_id"]]
    assert len(held) == 1 and held[0]["conf"] == {"source": "test_mwaa"}, runs

    res = mwaa(fake, "status", "--environment", name, "--json").check()
    status = res.json
    assert status["status"] == "AVAILABLE" and status["airflow_version"] == "3.0.6", res.report()
    assert status["last_update"]["status"] == "SUCCESS", res.report()
    assert run["dag_run_id"] in [r["dag_run_id"] for r in status["runs"]], res.report()
    text = mwaa(fake, "status", "--environment", name).check().stdout
    assert run["dag_run_id"] in text and "AVAILABLE" in text, text

    # Nothing changed: nothing uploaded, no update.
    res = deploy(fake, name).check()
    again = res.json
    assert again["uploaded"] == 0 and not again["updated"], res.report()
    assert {f["action"] for f in again["files"]} == {"unchanged"}, res.report()
    assert len(fake.calls("UpdateEnvironment", name)) == 1
    assert len(versions(bucket, "plugins.zip")) == 1 and len(versions(bucket, f"dags/{DAG_ID}.py")) == 1


def test_dry_run_plans_and_changes_nothing(fake, tmp_path):
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6", dag_s3_path="airflow/dags")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dry_run_dag.py").write_text("# not deployed\n")

    res = deploy(fake, name, "--dry-run", dags=dags).check()
    plan = res.json
    assert plan["dry_run"] and plan["updated"], res.report()
    assert {f["key"]: f["action"] for f in plan["files"]} == {
        "airflow/dags/dry_run_dag.py": "upload", "plugins.zip": "upload", "requirements.txt": "upload",
    }, res.report()
    assert s3_client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert fake.calls("UpdateEnvironment", name) == []
    text = mwaa(fake, "deploy", "--environment", name, "--dags", dags, "--wheel", dev_wheel(), "--dry-run").check().stdout
    assert text.startswith("dry run: ") and "to upload" in text and "would be updated" in text, text
    assert s3_client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_environment_too_old_for_invoke_rest_api_is_triggered_through_the_cli_endpoint(fake, airflow, tmp_path):
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6", rest_api=False)
    dag_id = f"cli_{new_uid()}"
    dags = trivial_dag(tmp_path / "dags", dag_id)
    deploy(fake, name, dags=dags).check()

    res = pinpipe("-vv", "mwaa", "trigger", "--environment", name, "--dag", dag_id, "--json",
                  env=mwaa_env(fake, PINPIPE_LOG="trace"), timeout=300).check()
    run = res.json
    assert run["via"] == "cli" and run["dag_run_id"].startswith("pinpipe__"), res.report()
    assert fake.calls("CreateCliToken", name), "the CLI token path was taken"
    # Traced to the last detail, the run shows neither the AWS secret nor the CLI token.
    assert "TRACE" in res.stderr and SECRET not in res.stdout + res.stderr
    assert fake.cli_tokens and not any(token in res.stderr for token in fake.cli_tokens), "a CLI token was logged"
    runs = airflow.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]
    assert run["dag_run_id"] in [r["dag_run_id"] for r in runs], runs

    res = mwaa(fake, "status", "--environment", name, "--dag", dag_id, "--json").check()
    status = res.json
    assert status["via"] == "cli" and [r["dag_run_id"] for r in status["runs"]] == [run["dag_run_id"]], res.report()
    assert [t["task_id"] for t in status["runs"][0]["tasks"]] == ["noop"], res.report()


def test_trigger_wait_follows_the_run_to_its_end(fake, airflow, procs, tmp_path):
    """`--wait` returns when the run ends: 0 for success, 1 with one line for a failed run. (No
    scheduler runs here: the test ends each run through the REST API, as a worker would.)"""
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6")
    dag_id = f"wait_{new_uid()}"
    deploy(fake, name, dags=trivial_dag(tmp_path / "dags", dag_id)).check()
    for final, code in (("success", 0), ("failed", 1)):
        waiting = procs.start(
            f"trigger-{final}", "mwaa", "trigger", "--environment", name, "--dag", dag_id, "--wait",
            "--poll-interval", "0.2", "--json", env=mwaa_env(fake),
        )
        seen = set()

        def started():
            # 404 until the fake has synced the deployed DAG into Airflow (on the trigger's first call).
            r = airflow.request("GET", f"/dags/{dag_id}/dagRuns", params={"state": "queued"})
            runs = r.json()["dag_runs"] if r.status_code == 200 else []
            return [r["dag_run_id"] for r in runs if r["dag_run_id"] not in seen]

        run_id = wait_for(started, 120, what="the run to be created")[0]
        seen.add(run_id)
        assert waiting.running(), waiting.report()
        r = airflow.request("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": final})
        assert r.status_code == 200, r.text
        assert waiting.wait(120) == code, waiting.report()
        if final == "success":
            assert waiting.json()["state"] == "success" and waiting.json()["dag_run_id"] == run_id
        else:
            assert f"run {run_id} of {dag_id} failed" in waiting.stderr(), waiting.report()


def test_the_plugins_zip_installs_offline_in_a_fresh_virtualenv(fake, tmp_path):
    """What MWAA does on each worker: Airflow is there, plugins.zip is unpacked into the plugins
    folder, `pip install -r requirements.txt` runs with that folder as the only package source."""
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="2.10.3")
    empty = tmp_path / "dags"
    empty.mkdir()
    deploy(fake, name, dags=empty).check()

    s3 = s3_client()
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=bucket, Key="plugins.zip")["Body"].read())).extractall(plugins)
    requirements = s3.get_object(Bucket=bucket, Key="requirements.txt")["Body"].read().decode()
    local = tmp_path / "requirements.txt"
    local.write_text(requirements.replace("/usr/local/airflow/plugins", str(plugins)))

    # The worker's image: the Airflow 2 venv's packages (pinpipe aside), from pip's cache.
    airflow2 = Path(os.environ.get("PINPIPE_AIRFLOW2_VENV") or Path.home() / ".cache" / "pinpipe" / "airflow2-venv")
    frozen = subprocess.run([str(airflow2 / "bin" / "pip"), "freeze"], capture_output=True, text=True, check=True)
    image = tmp_path / "image.txt"
    # pyarrow too is left out: the wheel has no required dependency and must install alone.
    image.write_text("\n".join(line for line in frozen.stdout.splitlines() if not line.startswith(("pinpipe", "pyarrow"))))
    venv = tmp_path / "worker"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "-r", str(image)], check=True, timeout=900)
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import pinpipe"], capture_output=True)
    assert check.returncode != 0, "pinpipe is not in the image: only requirements.txt installs it"

    done = subprocess.run([*pip, "install", "-r", str(local)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/nowhere", "PIP_NO_CACHE_DIR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    probe = (
        "import pinpipe, pinpipe.airflow, importlib.metadata as m;"
        "print(pinpipe.__file__); print(m.version('pinpipe')); print(pinpipe.airflow.PinpipeBatchOperator.__name__)"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    where, version, operator = out.stdout.split()
    assert where.startswith(str(venv)) and operator == "PinpipeBatchOperator", out.stdout
    assert f"pinpipe=={version}" in requirements


def test_a_profile_in_aws_config_reaches_s3_and_mwaa_with_no_key_variables(fake, procs, tmp_path):
    uid = new_uid()
    bucket = versioned_bucket(f"user-{uid}-bucket")
    name = f"pinpipe-{uid}"
    fake.add_environment(name, bucket, airflow_version="3.0.6")
    aws_dir = tmp_path / "aws"
    aws_dir.mkdir()
    (aws_dir / "config").write_text("[profile pinpipe-test]\nregion = us-east-1\n")
    (aws_dir / "credentials").write_text(
        f"[pinpipe-test]\naws_access_key_id = profile-key-{uid}\naws_secret_access_key = {SECRET}\n"
    )
    env = {k: v for k, v in base_env().items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    env.update(
        AWS_CONFIG_FILE=str(aws_dir / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(aws_dir / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL_MWAA=fake.url,
    )
    create_topics(uid)
    gateway = procs.gateway(uid)
    run_emulator(gateway, 30, 7)
    landing, lake = f"s3://{bucket}", f"s3://{bucket}/lake"
    sink = ["sink", "--user-id", uid, "--bootstrap-servers", BOOTSTRAP, "--landing", landing, "--flush-size", "20",
            "--until-caught-up", "--json"]

    # No credentials at all: a one-line error, nothing landed.
    res = pinpipe(*sink, "--retry-deadline", "1", env=env, timeout=120)
    assert res.returncode == 1 and "credentials" in res.stderr.lower(), res.report()
    assert SECRET not in res.stdout + res.stderr

    res = pinpipe("--aws-profile", "pinpipe-test", *sink, env=env, timeout=300).check()
    assert res.json["records_landed"] == 90, res.report()
    res = pinpipe("batch", "--user-id", uid, "--landing", landing, "--lake", lake, "--json", "--quiet",
                  env={**env, "PINPIPE_AWS_PROFILE": "pinpipe-test"}, timeout=300).check()
    tables = {t["table"]: t for t in res.json["tables"]}
    assert sum(t["records_read"] for t in tables.values()) == 90, res.report()
    assert len(delta_rows(f"{lake}/batch/pin")) == tables["pin"]["clean_rows"] > 0, res.report()
    # The profile from the standard variable (AWS_PROFILE), for MWAA and the bucket.
    res = deploy(fake, name, dags=trivial_dag(tmp_path / "dags", f"profile_{uid}"),
                 env={**env, "AWS_PROFILE": "pinpipe-test"}).check()
    assert res.json["status"] == "AVAILABLE", res.report()
    assert {c.access_key for c in fake.calls(environment=name)} == {f"profile-key-{uid}"}
    assert SECRET not in res.stdout + res.stderr


def test_errors_a_user_meets_are_one_line_and_exit_non_zero(fake, tmp_path):
    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6")
    empty = tmp_path / "dags"
    empty.mkdir()

    one_line_error(mwaa(fake, "status", "--environment", "no-such-env"), 'no MWAA environment named "no-such-env"')
    one_line_error(deploy(fake, "no-such-env", dags=empty), "no MWAA environment named")

    fake.deny("denied-key")
    denied = mwaa_env(fake, AWS_ACCESS_KEY_ID="denied-key")
    one_line_error(mwaa(fake, "trigger", "--environment", name, env=denied), "not allowed")
    one_line_error(deploy(fake, name, dags=empty, env=denied), "not allowed")

    busy = f"pinpipe-{new_uid()}"
    fake.add_environment(busy, bucket, status="UPDATING")
    one_line_error(deploy(fake, busy, dags=empty), "UPDATING", "not AVAILABLE")

    plain = f"pinpipe-{new_uid()}"
    fake.add_environment(plain, versioned_bucket(versioned=False))
    one_line_error(deploy(fake, plain, dags=empty), "not versioned")

    one_line_error(mwaa(fake, "trigger", "--environment", name, "--dag", "no_such_dag"), 'knows no DAG "no_such_dag"')
    one_line_error(mwaa(fake, "status", "--environment", name, "--dag", "no_such_dag"), 'knows no DAG "no_such_dag"')

    fake.fail_next_update(name, "INCORRECT_CONFIGURATION", "requirements.txt could not be installed")
    line = one_line_error(deploy(fake, name, dags=empty), "INCORRECT_CONFIGURATION", "could not be installed")
    assert "MWAA could not apply the update" in line

    wrong = tmp_path / "pinpipe-0.1.0-cp311-abi3-macosx_11_0_arm64.whl"
    shutil.copy(dev_wheel(), wrong)
    res = mwaa(fake, "deploy", "--environment", name, "--dags", empty, "--wheel", wrong)
    one_line_error(res, "macosx_11_0_arm64", "x86_64")
    one_line_error(mwaa(fake, "deploy", "--environment", name, "--dags", empty), "pinpipe wheel is required")


def test_the_python_module_deploys_triggers_and_reads_status(fake, airflow, tmp_path):
    import pinpipe
    import pinpipe.mwaa

    name, bucket = f"pinpipe-{new_uid()}", versioned_bucket()
    fake.add_environment(name, bucket, airflow_version="3.0.6")
    dag_id = f"py_{new_uid()}"
    aws = {"mwaa_endpoint_url": fake.url, "endpoint_url": AWS_ENDPOINT}
    summary = pinpipe.mwaa.deploy(name, dags=trivial_dag(tmp_path / "dags", dag_id), wheels=[dev_wheel()],
                                  poll_interval=0.1, aws=aws)
    assert summary["status"] == "AVAILABLE" and summary["updated"], summary
    run = pinpipe.mwaa.trigger(name, dag=dag_id, conf={"from": "python"}, aws=aws)
    assert run["via"] == "rest-api", run
    status = pinpipe.mwaa.status(name, dag=dag_id, aws=aws)
    assert status["environment"] == name and status["status"] == "AVAILABLE", status
    assert [r["dag_run_id"] for r in status["runs"]] == [run["dag_run_id"]], status
    with pytest.raises(pinpipe.MwaaError, match="no MWAA environment named"):
        pinpipe.mwaa.status("no-such-env", aws=aws)
    with pytest.raises(pinpipe.ConfigError, match="wheel"):
        pinpipe.mwaa.deploy(name, dags=tmp_path / "dags", aws=aws)
