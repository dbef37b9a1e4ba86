"""The MWAA fake (tests/mwaa_fake.py) behaves like MWAA's documented API, through boto3: environments
are described or not found, InvokeRestApi reaches the real Airflow 3 REST API with the DAGs of the
environment's bucket (and maps Airflow's 4xx to RestApiClientException), UpdateEnvironment goes
UPDATING -> AVAILABLE and fails (rolls back) when an object version it names is not in the bucket, a
denied key is refused, and the CLI token path runs real `airflow` commands.

Needs moto's S3 (scripts/services.sh start moto) and the Airflow 3 venv ($PINPIPE_AIRFLOW_VENV);
the DAG is a trivial one written here, not the repository's."""

from __future__ import annotations

import json
import re
import secrets

import boto3
import pytest
import requests
from airflow_api import AirflowApi
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import AWS_ENDPOINT, port_open, s3_client, wait_for
from mwaa_fake import MwaaFake, decode_cli_output

DAG_TEMPLATE = """\
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG({dag_id!r}, schedule=None):
    EmptyOperator(task_id="extract") >> EmptyOperator(task_id="load")
"""


@pytest.fixture(scope="module")
def airflow3(tmp_path_factory):
    airflow = AirflowApi(tmp_path_factory.mktemp("airflow3"))
    airflow.start()
    try:
        yield airflow
    finally:
        airflow.stop()
        print(f"\n===== Airflow api-server log (tail)\n{airflow.log()[-4000:]}")


@pytest.fixture
def mwaa(airflow3):
    fake = MwaaFake(airflow3, AWS_ENDPOINT, update_seconds=1.0).start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def bucket():
    """A fresh versioned bucket in moto, as MWAA requires."""
    host, port = re.sub(r"^https?://", "", AWS_ENDPOINT).rstrip("/").rsplit(":", 1)
    if not port_open(host, int(port)):
        pytest.fail(f"S3 (moto) is not reachable at {AWS_ENDPOINT} (scripts/services.sh start moto)", pytrace=False)
    name = f"mwaa-fake-{secrets.token_hex(6)}"
    s3 = s3_client()
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def client(fake: MwaaFake, key: str = "testing"):
    return boto3.client(
        "mwaa", endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key="testing",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}),
    )


def error(exc: pytest.ExceptionInfo) -> tuple[str, int, dict]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response


def upload_dag(bucket: str, dag_id: str, prefix: str = "dags") -> str:
    s3_client().put_object(Bucket=bucket, Key=f"{prefix}/{dag_id}.py", Body=DAG_TEMPLATE.format(dag_id=dag_id).encode())
    return dag_id


def new_env(fake: MwaaFake, bucket: str, **kwargs) -> str:
    name = f"env-{secrets.token_hex(4)}"
    fake.add_environment(name, bucket, **kwargs)
    return name


def test_get_environment_describes_a_known_environment_and_not_an_unknown_one(mwaa, bucket):
    name = new_env(mwaa, bucket)
    env = client(mwaa).get_environment(Name=name)["Environment"]
    assert env["Name"] == name
    assert env["Arn"] == f"arn:aws:airflow:us-east-1:123456789012:environment/{name}"
    assert env["Status"] == "AVAILABLE"
    assert env["AirflowVersion"] == "3.0.6"
    assert env["SourceBucketArn"] == f"arn:aws:s3:::{bucket}"
    assert env["DagS3Path"] == "dags"
    assert env["LastUpdate"]["Status"] == "SUCCESS"
    assert "PluginsS3Path" not in env and "RequirementsS3ObjectVersion" not in env

    with pytest.raises(ClientError) as exc:
        client(mwaa).get_environment(Name="no-such-env")
    code, status, response = error(exc)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert response["Error"]["Message"] == "Environment no-such-env does not exist."

    # An injected failure answers once, then the environment is served again.
    mwaa.fail_next("GetEnvironment")
    with pytest.raises(ClientError) as exc:
        client(mwaa).get_environment(Name=name)
    assert error(exc)[:2] == ("InternalServerException", 500)
    assert client(mwaa).get_environment(Name=name)["Environment"]["Name"] == name
    assert [(c.operation, c.environment, c.status) for c in mwaa.calls("GetEnvironment")] == [
        ("GetEnvironment", name, 200), ("GetEnvironment", "no-such-env", 404), ("GetEnvironment", name, 500),
        ("GetEnvironment", name, 200)]


