"""Property-based fuzzing of the REST API through the gateway, from its OpenAPI document.

    .venv/bin/python bench/fuzz.py                    # the local stack must be up (make up)
    .venv/bin/python bench/fuzz.py --examples 200     # examples per operation and mode

schemathesis reads the document Envoy serves at /openapi.yaml (envoy/openapi.yaml, generated
from the protos), and Hypothesis generates requests for every operation in it: valid ones
(positive mode) and ones that break the schema (negative mode). Every response is checked:
  * not_a_server_error            - no 5xx, whatever the input
  * status_code_conformance       - the status is one the document lists (200, or `default`)
  * content_type_conformance      - the content type is one the document lists (JSON)
  * response_schema_conformance   - the body matches the document: the operation's response
                                    message for a 200, google.rpc.Status ({"code", "message"})
                                    for an error (the document's `default` answer)
64-bit ids are strings in proto3 JSON, and the document says no more (`type: string`), so
most generated ids are not numbers and stop at the transcoder's 400. To reach the services'
handlers too, half of the positive cases get their user and movie ids (path, query, body)
replaced by small integers (0 to 3000: existing ids, unknown ones, and 0) - still valid
requests by the document.

Unlike a test, a run does not stop at the first failure: it counts every request and every
distinct failure, and prints them with the per-status counts and the request rate.

Calls carry a service token of the stack's development issuer (`python -m stack token
--service`: it may act for any user, so user-scoped calls reach the services' handlers rather
than stopping at 403). Envoy's per-client rate limit is switched to not-enforced (admin
runtime) for the run only, as bench/serving.py does: the fuzzer sends far more than one
client's budget, and 429 from the limiter is not what this measures (tests/integration cover
the limit). The figures of the last
run are in bench/fuzz.md.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stack.auth import token  # noqa: E402
from stack.config import StackConfig  # noqa: E402

# user_id, movie_id, exclude_movie_ids... by their JSON names
ID_FIELD = re.compile(r"(user|movie)Ids?$")
IDS = st.integers(min_value=0, max_value=3000).map(str)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@dataclass
class Report:
    """What one fuzzing run saw."""

    requests: int = 0
    # answered by a service (x-envoy-upstream-service-time), not by Envoy itself (the
    # transcoder's 400 for an unparsable request, 404 for no route, ...)
    from_services: int = 0
    seconds: float = 0.0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    per_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    # distinct failures: (operation, check title) -> (count, one example: the curl and message)
    failures: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    # operation and mode pairs with no input to generate (a negative mode where nothing can be
    # made invalid on the wire, e.g. only optional string parameters)
    unsatisfiable: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def record_failure(self, operation: str, failure: Failure, example: str) -> None:
        key = (operation, failure.title)
        count, first = self.failures.get(key, (0, example))
        self.failures[key] = (count + 1, first)

    def summary(self) -> str:
        rate = self.requests / max(self.seconds, 1e-9)
        failed = sum(n for n, _ in self.failures.values())
        lines = [
            f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s); "
            f"5xx: {self.server_errors}; failed checks: {failed}",
            f"answered by a service: {self.from_services} (the rest by Envoy itself)",
            "statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items())),
            "per operation: " + ", ".join(f"{op} {n}" for op, n in sorted(self.per_operation.items())),
        ]
        if self.unsatisfiable:
            lines.append("nothing to generate for: " + ", ".join(self.unsatisfiable))
        for (op, title), (count, example) in sorted(self.failures.items()):
            lines.append(f"FAIL {op}: {title} (x{count})\n{example}")
        return "\n".join(lines)


def load_schema(envoy_url: str) -> schemathesis.BaseSchema:
    """The document as the gateway serves it (GET /openapi.yaml), requests sent to the gateway."""
    schema = schemathesis.openapi.from_url(f"{envoy_url}/openapi.yaml", timeout=10)
    schema.config.update(base_url=envoy_url)
    return schema


def fuzz(
    schema: schemathesis.BaseSchema,
    examples: int,
    headers: dict[str, str] | None = None,
    modes: list[GenerationMode] = MODES,
    derandomize: bool = False,
) -> Report:
    """Up to `examples` generated requests per operation and mode (fewer when Hypothesis runs
    out of distinct inputs); every response checked with CHECKS; failures counted, not raised."""
    report = Report()
    session = requests.Session()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            _fuzz_one(report, session, operation, mode, examples, headers, derandomize)
    report.seconds = time.monotonic() - started
    return report


def _fuzz_one(
    report: Report,
    session: requests.Session,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str] | None,
    derandomize: bool,
) -> None:
    """One operation in one generation mode, into `report`."""
    label = operation.label

    @settings(
        max_examples=examples,
        phases=[Phase.generate],
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def one(case: schemathesis.Case, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE and data.draw(st.booleans()):
            numeric_ids(case, data)
        response = case.call(session=session, headers=headers, timeout=30)
        report.requests += 1
        report.per_operation[label] += 1
        report.statuses[response.status_code] += 1
        if "x-envoy-upstream-service-time" in response.headers:
            report.from_services += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                report.record_failure(label, failure, f"{case.as_curl_command()}\n{failure.message}")

    try:
        one()
    except Unsatisfiable:
        report.unsatisfiable.append(f"{label} ({mode.value})")


def numeric_ids(case: schemathesis.Case, data: st.DataObject) -> None:
    """Replace the user and movie ids of a case (path, query, JSON body) by small integers."""
    for container in (case.path_parameters, case.query, case.body):
        if not isinstance(container, dict):
            continue
        for key, value in container.items():
            if ID_FIELD.search(key):
                container[key] = (
                    data.draw(st.lists(IDS, max_size=3)) if isinstance(value, list) else data.draw(IDS)
                )


@contextmanager
def rate_limit_off(admin_url: str) -> Iterator[None]:
    """Envoy's per-client rate limit not enforced while the block runs (admin runtime layer)."""

    def runtime(value: str) -> None:
        url = f"{admin_url}/runtime_modify?recsys.ratelimit.enforced={value}"
        urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5).close()

    runtime("0")
    try:
        yield
    finally:
        runtime("100")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=700, help="per operation and mode (default 700)")
    parser.add_argument("--derandomize", action="store_true", help="the same inputs on every run")
    parser.add_argument("--anonymous", action="store_true", help="send no token")
    opts = parser.parse_args()
    cfg = StackConfig.load()
    schema = load_schema(cfg.envoy_url)
    headers = None if opts.anonymous else {"authorization": f"Bearer {token(cfg, service='fuzz')}"}
    with rate_limit_off(cfg.envoy_admin_url):
        report = fuzz(schema, opts.examples, headers=headers, derandomize=opts.derandomize)
    print(report.summary())
    return 1 if report.server_errors or report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
