"""Airflow 3 in the local stack, so the nightly `recsys_daily` runs on a stack left up.

Three programs of Airflow's own venv (.venvs/airflow, batch/airflow_env.sh): the API server
(UI, REST API and the execution API the task processes report to) on AIRFLOW_PORT, the
scheduler (LocalExecutor: tasks are subprocesses of the scheduler, at most 2 at a time on this
2-core box) and the DAG processor (parses dags/). All configuration is environment variables
(`airflow_env`), so `airflow.cfg` stays Airflow's untouched default.

- AIRFLOW_HOME is $STACK_DIR/airflow (logs, the generated secrets, the admin's password).
- Metadata: the database `airflow` on the stack's PostgreSQL, owned by the app's role
  (`bootstrap`, after the infra stage: create it, then `airflow db migrate`). SQLite would make
  the scheduler and the API server writers of one file.
- Auth: SimpleAuthManager with one user, `admin` (role ADMIN), whose password Airflow keeps in
  AIRFLOW_HOME/passwords.json (written here once, random). A client POSTs it to /auth/token
  for a JWT (`Api`); the UI logs in with it.
- The API server and the workers sign each other's JWTs with one secret, generated once into
  AIRFLOW_HOME/secrets.json: without a shared secret every task fails to report.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import checks
from .config import ROOT, StackConfig, StackError

VENV = ROOT / ".venvs" / "airflow"
ADMIN = "admin"
DATABASE = "airflow"
# Parse dags/ every 2 minutes rather than every 30 s: the file changes with a deploy, and each
# parse is a process start (the measured idle cost is in README.md).
PARSE_INTERVAL_SECONDS = 120


def home(cfg: StackConfig) -> Path:
    return cfg.dir / "airflow"


def port(cfg: StackConfig) -> int:
    return cfg.port("AIRFLOW_PORT")


def base_url(cfg: StackConfig) -> str:
    return f"http://127.0.0.1:{port(cfg)}"


def passwords_file(cfg: StackConfig) -> Path:
    return home(cfg) / "passwords.json"


def admin_password(cfg: StackConfig) -> str:
    try:
        return str(json.loads(passwords_file(cfg).read_text())[ADMIN])
    except (OSError, ValueError, KeyError) as e:
        raise StackError(f"airflow: no admin password in {passwords_file(cfg)} ({e})") from e


def metadata_url(cfg: StackConfig) -> str:
    """The app's role and server (DATABASE_URL), database `airflow`, through psycopg2."""
    u = urlsplit(cfg.database_url)
    return urlunsplit(("postgresql+psycopg2", u.netloc, "/" + DATABASE, "", ""))


def _secrets(cfg: StackConfig) -> dict[str, str]:
    path = home(cfg) / "secrets.json"
    if not path.exists():
        home(cfg).mkdir(parents=True, exist_ok=True)
        keys = {"jwt_secret": secrets.token_urlsafe(32), "secret_key": secrets.token_urlsafe(32)}
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return dict(json.loads(path.read_text()))


def prepare(cfg: StackConfig) -> None:
    """AIRFLOW_HOME, the shared secrets and the admin's password, each made once."""
    home(cfg).mkdir(parents=True, exist_ok=True)
    _secrets(cfg)
    if not passwords_file(cfg).exists():
        passwords_file(cfg).write_text(json.dumps({ADMIN: secrets.token_urlsafe(16)}))
        passwords_file(cfg).chmod(0o600)


def airflow_env(cfg: StackConfig) -> dict[str, str]:
    """Every Airflow setting of the stack's programs (and of `bootstrap`'s `db migrate`)."""
    keys = _secrets(cfg)
    return {
        "AIRFLOW_HOME": str(home(cfg)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url(cfg)}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(cfg)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(cfg),
        "AIRFLOW__API__BASE_URL": base_url(cfg),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port(cfg)),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(PARSE_INTERVAL_SECONDS),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(PARSE_INTERVAL_SECONDS),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home(cfg) / "logs"),
        # The DAG's tasks run the project's code with the project's interpreter.
        "RECSYS_PYTHON": str(cfg.python),
    }


