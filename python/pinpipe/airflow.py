"""Airflow operators over pinpipe's jobs (Airflow 3.x through the Task SDK, and 2.10+).

Each operator is thin: it templates its fields, resolves its connections at execute time and calls
the same core job as ``pinpipe.<job>()`` and the ``pinpipe`` command, with the connection's
settings handed over as arguments (never written into ``os.environ`` of a shared worker). The
job's summary is the task's return value (XCom); the core's log events go to the task log.

Every job is exactly once by the positions it keeps in the landing zone and the Delta log, so a
retry, a re-run of the same date or a backfill adds nothing twice.

Connections:

- AWS (``aws_conn_id``, default ``aws_default``), as the Amazon provider reads it: login = access
  key id, password = secret access key, extra ``region_name``, ``endpoint_url`` (or
  ``service_config.s3.endpoint_url``; Kinesis: ``service_config.kinesis.endpoint_url``, else
  ``endpoint_url``), ``aws_session_token`` and ``profile_name`` (a profile of the worker's
  ``~/.aws``). ``aws_conn_id=None``, or a
  connection that does not exist, leaves AWS to the worker's standard credential chain.
- Kafka (``kafka_config_id``, default ``kafka_default``), as the Apache Kafka provider reads it:
  extra is the librdkafka configuration; ``bootstrap.servers`` is the broker list, the other keys
  (TLS, SASL) pass through, ``group.id`` is ignored (the sink names its own consumer group:
  ``group_id``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pinpipe

try:  # Airflow 3: the Task SDK
    from airflow.sdk import BaseHook, BaseOperator
except ImportError:  # Airflow 2.10+
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]

__all__ = [
    "PinpipeAnalyticsOperator",
    "PinpipeBatchOperator",
    "PinpipeSinkOperator",
    "PinpipeStreamOperator",
    "aws_settings",
    "kafka_settings",
]

log = logging.getLogger(__name__)


def _connection(conn_id: str):
    """The connection, or None if it is not defined."""
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as e:  # AirflowNotFoundException (2.x) / a Task SDK error (3.x)
        if "isn't defined" in str(e) or "not found" in str(e).lower() or type(e).__name__.endswith("NotFoundException"):
            return None
        raise


def _extra(conn) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    if extra is None:
        raw = getattr(conn, "extra", None) or "{}"
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return dict(extra or {})


def aws_settings(aws_conn_id: str | None) -> dict[str, str] | None:
    """pinpipe's ``aws`` setting from an Airflow AWS connection (None: the standard chain)."""
    if not aws_conn_id:
        return None
    conn = _connection(aws_conn_id)
    if conn is None:
        log.info("AWS connection %r is not defined: using the worker's standard AWS credential chain", aws_conn_id)
        return None
    extra = _extra(conn)
    aws: dict[str, str] = {}
    if conn.login:
        aws["access_key_id"] = conn.login
    if conn.password:
        aws["secret_access_key"] = conn.password
    token = extra.get("aws_session_token")
    if token:
        aws["session_token"] = token
    profile = extra.get("profile_name") or extra.get("profile")
    if profile:
        aws["profile"] = profile
    region = extra.get("region_name") or extra.get("region")
    if region:
        aws["region"] = region
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    if endpoint:
        aws["endpoint_url"] = endpoint
    kinesis = (extra.get("service_config") or {}).get("kinesis", {}).get("endpoint_url")
    if kinesis:
        aws["kinesis_endpoint_url"] = kinesis
    return aws or None


def kafka_settings(kafka_config_id: str | None) -> dict[str, Any]:
    """pinpipe's ``bootstrap_servers`` and ``kafka_properties`` from an Airflow Kafka connection."""
    if not kafka_config_id:
        return {}
    conn = _connection(kafka_config_id)
    if conn is None:
        log.info("Kafka connection %r is not defined: using pinpipe's configuration", kafka_config_id)
        return {}
    properties = {str(k): str(v) for k, v in _extra(conn).items()}
    properties.pop("group.id", None)
    servers = properties.pop("bootstrap.servers", None) or conn.host
    if servers and conn.port and ":" not in servers:
        servers = f"{servers}:{conn.port}"
    out: dict[str, Any] = {}
    if servers:
        out["bootstrap_servers"] = servers
    if properties:
        out["kafka_properties"] = properties
    return out


