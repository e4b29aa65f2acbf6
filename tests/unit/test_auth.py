"""recsys.auth: the protos' access rules, token verification, principals and the dev issuer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from google.protobuf import descriptor_pool

from recsys.api import API_SERVICES
from recsys.auth import policy
from recsys.auth.credentials import ServiceCredentials
from recsys.auth.devissuer import DevIssuer, ensure_keys
from recsys.auth.policy import Authorizer, audience_of, bearer_token
from recsys.auth.principal import Principal
from recsys.auth.verifier import TokenVerifier
from recsys.errors import PermissionDenied, Unauthenticated
from recsys.v1 import access_pb2
from recsys.v1 import recommender_service_pb2 as rc

ISSUER, AUDIENCE = "recsys-test", "recsys"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_keys(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def issuer(keys: tuple[Path, Path]) -> DevIssuer:
    return DevIssuer(keys[0], ISSUER, AUDIENCE)


@pytest.fixture
def authorizer(keys: tuple[Path, Path]) -> Authorizer:
    return Authorizer(TokenVerifier(str(keys[1]), ISSUER, AUDIENCE))


def recs(user_id: int) -> rc.GetRecommendationsRequest:
    return rc.GetRecommendationsRequest(user_id=user_id)


def test_every_api_method_declares_an_audience() -> None:
    """No recsys.v1 method may be left without a rule (it would be refused at run time)."""
    pool = descriptor_pool.Default()
    methods = []
    for service in API_SERVICES:
        for method in pool.FindServiceByName(service.full_name).methods:
            methods.append(f"/{service.full_name}/{method.name}")
            assert audience_of(methods[-1]) is not None, methods[-1]
    services = {m.split("/")[1].rpartition(".")[2] for m in methods}
    assert {"CatalogueService", "AnalyticsService", "ExperimentService"} <= services


def test_user_scoped_methods_name_the_user_in_the_request() -> None:
    """AUDIENCE_USER is checked against the request's user_id: every such request has one."""
    pool = descriptor_pool.Default()
    for service in API_SERVICES:
        for method in pool.FindServiceByName(service.full_name).methods:
            if audience_of(f"/{service.full_name}/{method.name}") in (policy.USER, policy.USER_OR_ADMIN):
                assert "user_id" in method.input_type.fields_by_name, method.full_name


@pytest.mark.parametrize(
    ("method", "audience"),
    [
        ("/recsys.v1.RecommenderService/GetRecommendations", access_pb2.AUDIENCE_USER),
        ("/recsys.v1.RecommenderService/ListMovies", access_pb2.AUDIENCE_PUBLIC),
        ("/recsys.v1.ProfileService/GetPreferenceVector", access_pb2.AUDIENCE_INTERNAL),
        ("/recsys.v1.ProfileService/CreateUser", access_pb2.AUDIENCE_SERVICE),
        ("/recsys.v1.ProfileService/DeleteUser", access_pb2.AUDIENCE_USER_OR_ADMIN),
        ("/recsys.v1.EventService/PostEvent", access_pb2.AUDIENCE_USER),
        ("/recsys.v1.SessionService/CreateSession", access_pb2.AUDIENCE_PUBLIC),
        ("/recsys.v1.AnalyticsService/GetDashboard", access_pb2.AUDIENCE_ANALYST),
        ("/grpc.health.v1.Health/Check", access_pb2.AUDIENCE_PUBLIC),
        ("/recsys.v1.NoSuchService/Anything", None),
        ("/recsys.v1.ProfileService/NoSuchMethod", None),
    ],
)
def test_audience_of(method: str, audience: int | None) -> None:
    assert audience_of(method) == audience


def test_user_acts_for_itself_only(authorizer: Authorizer, issuer: DevIssuer) -> None:
    token = "Bearer " + issuer.user_token(7)[0]
    assert authorizer.check(policy.USER, token, recs(7)) == Principal("7", frozenset({"user"}), 7)
    with pytest.raises(PermissionDenied, match="may not act for user 8"):
        authorizer.check(policy.USER, token, recs(8))
    for audience in (policy.SERVICE, policy.INTERNAL, policy.ADMIN):
        with pytest.raises(PermissionDenied):
            authorizer.check(audience, token, recs(7))


def test_service_acts_for_anyone_but_is_no_admin(authorizer: Authorizer, issuer: DevIssuer) -> None:
    token = "Bearer " + issuer.service_token("tests")[0]
    for user in (1, 8, 10_000_000_123):
        assert authorizer.check(policy.USER, token, recs(user)).is_service
    authorizer.check(policy.SERVICE, token, None)
    authorizer.check(policy.INTERNAL, token, None)
    with pytest.raises(PermissionDenied, match="admin"):
        authorizer.check(policy.ADMIN, token, None)


def test_admin_scope(authorizer: Authorizer, issuer: DevIssuer) -> None:
    token = "Bearer " + issuer.admin_token("ops")[0]
    assert authorizer.check(policy.ADMIN, token, None).is_admin
    with pytest.raises(PermissionDenied):  # an admin is not a user and acts for nobody
        authorizer.check(policy.USER, token, recs(1))