def test_invoke_rest_api_triggers_a_run_of_a_dag_from_the_bucket(mwaa, bucket):
    name = new_env(mwaa, bucket)
    dag_id = upload_dag(bucket, f"fake_{secrets.token_hex(4)}")
    mwaa_api = client(mwaa)

    made = mwaa_api.invoke_rest_api(Name=name, Path=f"/dags/{dag_id}/dagRuns", Method="POST",
                                    Body={"logical_date": None, "conf": {"a": 1}})
    assert made["RestApiStatusCode"] == 200, made
    run_id = made["RestApiResponse"]["dag_run_id"]
    assert made["RestApiResponse"]["conf"] == {"a": 1}

    runs = mwaa_api.invoke_rest_api(Name=name, Path=f"/dags/{dag_id}/dagRuns", Method="GET",
                                    QueryParameters={"limit": 10})
    assert [(r["dag_run_id"], r["state"]) for r in runs["RestApiResponse"]["dag_runs"]] == [(run_id, "queued")]
    tis = mwaa_api.invoke_rest_api(Name=name, Path=f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", Method="GET")
    assert sorted(t["task_id"] for t in tis["RestApiResponse"]["task_instances"]) == ["extract", "load"]
    # The run is in the real Airflow, not only in the fake's answers.
    assert mwaa.airflow.get(f"/dags/{dag_id}/dagRuns")["total_entries"] == 1

    with pytest.raises(ClientError) as exc:
        mwaa_api.invoke_rest_api(Name=name, Path="/dags/no_such_dag/dagRuns", Method="POST", Body={"logical_date": None})
    code, status, response = error(exc)
    assert (code, status) == ("RestApiClientException", 400)
    assert response.get("RestApiStatusCode") == 404, response
    assert "no_such_dag" in json.dumps(response.get("RestApiResponse")), response

    # A DAG file deleted from the bucket is gone from Airflow at the next call.
    s3_client().delete_object(Bucket=bucket, Key=f"dags/{dag_id}.py")
    dag = mwaa_api.invoke_rest_api(Name=name, Path=f"/dags/{dag_id}", Method="GET")["RestApiResponse"]
    assert dag["is_stale"] is True, dag


def test_invoke_rest_api_needs_an_environment_that_has_it(mwaa, bucket):
    name = new_env(mwaa, bucket, airflow_version="2.6.3", rest_api=False)
    with pytest.raises(ClientError) as exc:
        client(mwaa).invoke_rest_api(Name=name, Path="/dags", Method="GET")
    code, status, response = error(exc)
    assert (code, status) == ("ValidationException", 400)
    assert response["Error"]["Message"] == "Update your environment to use InvokeRestApi"


def wait_available(api, name: str) -> dict:
    def done():
        env = api.get_environment(Name=name)["Environment"]
        return env if env["Status"] == "AVAILABLE" else None

    return wait_for(done, 60, interval=0.1, what=f"{name} to be AVAILABLE")


def test_update_environment_applies_versions_that_exist_and_rolls_back_otherwise(mwaa, bucket):
    s3 = s3_client()
    first = s3.put_object(Bucket=bucket, Key="requirements.txt", Body=b"requests\n")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="requirements.txt", Body=b"requests\npyarrow\n")["VersionId"]
    plugins = s3.put_object(Bucket=bucket, Key="plugins.zip", Body=b"PK\x05\x06" + bytes(18))["VersionId"]
    name = new_env(mwaa, bucket)
    api = client(mwaa)

    before = api.get_environment(Name=name)["Environment"]["LastUpdate"]["CreatedAt"]
    arn = api.update_environment(Name=name, RequirementsS3Path="requirements.txt", RequirementsS3ObjectVersion=first,
                                 PluginsS3Path="plugins.zip", PluginsS3ObjectVersion=plugins)["Arn"]
    assert arn.endswith(f":environment/{name}")
    updating = api.get_environment(Name=name)["Environment"]
    assert (updating["Status"], updating["LastUpdate"]["Status"]) == ("UPDATING", "PENDING")
    with pytest.raises(ClientError) as exc:
        api.update_environment(Name=name, RequirementsS3ObjectVersion=second)
    assert error(exc)[:2] == ("ValidationException", 400)
    env = wait_available(api, name)
    assert env["LastUpdate"]["Status"] == "SUCCESS", env
    assert (env["RequirementsS3Path"], env["RequirementsS3ObjectVersion"]) == ("requirements.txt", first)
    assert (env["PluginsS3Path"], env["PluginsS3ObjectVersion"]) == ("plugins.zip", plugins)
    assert env["LastUpdate"]["CreatedAt"] > before, "LastUpdate is this update's, not the creation's"

    # A version the bucket does not hold: the update fails and nothing changes.
    api.update_environment(Name=name, RequirementsS3Path="requirements.txt", RequirementsS3ObjectVersion="no-such-version")
    env = wait_available(api, name)
    assert env["LastUpdate"]["Status"] == "FAILED", env
    assert env["LastUpdate"]["Error"]["ErrorCode"] == "INCORRECT_CONFIGURATION"
    assert "no-such-version" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert env["RequirementsS3ObjectVersion"] == first

    # A failure the test asks for, even with objects that exist; then a good update goes through.
    mwaa.fail_next_update(name, "WORKER_FAILURE", "the workers did not start")
    api.update_environment(Name=name, RequirementsS3ObjectVersion=second)
    env = wait_available(api, name)
    assert env["LastUpdate"]["Status"] == "FAILED"
    assert env["LastUpdate"]["Error"] == {"ErrorCode": "WORKER_FAILURE", "ErrorMessage": "the workers did not start"}
    api.update_environment(Name=name, RequirementsS3ObjectVersion=second)
    env = wait_available(api, name)
    assert (env["LastUpdate"]["Status"], env["RequirementsS3ObjectVersion"]) == ("SUCCESS", second)
    assert "Error" not in env["LastUpdate"]
    assert [c.body for c in mwaa.calls("UpdateEnvironment", name) if c.status == 200][-1] == {
        "RequirementsS3ObjectVersion": second}


