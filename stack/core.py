"""up / down / status: the stack's lifecycle, readiness and bootstrap, in order.

    up:  prepare programs (initdb, Kafka format, render configs) -> supervisord
         -> stage infra (postgres, redis, kafka) healthy
         -> bootstrap: role/database/vector, migrations, Kafka topic, Airflow's database
         -> stage app (services, streaming, Airflow) healthy -> stage edge (envoy) healthy
         -> demo data if `movies` is empty -> first model (hook)
    down: supervisord shutdown, wait for it and every port to close.

Every failure raises StackError naming the component and the log file to read.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from . import airflow, checks, spark, supervisor
from .config import StackConfig, StackError, check_ports, replica_ports
from .programs import REPLICATED, STAGES, Program, all_programs, enabled


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def _tail(path: object, n: int = 25) -> str:
    try:
        lines = open(str(path), errors="replace").read().splitlines()[-n:]
    except OSError:
        return "(no log yet)"
    return "\n".join("    " + line for line in lines)


# --- bootstrap steps -----------------------------------------------------------------------


def _run_logged(cfg: StackConfig, name: str, cmd: list[str], timeout: float = 1800) -> None:
    log = cfg.logs / f"{name}.log"
    say(f"{name}: $ {' '.join(cmd)}  (log: {log})")
    t0 = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n")
        out.flush()
        try:
            res = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=cfg.child_env(), cwd=cfg.root, timeout=timeout
            )
        except FileNotFoundError as e:
            raise StackError(f"{name}: {cmd[0]} not found ({e}); is the project installed in .venv?") from e
        except subprocess.TimeoutExpired as e:
            raise StackError(f"{name}: timed out after {timeout:.0f}s; read {log}") from e
    if res.returncode != 0:
        raise StackError(
            f"{name}: `{' '.join(cmd)}` failed (exit {res.returncode}); read {log}:\n{_tail(log)}"
        )
    say(f"{name}: ok in {time.monotonic() - t0:.1f}s")


def postgres_bootstrap(cfg: StackConfig) -> None:
    """Role (superuser, local only) and database from DATABASE_URL (owner = that role), then
    CREATE EXTENSION vector."""
    import psycopg
    from psycopg import sql

    u = urlsplit(cfg.database_url)
    role = unquote(u.username or "recsys")
    password = unquote(u.password) if u.password else None
    db = (u.path or "/recsys").lstrip("/") or "recsys"
    with psycopg.connect(checks.admin_dsn(cfg), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            say(f"postgres: created role {role}")
        # Local stack only: the app role is a superuser, so tests can create scratch databases
        # and migrations can CREATE EXTENSION vector in them (pgvector is not a trusted
        # extension). Nothing is lost: trust auth on 127.0.0.1 already lets any local user in.
        conn.execute(sql.SQL("ALTER ROLE {} SUPERUSER CREATEDB").format(sql.Identifier(role)))
        if password is not None:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role))
            )
            say(f"postgres: created database {db}")
    with psycopg.connect(checks.admin_dsn(cfg, db), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
    say(f"postgres: {checks.postgres_app(cfg)}")


def migrate(cfg: StackConfig) -> None:
    """alembic upgrade head, through the core package's CLI."""
    _run_logged(cfg, "migrate", [str(cfg.venv / "bin" / "recsys-migrate")], timeout=600)


def kafka_topic(cfg: StackConfig) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    # NewTopic is defined in (and exported by) cimpl; confluent_kafka.admin only re-imports it.
    from confluent_kafka.cimpl import NewTopic

    topic = cfg.env.get("KAFKA_TOPIC", "movie-events")
    admin = AdminClient({"bootstrap.servers": cfg.env["KAFKA_BOOTSTRAP_SERVERS"]})
    if topic not in admin.list_topics(timeout=10).topics:
        futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        try:
            futures[topic].result(timeout=30)
            say(f"kafka: created topic {topic} (3 partitions)")
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StackError(
                    f"kafka: creating topic {topic} failed: {e}; read {cfg.logs / 'kafka.log'}"
                ) from e
    _wait("kafka topic", lambda: checks.kafka_topic(cfg), 30, cfg.logs / "kafka.log")