def test_user_or_admin_is_the_user_a_service_or_an_admin(authorizer: Authorizer, issuer: DevIssuer) -> None:
    """DeleteUser's audience: a user for itself only, a service for anyone, an admin for anyone."""
    user = "Bearer " + issuer.user_token(7)[0]
    assert authorizer.check(policy.USER_OR_ADMIN, user, recs(7)) == Principal("7", frozenset({"user"}), 7)
    with pytest.raises(PermissionDenied, match="may not act for user 8"):
        authorizer.check(policy.USER_OR_ADMIN, user, recs(8))
    for token in (issuer.service_token("tests")[0], issuer.admin_token("ops")[0]):
        for who in (7, 8):
            authorizer.check(policy.USER_OR_ADMIN, "Bearer " + token, recs(who))
    with pytest.raises(Unauthenticated):
        authorizer.check(policy.USER_OR_ADMIN, None, recs(7))


def test_analyst_scope_reads_the_analytics_only(authorizer: Authorizer, issuer: DevIssuer) -> None:
    analyst = "Bearer " + issuer.analyst_token("ana")[0]
    assert authorizer.check(policy.ANALYST, analyst, None).is_analyst
    for audience in (policy.USER, policy.SERVICE, policy.INTERNAL, policy.ADMIN):
        with pytest.raises(PermissionDenied):
            authorizer.check(audience, analyst, recs(1))
    # An admin may read them too; a service or a user may not.
    authorizer.check(policy.ANALYST, "Bearer " + issuer.admin_token("ops")[0], None)
    for other in (issuer.service_token("tests")[0], issuer.user_token(7)[0]):
        with pytest.raises(PermissionDenied, match="analyst"):
            authorizer.check(policy.ANALYST, "Bearer " + other, None)


def test_missing_and_bad_tokens(authorizer: Authorizer, issuer: DevIssuer, keys: tuple[Path, Path]) -> None:
    assert authorizer.check(policy.PUBLIC, None, None) is None  # anonymous browsing
    with pytest.raises(Unauthenticated, match="needs a bearer token"):
        authorizer.check(policy.USER, None, recs(7))
    with pytest.raises(Unauthenticated):  # a token that is sent must be valid, even on PUBLIC
        authorizer.check(policy.PUBLIC, "Bearer nope", None)
    with pytest.raises(Unauthenticated, match="Bearer"):
        authorizer.check(policy.PUBLIC, "Basic dXNlcjpwYXNz", None)
    with pytest.raises(Unauthenticated, match="expired"):
        authorizer.check(policy.USER, "Bearer " + issuer.user_token(7, ttl_seconds=-120)[0], recs(7))
    good = issuer.user_token(7)[0]
    claims = jwt.decode(good, options={"verify_signature": False})
    none = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthenticated, match="algorithm"):
        authorizer.check(policy.USER, "Bearer " + none, recs(7))
    other = DevIssuer(ensure_keys(keys[0].parent / "other")[0], ISSUER, AUDIENCE)
    with pytest.raises(Unauthenticated, match="unknown key id"):
        authorizer.check(policy.USER, "Bearer " + other.user_token(7)[0], recs(7))
    for wrong in (DevIssuer(keys[0], "elsewhere", AUDIENCE), DevIssuer(keys[0], ISSUER, "other-api")):
        with pytest.raises(Unauthenticated):
            authorizer.check(policy.USER, "Bearer " + wrong.user_token(7)[0], recs(7))
    with pytest.raises(PermissionDenied, match="no access rule"):
        authorizer.check(None, "Bearer " + good, recs(7))


def test_a_user_scope_needs_a_numeric_subject() -> None:
    assert Principal.from_claims({"sub": "42", "scope": "user"}).user_id == 42
    assert Principal.from_claims({"sub": "ada", "scope": "user"}).user_id is None
    assert Principal.from_claims({"sub": "42", "scope": "service"}).user_id is None
    assert not Principal.from_claims({"sub": "ada", "scope": "user"}).may_act_for(0)


def test_bearer_token_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token(b"Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    with pytest.raises(Unauthenticated):
        bearer_token("Bearer ")


def test_keys_are_made_once_and_the_private_key_is_private(tmp_path: Path) -> None:
    key, jwks = ensure_keys(tmp_path)
    assert key.stat().st_mode & 0o077 == 0
    before = (key.read_bytes(), jwks.read_text())
    assert ensure_keys(tmp_path) == (key, jwks)
    assert (key.read_bytes(), jwks.read_text()) == before
    published = json.loads(jwks.read_text())["keys"][0]
    assert published["kty"] == "RSA" and published["alg"] == "RS256" and "d" not in published


def test_verifier_picks_up_a_rotated_jwks(tmp_path: Path) -> None:
    key, jwks = ensure_keys(tmp_path / "a")
    verifier = TokenVerifier(str(jwks), ISSUER, AUDIENCE)
    assert verifier.verify(DevIssuer(key, ISSUER, AUDIENCE).user_token(1)[0]).user_id == 1
    new_key, new_jwks = ensure_keys(tmp_path / "b")
    time.sleep(0.01)
    jwks.write_text(new_jwks.read_text())
    assert verifier.verify(DevIssuer(new_key, ISSUER, AUDIENCE).user_token(2)[0]).user_id == 2


def test_service_credentials_renew_before_expiry(issuer: DevIssuer, tmp_path: Path) -> None:
    creds = ServiceCredentials(issuer=issuer, name="recommender")
    first = creds.token()
    assert creds.token() == first  # reused while fresh
    creds._renew_at = 0.0  # half its life has passed
    time.sleep(1.01)  # a new iat
    assert creds.token() != first
    assert jwt.decode(first, options={"verify_signature": False})["sub"] == "service:recommender"
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    from_file = ServiceCredentials(token_file=token_file)
    assert from_file.metadata() == (("authorization", "Bearer abc"),)
