"""Every rule of the protos (read from the descriptors by tests/proto_rules.py) is enforced and
names its field; tests/integration/test_proto_rules.py sends the same requests over gRPC and REST."""

import pytest

from recsys.validation import violations
from tests.proto_rules import CASES, VALID, Case, annotated_fields, methods, request_of


def test_the_rules_are_read_from_the_protos() -> None:
    """The cases come from the descriptors: every annotated field of every request has some."""
    assert len(CASES) >= 40
    named = {(c.method.full_name, c.field.partition("[")[0]) for c in CASES}
    for method in methods():
        for field in annotated_fields(method.input_type):
            assert (method.full_name, field.name) in named, field.full_name


@pytest.mark.parametrize("method", list(methods()), ids=lambda m: m.name)
def test_every_rpc_has_a_valid_request_that_breaks_no_rule(method) -> None:
    assert method.full_name in VALID
    assert violations(request_of(method)) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_rule_refuses_its_case_naming_the_field(case: Case) -> None:
    assert case.field in [v.field for v in violations(case.request)]
