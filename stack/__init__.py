"""The local stack without Docker: install, render configs, start/stop under supervisord, readiness.

    python -m stack install   # idempotent: apt redis, .venv, Kafka jars, grpcurl/ghz (stdlib only)
    python -m stack up        # start everything, bootstrap, return when all is healthy
    python -m stack status    # one line per component
    python -m stack down      # stop everything (supervisord shutdown) and wait for exit

`install` runs with any python3.11 (it creates .venv); everything else runs with
.venv/bin/python. Library use (tests/conftest.py):

    from stack import core
    core.up()          # same code as `make up`; returns the StackConfig
    core.down()
    core.status()      # -> list[Check]

Programs live in stack/programs.py (one list, add new ones there); readiness and bootstrap
steps in stack/core.py; settings come from .env plus environment overrides (stack/config.py).
"""
