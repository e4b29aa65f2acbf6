"""supervisord: render its config from the program list, start/stop it, talk XML-RPC to it."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from .config import StackConfig, StackError
from .programs import Program


def conf_path(cfg: StackConfig) -> Path:
    return cfg.dir / "supervisord.conf"


def sock_path(cfg: StackConfig) -> Path:
    return cfg.dir / "supervisor.sock"


def pid_path(cfg: StackConfig) -> Path:
    return cfg.dir / "supervisord.pid"


def _q(value: str) -> str:
    """Quote for supervisor's environment= (and escape its %-interpolation)."""
    return '"' + value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(cfg: StackConfig, programs: list[Program]) -> Path:
    env = cfg.child_env()
    lines = [
        "; rendered by stack/supervisor.py from stack/programs.py; do not edit",
        "[unix_http_server]",
        f"file={sock_path(cfg)}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={cfg.logs / 'supervisord.log'}",
        "logfile_maxbytes=10MB",
        "logfile_backups=2",
        f"pidfile={pid_path(cfg)}",
        f"childlogdir={cfg.logs}",
        f"directory={cfg.root}",
        "nodaemon=false",
        "minfds=4096",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{sock_path(cfg)}",
        "",
    ]
    for i, p in enumerate(programs):
        cmd = " ".join(shlex.quote(a) if a else "''" for a in p.command(cfg))
        penv = {**env, **p.env(cfg)}
        user = p.user(cfg)
        lines += [
            f"[program:{p.name}]",
            f"command={cmd.replace('%', '%%')}",
            f"directory={p.cwd(cfg) if p.cwd else cfg.root}",
            "environment=" + ",".join(f"{k}={_q(v)}" for k, v in sorted(penv.items())),
            *([f"user={user}"] if user else []),
            f"priority={100 + 10 * i}",
            "autostart=false",  # `python -m stack up` starts them stage by stage
            "autorestart=unexpected",
            f"startsecs={p.startsecs}",
            "startretries=3",
            f"stopsignal={p.stopsignal}",
            f"stopwaitsecs={p.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={p.log(cfg)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "redirect_stderr=true",
            "",
        ]
    path = conf_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o600)
    return path


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, sock: Path) -> None:
        super().__init__()
        self.sock = str(sock)

    def make_connection(self, host: Any) -> Any:
        import http.client
        import socket

        sock_file = self.sock

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(30)
                self.sock.connect(sock_file)

        return Conn("localhost")


def rpc(cfg: StackConfig) -> Any:
    return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(sock_path(cfg)))


def running(cfg: StackConfig) -> bool:
    if not sock_path(cfg).exists():
        return False
    try:
        statename: str = rpc(cfg).supervisor.getState()["statename"]
        return statename == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def start(cfg: StackConfig) -> None:
    """Start supervisord (it daemonizes), or make a running one pick up a changed config."""
    conf = conf_path(cfg)
    if running(cfg):
        # like `supervisorctl update`: add/remove programs whose config changed
        res = subprocess.run(
            [str(cfg.venv / "bin" / "supervisorctl"), "-c", str(conf), "update"],
            capture_output=True,
            text=True,
        )
        if res.returncode not in (0,):
            raise StackError(f"supervisorctl update failed: {res.stdout}{res.stderr}")
        return
    sock_path(cfg).unlink(missing_ok=True)
    res = subprocess.run(
        [str(cfg.venv / "bin" / "supervisord"), "-c", str(conf)], capture_output=True, text=True, cwd=cfg.root
    )
    if res.returncode != 0:
        raise StackError(
            f"supervisord failed to start: {(res.stdout + res.stderr).strip()}; "
            f"read {cfg.logs / 'supervisord.log'}"
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if running(cfg):
            return
        time.sleep(0.2)
    raise StackError(f"supervisord did not come up; read {cfg.logs / 'supervisord.log'}")


def info(cfg: StackConfig, name: str) -> dict[str, Any] | None:
    try:
        return rpc(cfg).supervisor.getProcessInfo(name)  # type: ignore[no-any-return]
    except xmlrpc.client.Fault:
        return None


def start_program(cfg: StackConfig, name: str) -> None:
    state = info(cfg, name)
    if state and state["statename"] in ("RUNNING", "STARTING"):
        return
    try:
        rpc(cfg).supervisor.startProcess(name, False)
    except xmlrpc.client.Fault as e:
        if "ALREADY_STARTED" not in e.faultString:
            raise StackError(f"{name}: supervisord could not start it ({e.faultString})") from e


def shutdown(cfg: StackConfig, timeout: float = 120) -> None:
    if not running(cfg):
        return
    pid = None
    try:
        pid = int(pid_path(cfg).read_text().strip())
    except (OSError, ValueError):
        pid = None
    try:
        rpc(cfg).supervisor.shutdown()
    except (OSError, xmlrpc.client.Error):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        elif not sock_path(cfg).exists():
            return
        time.sleep(0.2)
    raise StackError(
        f"supervisord (pid {pid}) did not exit within {timeout:.0f}s; read {cfg.logs / 'supervisord.log'}"
    )
