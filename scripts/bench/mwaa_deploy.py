"""`pinpipe mwaa deploy` side by side with the upload a user did by hand, in one run: against the
tests' MWAA fake (tests/mwaa_fake.py) in front of a real Airflow 3 api-server, and moto's S3.

Each round makes a new environment and versioned bucket, then times
  - the first deploy (DAG folder, plugins.zip with the wheel, requirements.txt; environment update),
  - a second deploy with nothing changed (what a daily CI job does most days),
  - the baseline: boto3 putting the same three objects again, without zipping, hashing or checks.
usage: python scripts/bench/mwaa_deploy.py PINPIPE_BIN WHEEL [ROUNDS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from airflow_api import AirflowApi  # noqa: E402
from mwaa_fake import MwaaFake  # noqa: E402


def main() -> None:
    import boto3

    binary, wheel = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    s3_endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:15000")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    dag = REPO / "dags" / "0eaf46a0829f_dag.py"
    with tempfile.TemporaryDirectory() as home, AirflowApi(Path(home)) as airflow, \
            MwaaFake(airflow, s3_endpoint, update_seconds=0.5) as fake:
        env = dict(os.environ, AWS_ENDPOINT_URL_MWAA=fake.url, NO_PROXY="127.0.0.1,localhost")
        print(f"{'round':>5} {'first deploy s':>15} {'unchanged redeploy s':>21} {'boto3 re-upload s':>18} "
              f"{'redeploy / re-upload':>21}")
        for i in range(rounds):
            bucket, name = f"bench-mwaa-{os.getpid()}-{i}", f"bench-{os.getpid()}-{i}"
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            fake.add_environment(name, bucket)
            deploy = [binary, "mwaa", "deploy", "--environment", name, "--dags", str(REPO / "dags"), "--wheel", wheel,
                      "--poll-interval", "0.1", "--json"]
            t = time.perf_counter()
            subprocess.run(deploy, env=env, check=True, capture_output=True)
            first = time.perf_counter() - t
            t = time.perf_counter()
            subprocess.run(deploy, env=env, check=True, capture_output=True)
            again = time.perf_counter() - t
            plugins = s3.get_object(Bucket=bucket, Key="plugins.zip")["Body"].read()
            requirements = s3.get_object(Bucket=bucket, Key="requirements.txt")["Body"].read()
            t = time.perf_counter()
            s3.put_object(Bucket=bucket, Key="plugins.zip", Body=plugins)
            s3.put_object(Bucket=bucket, Key="requirements.txt", Body=requirements)
            s3.put_object(Bucket=bucket, Key=f"dags/{dag.name}", Body=dag.read_bytes())
            manual = time.perf_counter() - t
            print(f"{i + 1:>5} {first:>15.2f} {again:>21.2f} {manual:>18.2f} {again / manual:>20.2f}x")
        print(f"plugins.zip: {len(plugins):,} bytes")


if __name__ == "__main__":
    main()
