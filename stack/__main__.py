"""python -m stack install|up|down|status|render|token — see stack/__init__.py."""

from __future__ import annotations

import argparse
import sys

from .config import StackConfig, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="install what is missing (apt, .venv, Kafka jars, tools); idempotent")
    sub.add_parser("bench-tools", help="install the benchmarks' load tools (wrk, redis-benchmark, pgbench)")
    sub.add_parser("up", help="start everything and wait until healthy; idempotent")
    sub.add_parser("down", help="stop everything and wait until it has exited")
    sub.add_parser("status", help="health of each component (exit 1 if any is unhealthy)")
    sub.add_parser("render", help="render the configs into .stack/ without starting anything")
    tok = sub.add_parser("token", help="print a development token (AUTH_DEV_ISSUER)")
    who = tok.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="a user token acting for this user id")
    who.add_argument("--service", nargs="?", const="cli", help="a service token (acts for any user)")
    who.add_argument("--admin", nargs="?", const="cli", help="an admin token")
    who.add_argument("--analyst", nargs="?", const="cli", help="an analyst token (the dashboard)")
    tok.add_argument("--ttl", type=int, default=None, help="seconds (default AUTH_TOKEN_TTL_SECONDS)")
    opts = parser.parse_args(argv)
    cfg = StackConfig.load()
    try:
        if opts.cmd == "install":
            from .install import install

            install(cfg)
        elif opts.cmd == "bench-tools":
            from .install import bench_tools

            bench_tools(cfg)
        elif opts.cmd == "up":
            from .core import up

            up(cfg)
        elif opts.cmd == "down":
            from .core import down

            down(cfg)
        elif opts.cmd == "status":
            from .core import status

            checks = status(cfg)
            width = max(len(c.name) for c in checks)
            for c in checks:
                print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<{width}}  {c.detail}")
            return 0 if all(c.ok for c in checks) else 1
        elif opts.cmd == "token":
            from .auth import token

            print(
                token(
                    cfg,
                    user=opts.user,
                    service=opts.service,
                    admin=opts.admin,
                    analyst=opts.analyst,
                    ttl_seconds=opts.ttl,
                )
            )
        elif opts.cmd == "render":
            from . import supervisor
            from .envoy import render
            from .programs import enabled

            print(render(cfg))
            print(supervisor.render(cfg, enabled(cfg)))
    except StackError as e:
        print(f"[stack] ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
