"""A real Airflow 3 REST API for the MWAA tests: one Airflow home (SQLite, no examples) in a temporary
directory, its api-server on a free 127.0.0.1 port, and the DAG folder it serves.

Airflow runs from the venv that scripts/airflow_venv.sh makes ($PINPIPE_AIRFLOW_VENV, default
~/.cache/pinpipe/airflow-venv: Airflow 3.3.2 and the pinpipe wheel), with no AWS_*, PINPIPE_* or
AIRFLOW* variable of the caller and never through a proxy.

No scheduler and no dag-processor run: `sync_dags()` makes the metadata database match the DAG
folder in one short process (`airflow dags reserialize`, then DAGs and import errors of deleted files
are dropped from view, as the dag-processor would), so a test knows exactly when the API sees a change.
Runs created through the API stay queued.

Authentication is Airflow's SimpleAuthManager with one admin user whose password this file writes:
`POST /auth/token` gives the JWT that every /api/v2 call sends as a bearer token.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

ADMIN = "admin"
READY_TIMEOUT = 120

# Run by the venv's Python: serialize every DAG of the folder, then forget the files that are gone.
_SYNC_SCRIPT = """
from pathlib import Path

from sqlalchemy import delete

from airflow.cli import cli_parser
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.models.dag import DagModel
from airflow.models.errors import ParseImportError
from airflow.utils.session import create_session

args = cli_parser.get_parser().parse_args(["dags", "reserialize"])
args.func(args)
with create_session() as session:
    for bundle in DagBundlesManager().get_all_dag_bundles():
        root = Path(bundle.path)
        present = {str(p.relative_to(root)) for p in root.rglob("*.py")}
        DagModel.deactivate_deleted_dags(bundle.name, present, session=session)
        session.execute(
            delete(ParseImportError)
            .where(ParseImportError.bundle_name == bundle.name, ParseImportError.filename.not_in(present))
            .execution_options(synchronize_session=False)
        )
