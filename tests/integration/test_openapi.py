"""The OpenAPI document of the REST API: served by the gateway, true to the protos, and true to
what the gateway answers (schemathesis fuzzing, a few hundred generated requests; bench/fuzz.py
runs thousands)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import grpc
import pytest
import yaml
from google.api import annotations_pb2

from bench.fuzz import fuzz, load_schema
from recsys.api import API_FILES
from recsys.v1 import recommender_service_pb2, recommender_service_pb2_grpc
from stack.config import ROOT
from tests.tokens import auth_headers, service_token

pytestmark = pytest.mark.stack


def http_rules() -> dict[tuple[str, str], str]:
    """(method, path in JSON names) -> "Service_Method", for every RPC with a google.api.http rule."""
    rules = {}
    for file in API_FILES:
        for service in file.services_by_name.values():
            for method in service.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None:
                    continue
                names = {f.name: f.json_name for f in method.input_type.fields}
                path = re.sub(r"\{(\w+)\}", lambda m, n=names: "{" + n[m[1]] + "}", getattr(rule, verb))
                rules[(verb, path)] = f"{service.name}_{method.name}"
    return rules


@pytest.fixture(scope="module")
def served(stack) -> dict:
    with urllib.request.urlopen(f"{stack.envoy_url}/openapi.yaml", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"] == "application/yaml"
        body = resp.read()
    assert body == (ROOT / "envoy" / "openapi.yaml").read_bytes(), "the gateway serves another document"
    return yaml.safe_load(body)


def test_the_document_has_every_http_rule_of_the_protos_and_nothing_else(served):
    operations = {
        (verb, path): op["operationId"] for path, item in served["paths"].items() for verb, op in item.items()
    }
    assert operations == http_rules()
    assert len(operations) >= 8
    # internal methods have no HTTP rule and are not in the document
    assert "GetPreferenceVector" not in yaml.safe_dump(served["paths"])


def test_the_document_describes_json_as_the_transcoder_prints_it(served):
    schemas = served["components"]["schemas"]
    for name, schema in schemas.items():
        for prop in schema.get("properties", {}):
            json_name = prop == "@type" or re.fullmatch(r"[a-z][A-Za-z0-9]*", prop)
            assert json_name, f"{name}.{prop} is no JSON name"
    movie = schemas["Movie"]["properties"]
    assert movie["movieId"]["type"] == "string", "64-bit integers are strings in proto3 JSON"
    assert movie["year"]["type"] == "integer"
    tier = schemas["GetRecommendationsResponse"]["properties"]["tier"]
    assert tier["type"] == "string" and "TIER_CACHE" in tier["enum"], "enums by name"
    # every error is documented in the shape the gateway sends it: google.rpc.Status
    for item in served["paths"].values():
        for op in item.values():
            error = op["responses"]["default"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Status"}
    assert {"code", "message"} <= set(schemas["Status"]["properties"])


def test_the_document_declares_bearer_auth(served):
    scheme = served["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert served["security"] == [{"bearerAuth": []}, {}], "a token, or none for public methods"


@pytest.mark.timeout(240)
def test_fuzzing_the_gateway_finds_no_server_error_and_no_undocumented_answer(stack):
    """Valid and invalid requests for every operation (schemathesis positive and negative modes):
    no 5xx, and every answer's status, content type and body as the document says. The rate
    limit stays on: a 429 is a documented answer too (google.rpc.Status)."""
    schema = load_schema(stack.envoy_url)
    report = fuzz(schema, examples=25, headers=auth_headers(service_token("fuzz-test")))
    print(report.summary())
    assert report.requests >= 300
    assert report.server_errors == 0, report.summary()
    assert not report.failures, report.summary()


def test_anonymous_fuzzing_gets_documented_refusals(stack):
    """Without a token, user-scoped methods refuse (401) in the documented error shape."""
    schema = load_schema(stack.envoy_url)
    report = fuzz(schema, examples=5)
    assert report.statuses[401] > 0
    assert report.server_errors == 0, report.summary()
    assert not report.failures, report.summary()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/movies?query=a%00b", "query"),
        ("/v1/movies?genre=a%00b", "genre"),
        ("/v1/users/15/recommendations?genres=Drama&genres=a%00b", "genres[1]"),
    ],
)
def test_text_with_nul_is_a_400_naming_the_field(stack, path, field):
    """Found by fuzzing: PostgreSQL text cannot hold U+0000, and these were 500s."""
    request = urllib.request.Request(f"{stack.envoy_url}{path}", headers=auth_headers())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400
    assert json.loads(err.value.read())["message"].startswith(f"{field}: must not contain NUL")


def test_envoys_own_errors_are_status_json_for_rest_and_stay_grpc_for_grpc(stack):
    """The transcoder's 400 for an unparsable request and jwt_authn's 401 are google.rpc.Status
    JSON on REST (they were text/plain); a native gRPC call still gets grpc-status/grpc-message."""
    for path, headers, status, code in [
        ("/v1/movies/abc", {}, 400, 3),
        ("/v1/movies/1", {"authorization": "Bearer not-a-jwt"}, 401, 16),
    ]:
        request = urllib.request.Request(f"{stack.envoy_url}{path}", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == status
        assert err.value.headers["content-type"] == "application/json"
        body = json.loads(err.value.read())
        assert body["code"] == code and body["message"], body
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        stub = recommender_service_pb2_grpc.RecommenderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as rpc_err:
            stub.GetMovie(
                recommender_service_pb2.GetMovieRequest(movie_id=1),
                metadata=(("authorization", "Bearer not-a-jwt"),),
                timeout=10,
            )
    assert rpc_err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not rpc_err.value.details().startswith("{"), rpc_err.value.details()
