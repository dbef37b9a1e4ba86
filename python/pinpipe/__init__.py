"""pinpipe: the Pinterest data pipeline with a Rust core.

One function per job, the same jobs as the ``pinpipe`` command. Keyword arguments are named like
the command's long flags (``flush_size=`` for ``--flush-size``) and win over ``PINPIPE_*``
environment variables, which win over the YAML file given as ``config=``, which wins over the
defaults; an unknown keyword raises :class:`ConfigError`. Each job returns the summary that
``pinpipe <job> --json`` prints, as a dict; :func:`query` returns a :class:`pyarrow.Table`.

The work runs in the Rust core with the GIL released. Ctrl-C stops a running job: the sink and the
emulator finish the work in hand (as the command does on Ctrl-C), other jobs stop at once, which is
safe because every commit they make is atomic; then :class:`KeyboardInterrupt` is raised.

Connections are settings too: ``bootstrap_servers=`` and ``kafka_properties={...}`` (librdkafka
properties) for Kafka, ``aws={"profile", "access_key_id", "secret_access_key", "session_token",
"region", "endpoint_url", "kinesis_endpoint_url", "mwaa_endpoint_url"}`` for S3, Kinesis and MWAA
(unset: the standard AWS environment and credential chain, ``~/.aws`` profiles included).
:mod:`pinpipe.mwaa` deploys to, triggers and watches an Amazon MWAA environment.

Nothing is logged until :func:`init_logging` is called; then the core's events go to the
``pinpipe`` logger of :mod:`logging`.
"""

from __future__ import annotations

import importlib
import json
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow

    from pinpipe._core import (
        BrokerError,
        ConfigError,
        DataError,
        MwaaError,
        PinpipeError,
        SourceError,
        StorageError,
    )

__all__ = [
    "BrokerError",
    "ConfigError",
    "DataError",
    "MwaaError",
    "PinpipeError",
    "SourceError",
    "StorageError",
    "__version__",
    "batch",
    "demo",
    "emulate",
    "init_logging",
    "lake_tables",
    "query",
    "sink",
    "stop_running",
    "stream",
    "streams_create",
    "streams_delete",
    "streams_describe",
    "streams_list",
    "topics_create",
]

_ERRORS = ("PinpipeError", "ConfigError", "SourceError", "BrokerError", "StorageError", "DataError", "MwaaError")


def _native() -> ModuleType:
    """The native extension, loaded on first use: importing ``pinpipe`` (or a DAG file that imports
    ``pinpipe.airflow``) stays cheap."""
    return importlib.import_module("pinpipe._core")


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        return getattr(_native(), name)
    if name == "__version__":
        return _native().__version__
    if name == "_core":
        return _native()
    if name == "mwaa":
        return importlib.import_module("pinpipe.mwaa")
    raise AttributeError(f"module 'pinpipe' has no attribute {name!r}")


PathLike = str | os.PathLike[str]


def _plain(value: Any) -> Any:
    """Settings as JSON: paths become strings, everything else must already be JSON."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _settings(settings: dict[str, Any]) -> str:
    given = {k: _plain(v) for k, v in settings.items() if v is not None}
    try:
        return json.dumps(given)
    except TypeError as e:
        raise _native().ConfigError(f"settings must be JSON values (str, int, float, bool, list, dict): {e}") from None


def _config(config: PathLike | None) -> str | None:
    return None if config is None else os.fspath(config)


def sink(*, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """Lands Kafka records in the landing zone (Confluent S3-sink layout), exactly once.

    Settings: ``landing``, ``user_id``, ``bootstrap_servers``, ``kafka_properties``, ``group_id``,
    ``flush_size``, ``flush_bytes``, ``flush_interval`` (seconds), ``until_caught_up``,
    ``retry_deadline`` (seconds transient landing-zone failures are retried; default 120), ``aws``.
    Without ``until_caught_up=True`` it runs until interrupted.
    """
    return json.loads(_native().sink(_settings(settings), config=_config(config)))


def batch(*, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """Landing zone → raw and clean Delta tables → the nine analytics tables (incremental).

    Settings: ``landing``, ``lake``, ``user_id``, ``only`` (``"clean"`` or ``"analytics"``),
    ``full_refresh``, ``concurrency``, ``retry_deadline`` (seconds a run is retried after transient
    storage failures; default 120), ``abandoned_upload_age`` (seconds after which an incomplete
    multipart upload under the lake, left by a killed run, is aborted at the start of a run;
    default 86400), ``compact`` and ``compact_min_files`` (compact tables with at least that many
    small files at the end of a run; default on, 10), ``target_file_mib`` (128), ``vacuum`` and
    ``vacuum_retention`` (delete files no table version younger than that many seconds references;
    default on, 604800), ``aws``.
    """
    return json.loads(_native().batch(_settings(settings), config=_config(config)))


def emulate(kind: str = "batch", *, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """The posting emulator.

    ``kind="batch"`` posts each event's pin, geo and user rows to the gateway's REST-proxy API, as
    the original emulator did (settings: ``gateway``, ``events`` (0: until interrupted), ``seed``,
    ``no_sleep``, ``concurrency``, ``source`` (``"synthetic"`` or ``"mysql"``), ``db_creds``,
    ``api_key``, ``retry_for``, ``user_id``). ``kind="stream"`` puts the same rows to the gateway's
    Kinesis-proxy API (``PUT /streams/streaming-<uid>-<t>/record``), as the original streaming
    emulator did, with the same settings. ``kind="landing"`` writes drawn events straight into a
    landing zone (settings: ``landing``, ``events``, ``seed``, ``flush_size``, ``rows``).
    """
    if kind == "batch":
        return json.loads(_native().emulate(_settings(settings), config=_config(config)))
    if kind == "stream":
        return json.loads(_native().emulate_stream(_settings(settings), config=_config(config)))
    if kind == "landing":
        return json.loads(_native().emulate_landing(_settings(settings), config=_config(config)))
    raise _native().ConfigError(f"unknown emulator {kind!r}: use 'batch', 'stream' or 'landing'")


def stream(*, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """Reads the user's three Kinesis streams into the Delta stream tables, exactly once.

    Settings: ``lake``, ``user_id``, ``start`` (``"trim-horizon"``, ``"latest"`` or an RFC 3339
    time, for shards with no position in their table), ``until_caught_up``, ``commit_interval``,
    ``max_batch_records``, ``poll_interval``, ``lease_duration``, ``worker_id``, ``retry_deadline``,
    ``aws``. Without ``until_caught_up=True`` it runs until interrupted.
    """
    return json.loads(_native().stream(_settings(settings), config=_config(config)))


def streams_create(*, config: PathLike | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Creates the user's three Kinesis streams (existing ones are left alone), each ``ACTIVE``.

    Settings: ``user_id``, ``streams`` (names instead of the three), ``shards``, ``wait``, ``aws``.
    """
    return json.loads(_native().streams("create", _settings(settings), config=_config(config)))