def command(*args: str) -> list[str]:
    exe = VENV / "bin" / "airflow"
    if not exe.exists():
        raise StackError(f"airflow: {exe} is missing; run `make install` (batch/airflow_env.sh)")
    return [str(exe), *args]


def bootstrap(cfg: StackConfig) -> None:
    """The metadata database `airflow` (owned by the app's role), migrated to Airflow's schema."""
    import psycopg
    from psycopg import sql

    role = urlsplit(cfg.database_url).username or "recsys"
    with psycopg.connect(checks.admin_dsn(cfg), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(role))
            )
    prepare(cfg)
    log = cfg.logs / "airflow-migrate.log"
    with open(log, "a") as out:
        res = subprocess.run(
            command("db", "migrate"),
            env={**cfg.child_env(), **airflow_env(cfg)},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cfg.root,
            timeout=900,
        )
    if res.returncode != 0:
        raise StackError(f"airflow: `airflow db migrate` failed (exit {res.returncode}); read {log}")


def health(cfg: StackConfig) -> dict[str, dict[str, str | None]]:
    """GET /api/v2/monitor/health (public): metadatabase, scheduler, dag_processor, triggerer."""
    status, body = checks.http_get(f"{base_url(cfg)}/api/v2/monitor/health")
    if status != 200:
        raise checks.NotReady(f"GET /api/v2/monitor/health -> {status} {body[:120]!r}")
    return dict(json.loads(body))


def api_ready(cfg: StackConfig) -> str:
    state = health(cfg).get("metadatabase", {}).get("status")
    if state != "healthy":
        raise checks.NotReady(f"API server up, metadatabase {state}")
    return f"API and UI on {base_url(cfg)} (user {ADMIN}, password in {passwords_file(cfg)})"


def component_ready(component: str) -> Callable[[StackConfig], str]:
    """A probe: the API server reports `component`'s heartbeat as healthy."""

    def ready(cfg: StackConfig) -> str:
        try:
            state = health(cfg).get(component, {})
        except checks.NotReady as e:
            raise checks.NotReady(f"{component}: {e}") from e
        if state.get("status") != "healthy":
            raise checks.NotReady(f"{component}: {state}")
        beat = next((v for k, v in state.items() if k.startswith("latest_")), None)
        return f"{component} healthy (last heartbeat {beat})"

    return ready


class Api:
    """The stack's Airflow REST API (v2) as the admin user: for tests and benchmarks that run
    the DAG the way an operator would (trigger a run, wait for it, read its tasks' results)."""

    def __init__(self, cfg: StackConfig) -> None:
        self.base = base_url(cfg)
        body = {"username": ADMIN, "password": admin_password(cfg)}
        self.token = self._call("POST", "/auth/token", body, auth=False)["access_token"]

    def _call(self, method: str, path: str, body: object = None, auth: bool = True) -> Any:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if auth else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise StackError(f"airflow: {method} {path} -> {e.code}: {e.read()[:500]!r}") from None

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def post(self, path: str, body: object) -> Any:
        return self._call("POST", path, body)

    def patch(self, path: str, body: object) -> Any:
        return self._call("PATCH", path, body)

    def trigger(self, dag_id: str, run_id: str, logical_date: datetime) -> dict[str, Any]:
        """Queue a run of `dag_id` for `logical_date` (the tasks' idea of "tonight")."""
        body = {"dag_run_id": run_id, "logical_date": logical_date.isoformat()}
        return dict(self.post(f"/api/v2/dags/{dag_id}/dagRuns", body))

    def wait(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state (success or failed), or its state when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        state = "queued"
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                break
            time.sleep(2)
        return str(state)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tasks = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tasks}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path)["value"]
