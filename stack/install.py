"""`python -m stack install`: make a fresh machine able to run the stack. Idempotent.

Stdlib only (it runs before .venv exists). Each step is a function in STEPS; a step that
has nothing to do returns quickly, so `make up` / `make test` can always run it first.
Hooks for later parts are here as no-op-when-absent steps (web/, Airflow venv).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .config import ROOT, StackConfig, StackError

PY = "python3.11"
EXTRAS = ".[services,spark,stack,dev]"
# Every Python package pinned (scripts/lock.sh writes them): a fresh machine gets what CI passed with.
SERVICES_CONSTRAINTS = ROOT / "constraints" / "services.txt"
AIRFLOW_CONSTRAINTS = ROOT / "constraints" / "airflow.txt"  # batch/airflow_env.sh installs with it
# Go tools into .stack/bin, by the name they get there: `go install` of the package at a pinned
# version. compose-spec is compose-go's validator (the library `docker compose` loads files
# with): tests check compose.yaml with it, as no Docker engine runs here.
GO_TOOLS = {
    "grpcurl": "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4",
    "ghz": "github.com/bojand/ghz/cmd/ghz@v0.93.0",
    "compose-spec": "github.com/compose-spec/compose-go/v2/cmd@v2.16.2",
    # The OpenAPI document of the REST surface (the google.api.http rules): scripts/gen_proto.py.
    "protoc-gen-openapi": "github.com/google/gnostic/cmd/protoc-gen-openapi@v0.7.1",
}
# Jaeger all-in-one, the trace store and query API of the local stack (the same release as
# compose.yaml's image). Built from its Go module: no release binaries reach this machine.
JAEGER_MODULE = "github.com/jaegertracing/jaeger"
JAEGER_VERSION = "v1.62.0"


def log(msg: str) -> None:
    print(f"[install] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    log("$ " + " ".join(cmd))
    t0 = time.monotonic()
    res = subprocess.run(cmd, **kw)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise StackError(f"install: `{' '.join(cmd)}` failed with exit code {res.returncode}")
    log(f"  done in {time.monotonic() - t0:.0f}s")


def _stamp_ok(stamp: Path, key: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == key


def _sha(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()


def _sudo() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise StackError("install: need root (or passwordless sudo) to apt-get install")


# --- steps ---------------------------------------------------------------------------------


def apt_packages(cfg: StackConfig) -> None:
    """redis-server (and a JDK / Maven when missing) from Debian apt; `apt-get update` only if needed."""
    wanted = {"redis-server": "redis-server", "java": "openjdk-17-jre-headless", "mvn": "maven"}
    missing = [pkg for exe, pkg in wanted.items() if not shutil.which(exe)]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [*_sudo(), "apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env).returncode != 0:
        run([*_sudo(), "apt-get", "update"], env=env)
        run(cmd, env=env)
    # the Debian package starts a system redis on 6379; the stack runs its own.
    if "redis-server" in missing and shutil.which("systemctl"):
        subprocess.run([*_sudo(), "systemctl", "disable", "--now", "redis-server"], capture_output=True)
    if "redis-server" in missing and Path("/etc/init.d/redis-server").exists():
        subprocess.run([*_sudo(), "/etc/init.d/redis-server", "stop"], capture_output=True)


def python_venv(cfg: StackConfig) -> None:
    """.venv with python3.11 and the project installed editable, every package at the version
    constraints/services.txt pins; re-run when pyproject.toml or the constraints change."""
    venv = cfg.venv
    stamp = venv / ".recsys-install-stamp"
    key = _sha(ROOT / "pyproject.toml", SERVICES_CONSTRAINTS)
    if (venv / "bin" / "python").exists() and _stamp_ok(stamp, key):
        return
    if not (venv / "bin" / "python").exists():
        py = shutil.which(PY) or (sys.executable if sys.version_info[:2] == (3, 11) else None)
        if py is None:
            raise StackError(f"install: {PY} not found on PATH (the project needs Python 3.11)")
        run([py, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    run([*pip, "install", "-q", "--upgrade", "pip"])
    run([*pip, "install", "-q", "-c", str(SERVICES_CONSTRAINTS), "-e", EXTRAS], cwd=ROOT)
    stamp.write_text(key + "\n")


def kafka_jars(cfg: StackConfig) -> None:
    """Apache Kafka (KRaft) jars from Maven Central into .stack/kafka/libs, keyed on the pom."""
    pom = ROOT / "stack" / "kafka" / "pom.xml"
    libs = cfg.dir / "kafka" / "libs"
    stamp = libs / ".stamp"
    key = _sha(pom)
    if _stamp_ok(stamp, key):
        return
    if not shutil.which("mvn"):
        raise StackError("install: mvn not found (apt-get install maven)")
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    run(["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={libs}"])
    stamp.write_text(key + "\n")


def go_tools(cfg: StackConfig) -> None:
    """GO_TOOLS into .stack/bin (tests and bench use them); re-installed when a pin changes."""
    stale = {
        n: p
        for n, p in GO_TOOLS.items()
        if not ((cfg.bin / n).exists() and _stamp_ok(cfg.bin / f".{n}-version", p))
    }
    if not stale:
        return
    go = _go()
    cfg.bin.mkdir(parents=True, exist_ok=True)
    gobin = cfg.bin / ".gobin"
    env = {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0"}
    for name, package in stale.items():
        exe, stamp = cfg.bin / name, cfg.bin / f".{name}-version"
        shutil.rmtree(gobin, ignore_errors=True)
        run([go, "install", package], env=env)
        # `go install` names the binary after the package's last path element (compose-go's is `cmd`)
        built = gobin / package.split("@")[0].rsplit("/", 1)[-1]
        built.replace(exe)
        shutil.rmtree(gobin, ignore_errors=True)
        stamp.write_text(package + "\n")


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError(
            "install: `go` not found; needed for grpcurl, ghz, compose-spec, Jaeger (apt install golang-go)"
        )
    return go


def jaeger(cfg: StackConfig) -> None:
    """Jaeger all-in-one into .stack/bin, built from the module proxy's source of JAEGER_VERSION.

    `go install module@version` refuses modules whose go.mod has replace directives (Jaeger's
    has one), so the downloaded source is copied and built as the main module. Without the
    jaeger-ui submodule the binary serves a placeholder page at /; the HTTP API
    (/api/traces, /api/services) is complete. compose.yaml's image has the UI too.
    """
    exe = cfg.bin / "jaeger-all-in-one"
    stamp = cfg.bin / ".jaeger-version"
    if exe.exists() and _stamp_ok(stamp, JAEGER_VERSION):
        return
    go = _go()
    # The copy sits inside this repository's checkout: no VCS stamping of a foreign tree.
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    log(f"$ go mod download {JAEGER_MODULE}@{JAEGER_VERSION}")
    res = subprocess.run(
        [go, "mod", "download", "-json", f"{JAEGER_MODULE}@{JAEGER_VERSION}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cfg.dir,
    )
    if res.returncode != 0:
        raise StackError(f"install: go mod download {JAEGER_MODULE}@{JAEGER_VERSION} failed:\n{res.stderr}")

    src = cfg.dir / "build" / "jaeger"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(json.loads(res.stdout)["Dir"], src)
    for path in [src, *src.rglob("*")]:  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    cfg.bin.mkdir(parents=True, exist_ok=True)
    run([go, "build", "-trimpath", "-o", str(exe), "./cmd/all-in-one"], cwd=src, env=env)
    shutil.rmtree(src, ignore_errors=True)
    stamp.write_text(JAEGER_VERSION + "\n")


def web_deps(cfg: StackConfig) -> None:
    """web/: `npm install` (keyed on package.json + package-lock.json), and Debian's chromium for
    the end-to-end tests. Fatal: the stack serves web/ (program `web`) and `make test` runs its
    tests. `npm ci` is not used: it fails on rollup's platform-specific optional packages that
    the lock (made elsewhere) does not list for this platform; `npm install` keeps the lock."""
    web = ROOT / "web"
    if not (web / "package.json").exists():
        return
    _apt(["chromium"], lambda: Path("/usr/bin/chromium").exists() or bool(shutil.which("chromium")))
    if not shutil.which("npm"):
        _apt(["nodejs", "npm"], lambda: bool(shutil.which("npm")))
    lock = web / "package-lock.json"
    stamp = web / "node_modules" / ".recsys-stamp"
    key = _sha(web / "package.json", lock)
    if _stamp_ok(stamp, key):
        return
    run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=web)
    stamp.write_text(key + "\n")


def _apt(packages: list[str], present: Callable[[], bool]) -> None:
    """apt-get install packages unless present(); `apt-get update` only when the install fails."""
    if present():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [*_sudo(), "apt-get", "install", "-y", "--no-install-recommends", *packages]
    log("$ " + " ".join(cmd))
    if subprocess.run(cmd, env=env).returncode != 0:
        run([*_sudo(), "apt-get", "update"], env=env)
        run(cmd, env=env)
    if not present():
        raise StackError(f"install: {' '.join(packages)} installed but still not found")


# Debian packages of the tools bench/ drives (not needed by the tests, so not in STEPS).
BENCH_TOOLS = {"wrk": "wrk", "redis-benchmark": "redis-tools", "pgbench": "postgresql-client"}


def bench_tools(cfg: StackConfig) -> None:
    """wrk, redis-benchmark and pgbench from Debian apt, for `make bench`."""
    missing = [pkg for exe, pkg in BENCH_TOOLS.items() if not shutil.which(exe)]
    if missing:
        _apt(missing, lambda: all(shutil.which(exe) for exe in BENCH_TOOLS))


def airflow_venv(cfg: StackConfig) -> None:
    """Airflow (apache-airflow 3.3.2) in its own venv at .venvs/airflow: batch/airflow_env.sh
    (idempotent itself; stamped here on the script's hash so the usual run costs nothing).
    The stack's Airflow keeps its metadata in PostgreSQL (bootstrap step `airflow-db`,
    stack/airflow.py); the DAG tests' `dag.test()` in SQLite beside it (AIRFLOW_HOME=.stack/airflow).
    The DAG runs its tasks with the project's .venv."""
    script = ROOT / "batch" / "airflow_env.sh"
    if not script.exists():
        return
    venv = ROOT / ".venvs" / "airflow"
    stamp = venv / ".recsys-install-stamp"
    key = _sha(script, AIRFLOW_CONSTRAINTS)
    if (venv / "bin" / "airflow").exists() and _stamp_ok(stamp, key):
        return
    run(["bash", str(script)], env={**os.environ, "AIRFLOW_VENV": str(venv)})
    stamp.write_text(key + "\n")


STEPS: list[Callable[[StackConfig], None]] = [
    apt_packages,
    python_venv,
    kafka_jars,
    go_tools,
    jaeger,
    web_deps,
    airflow_venv,
]


def install(cfg: StackConfig | None = None) -> None:
    cfg = cfg or StackConfig.load()
    skip = cfg.disabled
    for step in STEPS:
        if step.__name__ in skip:
            continue
        step(cfg)