"""


def airflow3_venv() -> Path:
    """The Airflow 3 venv of the tests (the one tests/test_airflow.py uses for "3")."""
    venv = Path(os.environ.get("PINPIPE_AIRFLOW_VENV") or Path.home() / ".cache" / "pinpipe" / "airflow-venv")
    if not (venv / "bin" / "airflow").exists():
        import pytest

        pytest.fail(f"no Airflow 3 venv at {venv} (scripts/airflow_venv.sh WHEEL makes it)", pytrace=False)
    return venv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


class AirflowError(AssertionError):
    pass


class AirflowApi:
    """One Airflow 3 home and its running api-server. `start()` returns when /api/v2 answers;
    `stop()` ends the server (and its workers). Usable as a context manager."""

    def __init__(self, home: Path, venv: Path | None = None):
        self.venv = venv or airflow3_venv()
        self.home = Path(home)
        self.dags_folder = self.home / "dags"
        self.log_path = self.home / "api-server.log"
        self.port = 0
        self.password = secrets.token_hex(12)
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one sync or CLI command at a time: SQLite has one writer
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PINPIPE_", "AIRFLOW"))}
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            base.pop(name, None)
        passwords = self.home / "passwords.json"
        base.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            # Without this, a DAG rewritten within 30 s of its last write is neither stored nor re-read.
            AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="0",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
            AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PATH=f"{self.venv / 'bin'}:{base.get('PATH', '/usr/bin:/bin')}",
        )
        self.env = base
        self._http = requests.Session()
        self._http.trust_env = False  # never a proxy, never ~/.netrc

    # --------------------------------------------------------------------------------------------
    # lifecycle

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT (the REST API is under /api/v2)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AirflowApi:
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(f'{{"{ADMIN}": "{self.password}"}}')
        self.run("db", "migrate", timeout=300)
        for attempt in range(3):
            self.port = _free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "1"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends the workers too
            )
            log.close()
            if self._wait_ready():
                return self
            if "address already in use" not in self.log().lower() or attempt == 2:
                break
            self._end()
        self.stop()
        raise AirflowError(f"the Airflow api-server did not start\n--- {self.log_path} ---\n{_tail(self.log())}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self._http.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def _end(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
            except ProcessLookupError:
                pass
        self.proc = None

    def stop(self) -> None:
        self._end()
        self._http.close()

    def __enter__(self) -> AirflowApi:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --------------------------------------------------------------------------------------------
    # the REST API

    def token(self, refresh: bool = False) -> str:
        """A JWT of the admin user (`POST /auth/token`), cached until `refresh`."""
        with self._token_lock:
            if self._token is None or refresh:
                r = self._http.post(f"{self.url}/auth/token", json={"username": ADMIN, "password": self.password},
                                    timeout=30)
                if r.status_code not in (200, 201):
                    raise AirflowError(f"POST /auth/token answered {r.status_code}: {r.text[:500]}")
                self._token = r.json()["access_token"]
            return self._token

    def request(self, method: str, path: str, *, params=None, json=None, timeout: float = 60) -> requests.Response:
        """`METHOD /api/v2{path}` as the admin user."""
        return self.call(method, f"/api/v2{path}", params=params, json=json, timeout=timeout)

    def call(self, method: str, path: str, *, params=None, json=None, timeout: float = 60) -> requests.Response:
        """`METHOD {path}` (from the server's root) as the admin user; a rejected token is renewed once."""
        url = f"{self.url}{path}"
        for refresh in (False, True):
            headers = {"Authorization": f"Bearer {self.token(refresh=refresh)}"}
            r = self._http.request(method, url, params=params, json=json, headers=headers, timeout=timeout)
            if r.status_code != 401:
                break
        return r

    def get(self, path: str, **params):
        """`GET /api/v2{path}` that must succeed; returns the JSON body."""
        r = self.request("GET", path, params=params or None)
        assert r.status_code == 200, f"GET /api/v2{path} answered {r.status_code}: {r.text[:1000]}"
        return r.json()

    # --------------------------------------------------------------------------------------------
    # the DAG folder and the CLI

    def sync_dags(self) -> None:
        """Makes the metadata database (what the API shows) match the DAG folder now."""
        with self._write_lock:
            done = subprocess.run([str(self.venv / "bin" / "python"), "-c", _SYNC_SCRIPT], capture_output=True,
                                  text=True, env=self.env, timeout=300, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise AirflowError(f"syncing the DAG folder failed ({done.returncode})\n{_tail(done.stderr)}")

    def forget_dags(self, subfolder: str) -> list[str]:
        """Deletes (through the API: with their runs) the DAGs whose files were in SUBFOLDER of the DAG
        folder, so a later test that deploys the same dag_id starts with no runs. Returns their ids."""
        dags, offset = [], 0
        while True:
            page = self.get("/dags", exclude_stale="false", limit=100, offset=offset)
            dags += page["dags"]
            offset += len(page["dags"])
            if not page["dags"] or offset >= page["total_entries"]:
                break
        gone = [d["dag_id"] for d in dags if (d.get("relative_fileloc") or "").startswith(f"{subfolder}/")]
        for dag_id in gone:
            r = self.request("DELETE", f"/dags/{dag_id}")
            assert r.status_code in (204, 404), f"DELETE /api/v2/dags/{dag_id} answered {r.status_code}: {r.text[:500]}"
        return gone

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`airflow ARGS...` against this home, whatever its exit status."""
        with self._write_lock:
            return subprocess.run([str(self.venv / "bin" / "airflow"), *args], capture_output=True, env=self.env,
                                  timeout=timeout, stdin=subprocess.DEVNULL)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`airflow ARGS...` that must succeed."""
        done = self.cli(*args, timeout=timeout)
        if done.returncode != 0:
            raise AirflowError(
                f"airflow {' '.join(args)} exited {done.returncode}\n--- stdout ---\n"
                f"{_tail(done.stdout.decode(errors='replace'))}\n--- stderr ---\n{_tail(done.stderr.decode(errors='replace'))}"
            )
        return done
