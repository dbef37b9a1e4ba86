"""Amazon MWAA from Python: the same jobs as ``pinpipe mwaa deploy|trigger|status``.

Keyword arguments are named like the command's long flags and win over ``PINPIPE_*`` variables
and the YAML file given as ``config=``; AWS access is the ``aws={...}`` setting or, unset, the
standard credential chain (``AWS_PROFILE`` and ``~/.aws`` profiles, SSO, assume-role, IMDS).
Each function returns the summary ``pinpipe mwaa <command> --json`` prints, as a dict, and
raises :class:`pinpipe.MwaaError` with a one-line cause when MWAA or the environment's Airflow
refuses (unknown environment, no permission, an environment busy updating, an unknown DAG).
"""

from __future__ import annotations

import json
from typing import Any

from pinpipe import PathLike, _config, _native, _settings

__all__ = ["deploy", "status", "trigger"]


def deploy(environment: str, *, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """Uploads the DAG folder, ``plugins.zip`` (the wheels, with a constraints file) and a
    ``requirements.txt`` that installs pinpipe from them with no package index, to the
    environment's versioned bucket — only files that changed — then updates the environment to the
    new object versions and waits until it is ``AVAILABLE`` (an update MWAA reports failed raises,
    with MWAA's reason).

    Settings: ``dags`` (default ``"dags"``), ``wheels`` (paths; the pinpipe wheel is required),
    ``constraints`` (a pip constraints file to include), ``dry_run``, ``no_wait``,
    ``poll_interval`` and ``wait_timeout`` (seconds), ``aws``.
    """
    settings["environment"] = environment
    return json.loads(_native().mwaa("deploy", _settings(settings), config=_config(config)))


def trigger(environment: str, *, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """Starts a run of the DAG (default ``<user_id>_dag``) through the environment's Airflow REST
    API (``InvokeRestApi``; the Airflow CLI endpoint on environments too old for it) and returns
    its ``dag_run_id``. With ``wait=True`` it follows the run to its end and raises if it failed.

    Settings: ``dag``, ``user_id``, ``conf`` (a dict), ``wait``, ``poll_interval``,
    ``wait_timeout``, ``aws``.
    """
    settings["environment"] = environment
    return json.loads(_native().mwaa("trigger", _settings(settings), config=_config(config)))


def status(environment: str, *, config: PathLike | None = None, **settings: Any) -> dict[str, Any]:
    """The environment's state, its last update and the DAG's most recent runs, newest first, each
    with its tasks' states.

    Settings: ``dag``, ``user_id``, ``runs`` (default 5), ``aws``.
    """
    settings["environment"] = environment
    return json.loads(_native().mwaa("status", _settings(settings), config=_config(config)))
