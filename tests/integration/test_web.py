"""The web client's own suites, run from pytest so `make test` has one closing line:

- `npm test`: Vitest unit tests of the components and the API client (no stack);
- `npm run e2e`: real headless Chromium (Debian's /usr/bin/chromium) against the real stack:
  the app served by the stack's `web` program on WEB_PORT, the API through Envoy on ENVOY_PORT.
  Each test signs in through the app's form (POST /v1/sessions, the stack's development token
  issuer, AUTH_DEV_ISSUER) and runs with the token, as a person would.
  Every test must run: a skipped e2e test fails here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.tokens import analyst_token

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"


def _npm(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `npm <args>` in web/; on timeout kill its whole process group and fail with its output.

    npm runs node (and node runs Chromium) as children: killing npm alone, as
    subprocess.run(timeout=) does, left a spinning node process behind for the rest of the run.
    """
    assert (WEB / "node_modules").exists(), "web/node_modules missing: run `make install`"
    proc = subprocess.Popen(
        ["npm", *args],
        cwd=WEB,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"npm {' '.join(args)} still running after {timeout:.0f} s:\n{(out + err)[-6000:]}")
    finally:
        # Whatever npm left running in its group (a test's stray child) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_web_unit_vitest() -> None:
    env = {**os.environ, "CI": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    proc = _npm(["test", "--", "--reporter=dot"], env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert re.search(r"Tests\s+\d+ passed", out), out[-3000:]


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_web_e2e_chromium(stack) -> None:  # type: ignore[no-untyped-def]
    web_port = stack.cfg.port("WEB_PORT")
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        # the same base the stack's build uses, and the origin the gateway's CORS allows
        "VITE_API_BASE": f"http://localhost:{stack.cfg.port('ENVOY_PORT')}",
        "WEB_PORT": str(web_port),
        "WEB_BASE": f"http://127.0.0.1:{web_port}",
        "SCREENSHOT_DIR": str(stack.logs / "web-screenshots"),
        # /dashboard reads the AnalyticsService, which needs the analyst (or admin) scope.
        "E2E_ANALYST_TOKEN": analyst_token(),
    }
    # The stack serves the built app; the e2e tests would start a dev server of their own only
    # when nothing answers, which would hide a broken `web` program.
    from stack.programs import web_ready

    web_ready(stack.cfg)
    proc = _npm(["run", "e2e"], env, timeout=840)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    summary = re.findall(r"^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$", out, re.M)
    counts = {k: int(v) for k, v in summary}
    assert counts.get("tests", 0) > 0 and counts.get("pass") == counts.get("tests"), (counts, out[-4000:])
    assert counts.get("skipped", 0) == 0 and counts.get("todo", 0) == 0, (counts, out[-4000:])