def test_a_denied_key_gets_access_denied(mwaa, bucket):
    name = new_env(mwaa, bucket)
    mwaa.deny("AKIADENIED")
    for call in (lambda api: api.get_environment(Name=name),
                 lambda api: api.invoke_rest_api(Name=name, Path="/dags", Method="GET"),
                 lambda api: api.update_environment(Name=name, DagS3Path="dags")):
        with pytest.raises(ClientError) as exc:
            call(client(mwaa, key="AKIADENIED"))
        code, status, response = error(exc)
        assert (code, status) == ("AccessDeniedException", 403)
        assert "AKIADENIED" in response["Error"]["Message"]
    assert client(mwaa).get_environment(Name=name)["Environment"]["Status"] == "AVAILABLE"
    assert {c.access_key for c in mwaa.calls(environment=name)} == {"AKIADENIED", "testing"}


def test_the_cli_token_path_triggers_a_run(mwaa, bucket):
    name = new_env(mwaa, bucket, rest_api=False)
    dag_id = upload_dag(bucket, f"fake_cli_{secrets.token_hex(4)}")
    token = client(mwaa).create_cli_token(Name=name)
    assert token["WebServerHostname"] == mwaa.hostport

    def cli(command: str, token: str = token["CliToken"]) -> tuple[int, dict | str]:
        r = requests.post(f"http://{mwaa.hostport}/aws_mwaa/cli", data=command,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}, timeout=300)
        return r.status_code, (r.json() if r.status_code == 200 else r.text)

    status, out = cli(f"dags trigger -c '{{\"a\": 1}}' {dag_id}")
    assert status == 200, out
    stdout, stderr = decode_cli_output(out)
    assert dag_id in stdout + stderr and "queued" in stdout, (stdout, stderr)

    status, out = cli(f"dags list-runs {dag_id} -o json")
    assert status == 200, out
    stdout, stderr = decode_cli_output(out)
    # Airflow 3 logs (warnings included) to stdout too: the JSON is the line that starts with "[".
    runs = json.loads(next(line for line in stdout.splitlines() if line.startswith("[")))
    assert [(r["dag_id"], r["state"]) for r in runs] == [(dag_id, "queued")], (stdout, stderr)
    assert mwaa.airflow.get(f"/dags/{dag_id}/dagRuns")["dag_runs"][0]["conf"] == {"a": 1}

    assert cli("dags list", token="not-a-token")[0] == 403
    assert cli("db reset -y")[0] == 400
    assert [c.environment for c in mwaa.calls("Cli")] == [name, name, None, name]


def test_a_closed_fake_leaves_no_dag_or_run_behind(airflow3, bucket):
    dag_id = upload_dag(bucket, f"fake_reused_{secrets.token_hex(4)}")
    with MwaaFake(airflow3, AWS_ENDPOINT) as first:
        name = new_env(first, bucket)
        made = client(first).invoke_rest_api(Name=name, Path=f"/dags/{dag_id}/dagRuns", Method="POST",
                                             Body={"logical_date": None})
        assert made["RestApiStatusCode"] == 200
    assert not first.dags_dir(name).exists()
    assert airflow3.request("GET", f"/dags/{dag_id}").status_code == 404

    # The same DAG deployed by a later test's environment starts with no runs.
    with MwaaFake(airflow3, AWS_ENDPOINT) as second:
        name = new_env(second, bucket)
        runs = client(second).invoke_rest_api(Name=name, Path=f"/dags/{dag_id}/dagRuns", Method="GET")
        assert runs["RestApiResponse"]["total_entries"] == 0, runs