def _movies_count(cfg: StackConfig) -> int:
    import psycopg

    with psycopg.connect(cfg.database_url) as conn:
        if conn.execute("SELECT to_regclass('public.movies')").fetchone() == (None,):
            raise StackError(
                "demo-data: table movies does not exist (did `recsys-migrate` run?); "
                f"read {cfg.logs / 'migrate.log'}"
            )
        row = conn.execute("SELECT count(*) FROM movies").fetchone()
        return int(row[0]) if row else 0


def demo_data(cfg: StackConfig) -> None:
    """The synthetic catalogue, only when `movies` is empty (a fresh database)."""
    n = _movies_count(cfg)
    if n:
        say(f"demo-data: movies has {n} rows, nothing to load")
        return
    _run_logged(cfg, "demo-data", [str(cfg.venv / "bin" / "recsys-import"), "synthetic"])


def first_model(cfg: StackConfig) -> None:
    """Train and publish the first model on a fresh stack, so recommendations exist from the
    start (`batch.als.train --first-run`: a no-op when a model is live already; a smaller model
    than the nightly one). Log: .stack/logs/first-model.log."""
    _run_logged(cfg, "first-model", [str(cfg.python), "-m", "batch.als.train", "--first-run"], timeout=1800)


@dataclass(frozen=True)
class Step:
    name: str  # also the STACK_DISABLE name
    run: Callable[[StackConfig], None]


# Bootstrap steps that run once the programs of a stage are healthy, in order.
AFTER_STAGE: dict[str, list[Step]] = {
    "infra": [
        Step("postgres-bootstrap", postgres_bootstrap),
        Step("migrate", migrate),
        Step("kafka-topic", kafka_topic),
        Step("airflow-db", airflow.bootstrap),
    ],
    "app": [],
    "edge": [Step("demo-data", demo_data), Step("first-model", first_model)],
}

# --- readiness -----------------------------------------------------------------------------


def _wait(
    what: str,
    probe: Callable[[], str],
    timeout: float,
    log: object,
    alive: Callable[[], str | None] | None = None,
) -> str:
    deadline = time.monotonic() + timeout
    last = "not checked yet"
    while True:
        try:
            return probe()
        except checks.NotReady as e:
            last = str(e)
        except Exception as e:  # a client library error is "not ready yet" until the deadline
            last = f"{type(e).__name__}: {e}"
        dead = alive() if alive else None
        if dead:
            raise StackError(f"{what}: process {dead} ({last}); read {log}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not healthy after {timeout:.0f}s ({last}); read {log}:\n{_tail(log)}")
        time.sleep(0.5)


def wait_ready(cfg: StackConfig, p: Program) -> str:
    def alive() -> str | None:
        st = supervisor.info(cfg, p.name)
        if st is None:
            return "unknown to supervisord"
        # BACKOFF means it exited during startsecs and supervisord retries; FATAL: gave up.
        if st["statename"] in ("FATAL", "EXITED", "STOPPED"):
            return f"is {st['statename']} (exit status {st.get('exitstatus')})"
        return None

    return _wait(p.name, lambda: p.ready(cfg), p.ready_timeout, p.log(cfg), alive)


# --- commands ------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(cfg: StackConfig) -> Iterator[None]:
    """One up/down at a time per STACK_DIR (several people and test sessions share a tree)."""
    cfg.dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.dir / "stack.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another `python -m stack up/down` on this tree to finish ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _configured(cfg: StackConfig, programs: list[Program]) -> list[Program]:
    """What supervisord's config lists: the enabled programs, plus the disabled ones that a
    running supervisord already has. STACK_DISABLE means "this `up` does not start it": a
    partial `up` (a test session that leaves Airflow out) must not stop what a full one started,
    and `supervisorctl update` stops every program that leaves the config."""
    if not supervisor.running(cfg):
        return programs
    wanted = {p.name for p in programs}
    by_name = {p.name: p for p in all_programs(cfg)} | {p.name: p for p in programs}
    return [p for name, p in by_name.items() if name in wanted or supervisor.info(cfg, name) is not None]


def up(cfg: StackConfig | None = None) -> StackConfig:
    cfg = cfg or StackConfig.load()
    with _locked(cfg):
        return _up(cfg)


