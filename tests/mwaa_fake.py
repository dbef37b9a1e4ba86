"""A fake of the Amazon MWAA control plane for the end-to-end tests of `pinpipe mwaa`.

MWAA has no emulator. This is an HTTP server on 127.0.0.1 speaking the restJson1 protocol that
aws-sdk-mwaa (Rust) and boto3 send to a custom endpoint (no `api.`/`env.` host prefix):

    GET   /environments/{Name}   GetEnvironment
    PATCH /environments/{Name}   UpdateEnvironment
    POST  /clitoken/{Name}       CreateCliToken
    POST  /restapi/{Name}        InvokeRestApi -> the real Airflow 3 REST API (tests/airflow_api.py)
    POST  /aws_mwaa/cli          the environment's CLI endpoint (bearer CLI token) -> the real `airflow`

Everything an environment points at is real: its bucket is in moto's S3, and before it forwards a
REST or CLI call the fake copies the environment's DAG folder (s3://BUCKET/DagS3Path/) into the
Airflow DAG folder (a subfolder named after the environment) and has Airflow re-read it when
something changed, as MWAA's own sync does. An update checks, against the bucket, that the object
versions it names exist: if one does not, the environment rolls back (AVAILABLE, LastUpdate FAILED).

Errors are restJson1's: the HTTP status, the `x-amzn-ErrorType` header and a JSON body with the
message under the member name the service model gives it ("message", or "Message" for
AccessDeniedException and RestApiClient/ServerException). Timestamps are epoch seconds. Requests are
SigV4-signed; the signature is not checked, but the access key id is read from `Authorization`
so a test can deny one key. Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
import shlex
import shutil
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_api import AirflowApi

REGION = "us-east-1"
ACCOUNT = "123456789012"
# CLI commands the fake passes to `airflow` (MWAA runs an allowlist of its own).
CLI_COMMANDS = {"dags", "tasks", "version", "variables", "connections", "pools", "providers", "info", "config",
                "jobs", "cheat-sheet"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# The S3 objects an update can name: (path member, version member).
_S3_OBJECTS = (
    ("PluginsS3Path", "PluginsS3ObjectVersion"),
    ("RequirementsS3Path", "RequirementsS3ObjectVersion"),
    ("StartupScriptS3Path", "StartupScriptS3ObjectVersion"),
)
# Members of UpdateEnvironment's input that the fake keeps as they are sent.
_PLAIN_MEMBERS = ("DagS3Path", "AirflowConfigurationOptions", "MaxWorkers", "MinWorkers", "EnvironmentClass",
                  "WebserverAccessMode", "Schedulers", "SourceBucketArn")


class ServiceError(Exception):
    """An error reply: status, error type (x-amzn-ErrorType) and body."""

    # Error shapes whose message member is "Message" (the others use "message").
    CAPITALIZED = {"AccessDeniedException", "RestApiClientException", "RestApiServerException"}

    def __init__(self, status: int, error_type: str, message: str, **members):
        super().__init__(message)
        self.status, self.error_type = status, error_type
        self.body = {("Message" if error_type in self.CAPITALIZED else "message"): message, **members}


@dataclasses.dataclass
class Call:
    """One request the fake received."""

    operation: str  # GetEnvironment, UpdateEnvironment, CreateCliToken, InvokeRestApi, Cli, or "Unknown"
    environment: str | None
    body: object  # the parsed JSON body, the CLI command (str), or None
    access_key: str | None
    status: int = 0  # the HTTP status the fake answered


@dataclasses.dataclass
class Environment:
    name: str
    bucket: str
    airflow_version: str
    dag_s3_path: str
    rest_api: bool
    status: str = "AVAILABLE"
    created_at: float = dataclasses.field(default_factory=time.time)
    members: dict = dataclasses.field(default_factory=dict)  # Plugins*/Requirements*/... as set by updates
    last_update: dict = dataclasses.field(default_factory=dict)
    dag_etags: dict = dataclasses.field(default_factory=dict)  # relative path -> ETag of the local copy
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # guards the members above
    sync_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # one DAG sync at a time

    @property
    def arn(self) -> str:
        return f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/{self.name}"


class MwaaFake:
    """The fake control plane. `start()` serves it; `add_environment()` creates environments
    (all sharing one real Airflow); `close()` stops it and removes the environments' DAG folders."""

    def __init__(self, airflow: AirflowApi, s3_endpoint: str, update_seconds: float = 1.0):
        import boto3

        self.airflow = airflow
        self.update_seconds = update_seconds
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id="testing",
                               aws_secret_access_key="testing")
        self.environments: dict[str, Environment] = {}
        self.denied_keys: set[str] = set()
        self.requests: list[Call] = []
        self.cli_tokens: dict[str, str] = {}  # token -> environment name
        self._next_failure: dict[str, tuple[str, str, str]] = {}
        self._timers: list[threading.Timer] = []
        self._injected: dict[str, list[ServiceError]] = {}  # operation -> errors to answer next
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # --------------------------------------------------------------------------------------------
    # test API

    @property
    def url(self) -> str:
        """The endpoint to give the SDK, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> MwaaFake:
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="mwaa-fake", daemon=True).start()
        return self

    def close(self) -> None:
        """Stops serving, and removes every environment's DAGs from the shared Airflow (files, DAGs,
        their runs) so that the next test starts clean."""
        for timer in self._timers:
            timer.cancel()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        for env in self.environments.values():
            with env.sync_lock:
                shutil.rmtree(self.dags_dir(env.name), ignore_errors=True)
                env.dag_etags.clear()
                self.airflow.forget_dags(env.name)

    def __enter__(self) -> MwaaFake:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def add_environment(self, name: str, bucket: str, airflow_version: str = "3.0.6", dag_s3_path: str = "dags",
                        rest_api: bool = True, status: str = "AVAILABLE", **members) -> Environment:
        """An environment reading DAGs from s3://BUCKET/DAG_S3_PATH/. `rest_api=False` makes it one
        that predates InvokeRestApi. `members` are initial GetEnvironment members (PluginsS3Path=...)."""
        env = Environment(name, bucket, airflow_version, dag_s3_path.strip("/"), rest_api, status, members=members)
        env.last_update = {"Status": "SUCCESS", "CreatedAt": _epoch(env.created_at)}
        with self._lock:
            self.environments[name] = env
        return env

    def deny(self, access_key_id: str) -> None:
        """Requests signed with this access key id get AccessDeniedException."""
        self.denied_keys.add(access_key_id)

    def fail_next_update(self, name: str, error_code: str = "INTERNAL_ERROR",
                         message: str = "The update failed; the environment was rolled back.",
                         status: str = "AVAILABLE") -> None:
        """The next update of `name` fails with this error, whatever the bucket holds, and leaves the
        environment in `status` (AVAILABLE: rolled back; UPDATE_FAILED: the rollback failed too)."""
        self._next_failure[name] = (error_code, message, status)

    def fail_next(self, operation: str, status: int = 500, error_type: str = "InternalServerException",
                  message: str = "An internal error occurred.", times: int = 1) -> None:
        """The next `times` requests of `operation` (GetEnvironment, InvokeRestApi, Cli, ...) answer
        this error instead of being served (they are still recorded)."""
        with self._lock:
            self._injected.setdefault(operation, []).extend(
                ServiceError(status, error_type, message) for _ in range(times))

    def calls(self, operation: str | None = None, environment: str | None = None) -> list[Call]:
        """The recorded requests, optionally only one operation's and one environment's."""
        with self._lock:
            return [c for c in self.requests if (operation is None or c.operation == operation)
                    and (environment is None or c.environment == environment)]

    def dags_dir(self, name: str) -> Path:
        """Where the environment's DAG files land in Airflow's DAG folder."""
        return self.airflow.dags_folder / name

    def describe(self, name: str) -> dict:
        """What GetEnvironment answers for `name` (the "Environment" member)."""
        env = self.environments[name]
        with env.lock:
            out = {
                "Name": env.name,
                "Arn": env.arn,
                "Status": env.status,
                "CreatedAt": _epoch(env.created_at),
                "AirflowVersion": env.airflow_version,
                "SourceBucketArn": f"arn:aws:s3:::{env.bucket}",
                "DagS3Path": env.dag_s3_path,
                "WebserverUrl": self.airflow.hostport,
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{env.name}-execution",
                "EnvironmentClass": "mw1.small",
                "LastUpdate": json.loads(json.dumps(env.last_update)),
            }
            out.update({k: v for k, v in env.members.items() if v is not None})
        return out

    # --------------------------------------------------------------------------------------------
    # operations

    def environment(self, name: str) -> Environment:
        env = self.environments.get(name)
        if env is None:
            raise ServiceError(404, "ResourceNotFoundException", f"Environment {name} does not exist.")
        return env

    def get_environment(self, name: str) -> dict:
        self.environment(name)
        return {"Environment": self.describe(name)}

    def update_environment(self, name: str, body: dict) -> dict:
        env = self.environment(name)
        if not isinstance(body, dict):
            raise ServiceError(400, "ValidationException", "The request body is not a JSON object.")
        with env.lock:
            if env.status != "AVAILABLE":
                raise ServiceError(400, "ValidationException",
                                   f"Unable to update environment {name}: its status is {env.status}, not AVAILABLE.")
            env.status = "UPDATING"
            env.last_update = {"Status": "PENDING", "CreatedAt": _epoch(time.time()), "Source": "Customer"}
        timer = threading.Timer(self.update_seconds, self._finish_update, args=(env, body))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return {"Arn": env.arn}

    def _finish_update(self, env: Environment, body: dict) -> None:
        failure = self._next_failure.pop(env.name, None)
        resolved = {}
        if failure is None:
            try:
                resolved = self._resolve_objects(env, body)
            except _MissingObject as e:
                failure = ("INCORRECT_CONFIGURATION", str(e), "AVAILABLE")
        with env.lock:
            if failure is not None:
                code, message, env.status = failure
                env.last_update.update(Status="FAILED", Error={"ErrorCode": code, "ErrorMessage": message})
                return
            env.status = "AVAILABLE"
            env.members.update(resolved)
            for member in _PLAIN_MEMBERS:
                if member in body:
                    if member == "DagS3Path":
                        env.dag_s3_path = str(body[member]).strip("/")
                    else:
                        env.members[member] = body[member]
            env.last_update["Status"] = "SUCCESS"

    def _resolve_objects(self, env: Environment, body: dict) -> dict:
        """The Plugins/Requirements/StartupScript members after the update, each object checked in
        the bucket (a named version must exist; a path without one takes the latest)."""
        out = {}
        for path_member, version_member in _S3_OBJECTS:
            if path_member not in body and version_member not in body:
                continue
            key = body.get(path_member) or env.members.get(path_member)
            version = body.get(version_member)
            if not key:
                raise _MissingObject(f"{version_member} was given without {path_member}.")
            try:
                head = self.s3.head_object(Bucket=env.bucket, Key=key, **({"VersionId": version} if version else {}))
            except Exception as e:  # noqa: BLE001 - any miss (404, bad version id) fails the update
                shown = f" version {version}" if version else ""
                raise _MissingObject(f"Unable to read s3://{env.bucket}/{key}{shown}: {e}") from None
            out[path_member] = key
            out[version_member] = version or head.get("VersionId")
        return out

    def create_cli_token(self, name: str) -> dict:
        self.environment(name)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.cli_tokens[token] = name
        return {"CliToken": token, "WebServerHostname": self.hostport}

    def invoke_rest_api(self, name: str, body: dict) -> dict:
        env = self.environment(name)
        if not env.rest_api:
            raise ServiceError(400, "ValidationException", "Update your environment to use InvokeRestApi")
        if not isinstance(body, dict) or not isinstance(body.get("Path"), str) or not body.get("Method"):
            raise ServiceError(400, "ValidationException", "Path and Method are required.")
        method = str(body["Method"]).upper()
        if method not in ("GET", "PUT", "POST", "PATCH", "DELETE"):
            raise ServiceError(400, "ValidationException", f"Method {body['Method']} is not supported.")
        self.sync_dags(env)
        prefix = "/api/v2" if env.airflow_version.startswith("3") else "/api/v1"
        params = {k: _query_value(v) for k, v in (body.get("QueryParameters") or {}).items()}
        path = body["Path"] if body["Path"].startswith("/") else "/" + body["Path"]
        r = self.airflow.call(method, prefix + path, params=params or None, json=body.get("Body"))
        try:
            response = r.json() if r.content else {}
        except ValueError:
            response = {"detail": r.text}
        if r.status_code >= 500:
            raise ServiceError(500, "RestApiServerException", "The Airflow REST API answered a server error.",
                               RestApiStatusCode=r.status_code, RestApiResponse=response)
        if r.status_code >= 400:
            raise ServiceError(400, "RestApiClientException", "The Airflow REST API rejected the request.",
                               RestApiStatusCode=r.status_code, RestApiResponse=response)
        return {"RestApiStatusCode": r.status_code, "RestApiResponse": response}

    def cli_environment(self, token: str | None) -> str:
        """The environment a CLI token was made for."""
        with self._lock:
            name = self.cli_tokens.get(token or "")
        if name is None:
            raise ServiceError(403, "AccessDeniedException", "The CLI token is missing or not valid.")
        return name

    def cli(self, name: str, command: str) -> dict:
        """The CLI endpoint: `airflow COMMAND` -> {"stdout", "stderr"} in base64."""
        env = self.environment(name)
        try:
            args = shlex.split(command)
        except ValueError as e:
            raise ServiceError(400, "ValidationException", f"Cannot parse the command: {e}") from None
        if not args or args[0] not in CLI_COMMANDS:
            raise ServiceError(400, "ValidationException", f"Command not supported: {command!r}")
        self.sync_dags(env)
        done = self.airflow.cli(*args)
        return {"stdout": base64.b64encode(done.stdout).decode(), "stderr": base64.b64encode(done.stderr).decode()}

    # --------------------------------------------------------------------------------------------
    # DAG folder

    def sync_dags(self, env: Environment) -> bool:
        """Copies s3://BUCKET/DagS3Path/ into the environment's DAG folder (new and changed objects by
        ETag, deleted ones removed) and has Airflow re-read it if anything changed. True if so."""
        target = self.dags_dir(env.name)
        with env.sync_lock:
            with env.lock:
                prefix = f"{env.dag_s3_path}/" if env.dag_s3_path else ""
            target.mkdir(parents=True, exist_ok=True)
            remote = {}
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(prefix):]
                    if rel and not rel.endswith("/") and ".." not in Path(rel).parts:
                        remote[rel] = (obj["Key"], obj["ETag"])
            changed = False
            for rel, (key, etag) in remote.items():
                path = target / rel
                if env.dag_etags.get(rel) == etag and path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(self.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read())
                env.dag_etags[rel] = etag
                changed = True
            for rel in set(env.dag_etags) - set(remote):
                (target / rel).unlink(missing_ok=True)
                del env.dag_etags[rel]
                changed = True
            for directory in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(directory.iterdir()):
                    directory.rmdir()
            # Inside the lock: a concurrent call must not reach Airflow before the change is visible.
            if changed:
                self.airflow.sync_dags()
        return changed

    # --------------------------------------------------------------------------------------------
    # dispatch

    def handle(self, method: str, path: str, headers, raw: bytes) -> tuple[int, dict, bytes]:
        """One request -> (status, headers, body)."""
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
        operation, name = _route(method, parts)
        access_key = None
        if operation == "Cli":
            body = raw.decode("utf-8", errors="replace")
        else:
            m = _CREDENTIAL.search(headers.get("Authorization", ""))
            access_key = m.group(1) if m else None
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
        call = Call(operation, name, body, access_key)
        with self._lock:
            self.requests.append(call)
        try:
            with self._lock:
                injected = self._injected.get(operation, [])
                error = injected.pop(0) if injected else None
            if error is not None:
                raise error
            if operation == "Unknown":
                raise ServiceError(404, "UnknownOperationException", f"No operation for {method} {path}.")
            if operation == "Cli":
                auth = headers.get("Authorization", "")
                token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None
                call.environment = self.cli_environment(token)
                out = self.cli(call.environment, body)
            else:
                if access_key is None or access_key in self.denied_keys:
                    raise ServiceError(403, "AccessDeniedException",
                                       f"User: {access_key} is not authorized to perform: airflow:{operation} "
                                       f"on resource: {name}")
                if operation == "GetEnvironment":
                    out = self.get_environment(name)
                elif operation == "UpdateEnvironment":
                    out = self.update_environment(name, body)
                elif operation == "CreateCliToken":
                    out = self.create_cli_token(name)
                else:
                    out = self.invoke_rest_api(name, body)
            call.status = 200
            return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
        except ServiceError as e:
            call.status = e.status
            return e.status, {"Content-Type": "application/json", "x-amzn-ErrorType": e.error_type}, \
                json.dumps(e.body).encode()
        except Exception as e:  # noqa: BLE001 - the fake's own failure is the service's 500
            traceback.print_exc()
            call.status = 500
            body = {"message": f"{type(e).__name__}: {e}"}
            return 500, {"Content-Type": "application/json", "x-amzn-ErrorType": "InternalServerException"}, \
                json.dumps(body).encode()


class _MissingObject(Exception):
    pass


def _route(method: str, parts: list[str]) -> tuple[str, str | None]:
    """(operation, environment name) of a request."""
    if len(parts) == 2 and parts[0] == "environments" and method in ("GET", "PATCH"):
        return ("GetEnvironment" if method == "GET" else "UpdateEnvironment"), parts[1]
    if len(parts) == 2 and parts[0] == "clitoken" and method == "POST":
        return "CreateCliToken", parts[1]
    if len(parts) == 2 and parts[0] == "restapi" and method == "POST":
        return "InvokeRestApi", parts[1]
    if parts == ["aws_mwaa", "cli"] and method == "POST":
        return "Cli", None
    return "Unknown", None


def _epoch(t: float) -> float:
    return round(t, 3)


def _query_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    return value if isinstance(value, str) else json.dumps(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs use it
    fake: MwaaFake

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.fake.handle(self.command, self.path, self.headers, raw)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass


def decode_cli_output(out: dict) -> tuple[str, str]:
    """Decodes a CLI endpoint reply ({"stdout", "stderr"} in base64)."""
    return base64.b64decode(out["stdout"]).decode(errors="replace"), base64.b64decode(out["stderr"]).decode(
        errors="replace")