class _PinpipeOperator(BaseOperator):
    """Shared by pinpipe's operators: user id, config file, AWS connection, logging, on_kill."""

    template_fields: Sequence[str] = ("user_id", "config")
    ui_color = "#e60023"

    def __init__(
        self,
        *,
        user_id: str | None = None,
        config: str | None = None,
        aws_conn_id: str | None = "aws_default",
        log_level: str = "INFO",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.user_id = user_id
        self.config = config
        self.aws_conn_id = aws_conn_id
        self.log_level = log_level

    def _settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if self.user_id:
            settings["user_id"] = self.user_id
        aws = aws_settings(self.aws_conn_id)
        if aws:
            settings["aws"] = aws
        return settings

    def _run(self, settings: dict[str, Any]) -> Any:
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        pinpipe.init_logging(self.log_level)
        settings = {k: v for k, v in self._settings().items() if v not in (None, "")}
        summary = self._run(settings)
        self.log.info("pinpipe %s: %s", self.task_type, _brief(summary))
        return summary

    def on_kill(self) -> None:
        pinpipe._core.stop_running()


def _brief(summary: Any) -> str:
    """One line of a summary for the task log (the whole summary goes to XCom)."""
    if not isinstance(summary, dict):
        return str(summary)
    parts = [
        f"{t['table']}: {t['records_read']} read, {t['clean_rows']} clean rows, {t['dead_lettered']} dead letters"
        for t in summary.get("tables", [])
    ]
    if summary.get("analytics"):
        parts.append(f"{len(summary['analytics'])} analytics tables")
    parts += [f"{k}={v}" for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return "; ".join(parts)


class PinpipeSinkOperator(_PinpipeOperator):
    """Drains the user's Kafka topics into the landing zone, up to the end offsets seen at start,
    then returns the sink's summary. Exactly once: a retry re-reads nothing already landed."""

    template_fields: Sequence[str] = (*_PinpipeOperator.template_fields, "landing", "group_id", "bootstrap_servers")

    def __init__(
        self,
        *,
        landing: str,
        kafka_config_id: str | None = "kafka_default",
        bootstrap_servers: str | None = None,
        group_id: str | None = None,
        flush_size: int | None = None,
        flush_bytes: int | None = None,
        flush_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.landing = landing
        self.kafka_config_id = kafka_config_id
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.flush_size = flush_size
        self.flush_bytes = flush_bytes
        self.flush_interval = flush_interval

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(kafka_settings(self.kafka_config_id))
        if self.bootstrap_servers:
            settings["bootstrap_servers"] = self.bootstrap_servers
        settings.update(
            landing=self.landing,
            group_id=self.group_id,
            flush_size=self.flush_size,
            flush_bytes=self.flush_bytes,
            flush_interval=self.flush_interval,
            until_caught_up=True,
        )
        return settings

    def _run(self, settings: dict[str, Any]) -> Any:
        return pinpipe.sink(config=self.config, **settings)


class PinpipeBatchOperator(_PinpipeOperator):
    """Landing zone → raw and clean Delta tables (``pinpipe batch --only clean``): reads only the
    landing objects past the positions in the raw tables' Delta log."""

    template_fields: Sequence[str] = (*_PinpipeOperator.template_fields, "landing", "lake")
    only = "clean"

    def __init__(self, *, landing: str, lake: str, full_refresh: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.landing = landing
        self.lake = lake
        self.full_refresh = full_refresh

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(landing=self.landing, lake=self.lake, only=self.only)
        if self.full_refresh:
            settings["full_refresh"] = True
        return settings

    def _run(self, settings: dict[str, Any]) -> Any:
        return pinpipe.batch(config=self.config, **settings)


class PinpipeAnalyticsOperator(_PinpipeOperator):
    """Clean tables → the nine analytics Delta tables (``pinpipe batch --only analytics``), each
    replaced in one commit. Returns the analytics rows."""

    template_fields: Sequence[str] = (*_PinpipeOperator.template_fields, "lake")

    def __init__(self, *, lake: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake = lake

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(lake=self.lake, only="analytics")
        return settings

    def _run(self, settings: dict[str, Any]) -> Any:
        return pinpipe.batch(config=self.config, **settings)


class PinpipeStreamOperator(_PinpipeOperator):
    """Kinesis streams ``streaming-<uid>-pin|geo|user`` → the Delta stream tables
    (``<lake>/stream/<uid>_pin_table``, ...), read to the ends seen at start (``pinpipe stream
    --until-caught-up``): a catch-up run for a schedule, beside or instead of a ``pinpipe stream``
    daemon (they share the shards through leases). Exactly once by the shard positions in the
    tables' Delta log. With ``skip_without_streams`` (default) a user who has not created the
    streams gets a skipped task, not a failed one."""

    template_fields: Sequence[str] = (*_PinpipeOperator.template_fields, "lake", "start")

    def __init__(
        self,
        *,
        lake: str,
        start: str | None = None,
        skip_without_streams: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lake = lake
        self.start = start
        self.skip_without_streams = skip_without_streams

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        settings.update(lake=self.lake, start=self.start, until_caught_up=True)
        return settings

    def _run(self, settings: dict[str, Any]) -> Any:
        try:
            return pinpipe.stream(config=self.config, **settings)
        except pinpipe.BrokerError as e:
            if self.skip_without_streams and "ResourceNotFoundException" in str(e):
                try:
                    from airflow.exceptions import AirflowSkipException
                except ImportError:  # pragma: no cover - older layouts
                    from airflow.sdk.exceptions import AirflowSkipException  # type: ignore[no-redef]
                raise AirflowSkipException(f"no Kinesis streams to read: {e}") from None
            raise