def _up(cfg: StackConfig) -> StackConfig:
    t0 = time.monotonic()
    check_ports(cfg)
    cfg.logs.mkdir(parents=True, exist_ok=True)
    programs = enabled(cfg)
    skip = cfg.disabled
    if skip:
        say(f"STACK_DISABLE: {', '.join(sorted(skip))}")
    for p in programs:
        if p.prepare:
            p.prepare(cfg)
    supervisor.render(cfg, _configured(cfg, programs))
    supervisor.start(cfg)
    for stage in STAGES:
        staged = [p for p in programs if p.stage == stage]
        for p in staged:
            supervisor.start_program(cfg, p.name)
        for p in staged:
            say(f"{p.name}: {wait_ready(cfg, p)}")
        for step in AFTER_STAGE.get(stage, []):
            if step.name in skip:
                continue
            step.run(cfg)
    say(f"up: everything healthy in {time.monotonic() - t0:.1f}s (logs: {cfg.logs})")
    return cfg


def ports(cfg: StackConfig) -> dict[str, int]:
    names = {
        "postgres": cfg.postgres_port,
        "redis": cfg.port("REDIS_PORT"),
        "kafka": cfg.port("KAFKA_PORT"),
        "kafka-controller": cfg.port("KAFKA_CONTROLLER_PORT"),
        "recommender": cfg.port("RECOMMENDER_PORT"),
        "event": cfg.port("EVENT_PORT"),
        "profile": cfg.port("PROFILE_PORT"),
        "envoy": cfg.port("ENVOY_PORT"),
        "envoy-admin": cfg.port("ENVOY_ADMIN_PORT"),
        "web": cfg.port("WEB_PORT"),
        "airflow-api": cfg.port("AIRFLOW_PORT"),
    }
    for name, _package, _service, port_key in REPLICATED:
        for i, port in enumerate(replica_ports(cfg, port_key, f"{name.upper()}_REPLICAS")[1:], start=2):
            names[f"{name}-{i}"] = port
    if spark.workers(cfg) > 0:
        names["spark-master"] = cfg.port("SPARK_MASTER_PORT")
        names["spark-master-ui"] = spark.webui_port(cfg)
    off = cfg.disabled
    return {k: v for k, v in names.items() if k not in off and k.split("-")[0] not in off}


def down(cfg: StackConfig | None = None, timeout: float = 120) -> None:
    cfg = cfg or StackConfig.load()
    with _locked(cfg):
        _down(cfg, timeout)


def _down(cfg: StackConfig, timeout: float) -> None:
    if supervisor.running(cfg):
        say("down: stopping every program (supervisord shutdown)")
    supervisor.shutdown(cfg, timeout=timeout)
    deadline = time.monotonic() + 30
    while True:
        still = {k: v for k, v in ports(cfg).items() if checks.port_open(v)}
        if not still:
            break
        if time.monotonic() > deadline:
            raise StackError(
                f"down: ports still open after supervisord exited: {still} "
                "(a process the stack did not start, or a leftover?)"
            )
        time.sleep(0.3)
    say("down: stopped")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def status(cfg: StackConfig | None = None) -> list[Check]:
    cfg = cfg or StackConfig.load()
    results: list[Check] = []
    sup = supervisor.running(cfg)
    results.append(Check("supervisord", sup, f"socket {supervisor.sock_path(cfg)}" if sup else "not running"))
    for p in enabled(cfg):
        st = supervisor.info(cfg, p.name) if sup else None
        state = st["statename"] if st else "-"
        try:
            detail = p.ready(cfg)
            results.append(Check(p.name, True, f"[{state}] {detail}"))
        except Exception as e:
            results.append(Check(p.name, False, f"[{state}] {e} (log: {p.log(cfg)})"))
    extras = {"postgres-app": checks.postgres_app, "kafka-topic": checks.kafka_topic}
    for name, probe in extras.items():
        if name.split("-")[0] in cfg.disabled:
            continue
        try:
            results.append(Check(name, True, probe(cfg)))
        except Exception as e:
            results.append(Check(name, False, str(e)))
    return results
