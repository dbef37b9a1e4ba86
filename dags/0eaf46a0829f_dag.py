"""The daily DAG of the Pinterest data pipeline, on pinpipe's operators.

sink_drain:      Kafka topics ``<uid>.pin|geo|user`` → landing zone, until caught up
clean:           landing zone → raw and clean Delta tables (``<lake>/batch/pin|geo|user``)
analytics:       clean tables → the nine analytics tables (``<lake>/analytics/...``)
stream_catch_up: Kinesis streams ``streaming-<uid>-pin|geo|user`` → the stream tables
                 (``<lake>/stream/<uid>_pin_table``, ...), to the ends seen at start; skipped when
                 the streams do not exist

Every task is exactly once by the positions kept in the landing zone and the Delta log: a retry, a
re-run of a date or a backfill adds nothing twice.

Airflow Variables (defaults in brackets):
  pinpipe_user_id   [0eaf46a0829f]
  pinpipe_landing   [s3://user-<uid>-bucket]
  pinpipe_lake      [s3://user-<uid>-bucket/lake]
Connections: ``aws_default`` (S3 and Kinesis: keys, region, ``endpoint_url`` and
``service_config.kinesis.endpoint_url`` in extra; absent: the worker's AWS credential chain) and ``kafka_default`` (extra ``{"bootstrap.servers": ..., <librdkafka settings>}``).

Nothing heavy is imported here: the native core loads when a task runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10+
    from airflow import DAG

from pinpipe.airflow import (
    PinpipeAnalyticsOperator,
    PinpipeBatchOperator,
    PinpipeSinkOperator,
    PinpipeStreamOperator,
)

USER_ID = "{{ var.value.get('pinpipe_user_id', '0eaf46a0829f') }}"
LANDING = "{{ var.value.get('pinpipe_landing', 's3://user-' ~ var.value.get('pinpipe_user_id', '0eaf46a0829f') ~ '-bucket') }}"
LAKE = "{{ var.value.get('pinpipe_lake', 's3://user-' ~ var.value.get('pinpipe_user_id', '0eaf46a0829f') ~ '-bucket/lake') }}"

default_args = {
    "owner": "0eaf46a0829f",
    "depends_on_past": False,
    "email_on_failure": False,
    "email_on_retry": False,
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}

with DAG(
    dag_id="0eaf46a0829f_dag",
    description="Pinterest pipeline: Kafka → landing zone → clean Delta tables → analytics; Kinesis → stream tables",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["pinpipe", "batch", "stream"],
) as dag:
    sink_drain = PinpipeSinkOperator(task_id="sink_drain", user_id=USER_ID, landing=LANDING)
    clean = PinpipeBatchOperator(task_id="clean", user_id=USER_ID, landing=LANDING, lake=LAKE)
    analytics = PinpipeAnalyticsOperator(task_id="analytics", user_id=USER_ID, lake=LAKE)

    stream_catch_up = PinpipeStreamOperator(task_id="stream_catch_up", user_id=USER_ID, lake=LAKE)

    sink_drain >> clean >> analytics