def streams_list(*, config: PathLike | None = None, **settings: Any) -> list[str]:
    """Every Kinesis stream of the account and region. Settings: ``aws``."""
    return json.loads(_native().streams("list", _settings(settings), config=_config(config)))


def streams_describe(*, config: PathLike | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Status and shards (with their parents) of the user's streams. Settings: ``user_id``,
    ``streams``, ``aws``."""
    return json.loads(_native().streams("describe", _settings(settings), config=_config(config)))


def streams_delete(*, config: PathLike | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Deletes the user's streams and waits until they are gone. Settings: ``user_id``,
    ``streams``, ``wait``, ``aws``."""
    return json.loads(_native().streams("delete", _settings(settings), config=_config(config)))


def demo(*, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """The whole batch pipeline in this process on embedded defaults (no broker, no cloud).

    Settings: ``dir`` (default ``pinpipe-demo``), ``events``, ``seed``, ``concurrency``,
    ``flush_size``, ``partitions``, ``user_id``.
    """
    return json.loads(_native().demo(_settings(settings), config=_config(config)))


def topics_create(*, config: PathLike | None = None, **settings: Any) -> list[dict[str, Any]]:
    """Creates the user's three Kafka topics (existing ones are left alone).

    Settings: ``user_id``, ``bootstrap_servers``, ``kafka_properties``, ``partitions``,
    ``replication_factor``.
    """
    return json.loads(_native().topics_create(_settings(settings), config=_config(config)))


def query(
    name: str | None = None, *, sql: str | None = None, config: PathLike | None = None, **settings: Any
) -> pyarrow.Table:
    """A lake table by name (``"pin"``, ``"top_category_by_country"``, ``"_dead_letters"``, ...), or
    the result of ``sql`` run with every lake table registered by name, as a ``pyarrow.Table``
    (handed over through the Arrow C stream interface, no copy through JSON).

    Settings: ``lake``, ``user_id`` (whose stream tables, ``<uid>_pin_table``, ...), ``aws``.
    """
    try:
        import pyarrow
    except ImportError:
        raise ImportError("pinpipe.query returns a pyarrow.Table: install pyarrow (pip install 'pinpipe[arrow]')") from None

    stream = _native().query(_settings(settings), name=name, sql=sql, config=_config(config))
    return pyarrow.table(stream)


def lake_tables() -> list[dict[str, str]]:
    """Every table :func:`query` knows: ``[{"name": ..., "path": <path under the lake>}]``."""
    return json.loads(_native().lake_tables())


def init_logging(level: str = "INFO") -> None:
    """Sends the core's log events at ``level`` and above to the ``pinpipe`` logger of
    :mod:`logging` (``pinpipe.sink``, ``pinpipe.batch``, ...). Installed once per process; a later
    call changes the level."""
    _native().init_logging(level)


def stop_running() -> None:
    """Stops every pinpipe job running in this process, from any thread: the sink and the emulator
    finish the work in hand and return their summary, other jobs stop at once (their commits are
    atomic) and raise :class:`PinpipeError`."""
    _native().stop_running()
