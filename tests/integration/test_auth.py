"""The trust boundary against the real gateway and services: who may call what.

For every user-scoped method (GetRecommendations, GetProfile, PostEvent), over REST and gRPC
through Envoy, and gRPC straight to the service's own port:
- user A's token acting for user B: 403 / PERMISSION_DENIED;
- no token: 401 / UNAUTHENTICATED;
- expired, wrong-key, `alg: none`, HS256-with-the-public-key and tampered tokens: 401;
- A's token for A, and a service token for anyone: allowed.
Then the other audiences (anonymous browsing, CreateUser for services, GetPreferenceVector not on
the public listener), the development issuer, per-caller rate limits that a client cannot dodge
by rotating x-client-id or forging X-Forwarded-For, and what listens where.
"""

from __future__ import annotations

import base64
import hmac
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from recsys.auth.devissuer import DevIssuer
from recsys.v1 import event_service_pb2 as ev
from recsys.v1 import event_service_pb2_grpc as ev_grpc
from recsys.v1 import profile_service_pb2 as pr
from recsys.v1 import profile_service_pb2_grpc as pr_grpc
from recsys.v1 import recommender_service_pb2 as rc
from recsys.v1 import recommender_service_pb2_grpc as rc_grpc
from recsys.v1 import session_service_pb2 as ss
from recsys.v1 import session_service_pb2_grpc as ss_grpc
from stack.auth import token as dev_token
from tests.tokens import auth_headers, bearer, service_token, user_token

pytestmark = pytest.mark.stack

USER_A = 7_100_000_000 + uuid.uuid4().int % 1_000_000
USER_B = USER_A + 1


# --- hostile tokens ---------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(stack: Any, sub: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": stack.env["AUTH_ISSUER"],
        "aud": stack.env["AUTH_AUDIENCE"],
        "sub": sub,
        "scope": "user",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(over)
    return claims


def hostile_tokens(stack: Any) -> dict[str, str]:
    """Tokens that must all be refused, each claiming to be USER_A."""
    good = user_token(USER_A)
    kid = jwt.get_unverified_header(good)["kid"]
    head, _, signature = good.split(".")
    raised = _b64({**jwt.decode(good, options={"verify_signature": False}), "scope": "user service"})
    real_key = stack.cfg.root / stack.env["AUTH_DEV_SIGNING_KEY"]
    jwks = json.loads((stack.cfg.root / stack.env["AUTH_JWKS"]).read_text())
    public_jwk = json.dumps(jwks["keys"][0]).encode()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hs_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(_claims(stack, str(USER_A)))}"
    hs_signature = base64.urlsafe_b64encode(hmac.new(public_jwk, hs_input.encode(), "sha256").digest())
    audience = stack.env["AUTH_AUDIENCE"]
    return {
        "expired": dev_token(stack.cfg, user=USER_A, ttl_seconds=-300),
        "wrong key": jwt.encode(
            _claims(stack, str(USER_A)), other_key, algorithm="RS256", headers={"kid": kid}
        ),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(stack, str(USER_A)))}.",
        # alg confusion: an HMAC keyed with the public key, which anyone can read
        "hs256 with the public key": f"{hs_input}.{hs_signature.decode().rstrip('=')}",
        "tampered (scope raised to service)": f"{head}.{raised}.{signature}",
        "wrong issuer": DevIssuer(real_key, "someone-else", audience).user_token(USER_A)[0],
        "wrong audience": DevIssuer(real_key, stack.env["AUTH_ISSUER"], "another-api").user_token(USER_A)[0],
        "garbage": "not-a-jwt",
    }


# --- the user-scoped calls, three ways ---------------------------------------------------------


@dataclass(frozen=True)
class Call:
    name: str
    rest: tuple[str, str, Any]  # method, path, body — acting for {user}
    grpc_service: str  # the stub's module pair and method, called through Envoy or directly
    addr_attr: str


def _movie_id(stack: Any) -> int:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 1").fetchone()
    assert row, "no movie in the catalogue"
    return int(row[0])


def rest(stack: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=data,
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def rest_call(stack: Any, which: str, user: int, tok: str | None):
    headers = {"authorization": f"Bearer {tok}"} if tok else {}
    if which == "recommendations":
        return rest(stack, "GET", f"/v1/users/{user}/recommendations?limit=3", headers=headers)
    if which == "profile":
        return rest(stack, "GET", f"/v1/users/{user}/profile", headers=headers)
    event = {"userId": str(user), "movieId": str(_movie_id(stack)), "type": "EVENT_TYPE_VIEW"}
    return rest(stack, "POST", "/v1/events", event, headers=headers)


def grpc_call(addr: str, which: str, user: int, tok: str | None) -> grpc.StatusCode:
    metadata = bearer(tok) if tok else ()
    with grpc.insecure_channel(addr) as channel:
        try:
            if which == "recommendations":
                rc_grpc.RecommenderServiceStub(channel).GetRecommendations(
                    rc.GetRecommendationsRequest(user_id=user, limit=3), metadata=metadata, timeout=10
                )
            elif which == "profile":
                pr_grpc.ProfileServiceStub(channel).GetProfile(
                    pr.GetProfileRequest(user_id=user), metadata=metadata, timeout=10
                )
            else:
                ev_grpc.EventServiceStub(channel).PostEvent(
                    ev.PostEventRequest(user_id=user, movie_id=MOVIE[0], type=ev.EVENT_TYPE_VIEW),
                    metadata=metadata,
                    timeout=10,
                )
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


MOVIE: list[int] = []
WHICH = ["recommendations", "profile", "event"]
DIRECT = {"recommendations": "recommender_addr", "profile": "profile_addr", "event": "event_addr"}
# A profile of a user the system does not know yet is a 404: allowed in, but nothing to show.
ALLOWED_REST = {200, 404}
# A well-signed token for another API: Envoy's jwt_authn answers 403 ("Audiences in Jwt are not
# allowed"), the services 401. Either way it is refused; every other bad token is a 401.
REFUSED_REST = {"wrong audience": {401, 403}}
REFUSED_GRPC = {"wrong audience": {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}}
ALLOWED_GRPC = {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND}


@pytest.fixture(scope="module", autouse=True)
def a_movie(stack):
    MOVIE[:] = [_movie_id(stack)]


@pytest.mark.parametrize("which", WHICH)
def test_rest_user_scoped_routes(stack, which):
    status, body = rest_call(stack, which, USER_A, user_token(USER_A))
    assert status in ALLOWED_REST, (which, body)
    status, body = rest_call(stack, which, USER_B, user_token(USER_A))
    assert status == 403 and json.loads(body)["code"] == 7, (which, body)
    status, body = rest_call(stack, which, USER_A, None)
    assert status == 401, (which, body)
    for kind, bad in hostile_tokens(stack).items():
        status, body = rest_call(stack, which, USER_A, bad)
        assert status in REFUSED_REST.get(kind, {401}), (which, kind, status, body)
    for user in (USER_A, USER_B, 42):
        status, body = rest_call(stack, which, user, service_token())
        assert status in ALLOWED_REST, (which, user, body)


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("route", ["through envoy", "straight to the service port"])
def test_grpc_user_scoped_methods(stack, which, route):
    addr = stack.envoy_grpc_addr if route == "through envoy" else getattr(stack, DIRECT[which])
    assert grpc_call(addr, which, USER_A, user_token(USER_A)) in ALLOWED_GRPC
    assert grpc_call(addr, which, USER_B, user_token(USER_A)) == grpc.StatusCode.PERMISSION_DENIED
    assert grpc_call(addr, which, USER_A, None) == grpc.StatusCode.UNAUTHENTICATED
    for kind, bad in hostile_tokens(stack).items():
        code = grpc_call(addr, which, USER_A, bad)
        assert code in REFUSED_GRPC.get(kind, {grpc.StatusCode.UNAUTHENTICATED}), (kind, code)
    for user in (USER_A, USER_B, 42):
        assert grpc_call(addr, which, user, service_token()) in ALLOWED_GRPC, user


def test_a_user_cannot_post_events_for_someone_else(stack):
    """The point of it all: nobody poisons another user's history, training data or CTR."""
    victim = USER_A + 20
    assert rest_call(stack, "event", victim, user_token(USER_A))[0] == 403
    assert grpc_call(stack.envoy_grpc_addr, "event", victim, user_token(USER_A)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert grpc_call(stack.event_addr, "event", victim, None) == grpc.StatusCode.UNAUTHENTICATED
    time.sleep(2 * float(stack.env.get("STREAM_TRIGGER_SECONDS", "5")) + 1)  # two micro-batches
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM rt_user_interactions WHERE user_id = %s", (victim,)
        ).fetchone()
    assert row == (0,)


def test_only_a_service_may_backfill_old_events(stack):
    """A user's event days old is refused (occurred_at named); a service's backfill is kept with
    its own time, and the speed layer stores it (bench/lifecycle.py replays a dataset this way)."""
    user, movie = USER_A + 21, _movie_id(stack)
    body = {
        "userId": str(user),
        "movieId": str(movie),
        "type": "EVENT_TYPE_CLICK",
        "occurredAt": "1998-04-01T12:00:00Z",
    }
    status, text = rest(stack, "POST", "/v1/events", body, auth_headers(user_token(user)))
    assert status == 400 and "occurred_at" in text
    status, text = rest(stack, "POST", "/v1/events", body, auth_headers(service_token()))
    assert status == 200, text
    event_id = json.loads(text)["eventId"]
    deadline = time.monotonic() + 60
    row = None
    while row is None and time.monotonic() < deadline:
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute(
                "SELECT occurred_at FROM rt_user_interactions WHERE event_id = %s", (event_id,)
            ).fetchone()
        time.sleep(0.5)
    assert row is not None, "the backfilled event never reached rt_user_interactions"
    assert row[0].isoformat().startswith("1998-04-01T12:00:00")


# --- the other audiences ---------------------------------------------------------------------


def test_anonymous_callers_browse_the_catalogue(stack):
    movie = MOVIE[0]
    for path in ("/v1/movies?pageSize=2", f"/v1/movies/{movie}", f"/v1/movies/{movie}/similar?limit=2"):
        status, body = rest(stack, "GET", path)
        assert status in (200, 404), (path, body)  # a movie without an embedding has no neighbours
    status, _ = rest(stack, "GET", "/v1/movies?pageSize=2")
    assert status == 200
    # ...but a token that is sent must be valid, even where none is needed
    status, _ = rest(stack, "GET", "/v1/movies?pageSize=2", headers={"authorization": "Bearer not-a-jwt"})
    assert status == 401


def test_create_user_is_for_services(stack):
    body = {"displayName": "auth-test"}
    assert rest(stack, "POST", "/v1/users", body)[0] == 401
    assert rest(stack, "POST", "/v1/users", body, {"authorization": f"Bearer {user_token(USER_A)}"})[0] == 403
    status, answer = rest(stack, "POST", "/v1/users", body, {"authorization": f"Bearer {service_token()}"})
    assert status == 200 and int(json.loads(answer)["userId"]) >= 10_000_000


def test_get_preference_vector_is_not_on_the_public_listener(stack):
    request = pr.GetPreferenceVectorRequest(user_id=USER_A)
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        stub = pr_grpc.ProfileServiceStub(channel)
        for tok in (None, user_token(USER_A), service_token()):
            with pytest.raises(grpc.RpcError) as err:
                stub.GetPreferenceVector(request, metadata=bearer(tok) if tok else (), timeout=10)
            assert err.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND), tok
    # On the profile service's own port it is for the mesh's services only.
    with grpc.insecure_channel(stack.profile_addr) as channel:
        stub = pr_grpc.ProfileServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetPreferenceVector(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.GetPreferenceVector(request, metadata=bearer(user_token(USER_A)), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stub.GetPreferenceVector(request, metadata=bearer(service_token()), timeout=10)


def test_the_development_issuer_signs_in_a_user_who_then_acts_for_itself_only(stack):
    status, body = rest(stack, "POST", "/v1/sessions", {"displayName": "auth-test-new"})
    assert status == 200, body
    session = json.loads(body)
    user, tok = int(session["userId"]), session["accessToken"]
    assert session["tokenType"] == "Bearer" and user >= 10_000_000
    assert rest_call(stack, "profile", user, tok)[0] == 200
    assert rest_call(stack, "recommendations", user, tok)[0] == 200
    assert rest_call(stack, "recommendations", USER_B, tok)[0] == 403
    # an existing id, over gRPC
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        answer = ss_grpc.SessionServiceStub(channel).CreateSession(
            ss.CreateSessionRequest(user_id=USER_A), timeout=10
        )
    assert answer.user_id == USER_A
    assert grpc_call(stack.envoy_grpc_addr, "recommendations", USER_A, answer.access_token) in ALLOWED_GRPC
    status, body = rest(stack, "POST", "/v1/sessions", {"userId": "-3"})
    assert status == 400 and json.loads(body)["message"].startswith("user_id:")


def test_grpcurl_with_a_token_as_the_readme_says(stack):
    tok = subprocess.run(
        [str(stack.cfg.python), "-m", "stack", "token", "--user", str(USER_A)],
        capture_output=True,
        text=True,
        check=True,
        cwd=stack.cfg.root,
    ).stdout.strip()
    out = subprocess.run(
        [
            str(stack.grpcurl),
            "-plaintext",
            "-H",
            f"authorization: Bearer {tok}",
            "-d",
            json.dumps({"user_id": USER_A, "limit": 2}),
            stack.envoy_grpc_addr,
            "recsys.v1.RecommenderService/GetRecommendations",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["user_id"] == str(USER_A)


# --- rate limits on the verified caller ----------------------------------------------------------

# Answered by Envoy itself (no service behind it), so a flood costs the services nothing and
# measures the gateway's limit alone.
ENVOY_ANSWERED = "/openapi.yaml"


@dataclass
class Flood:
    ok: int
    limited: int
    seconds: float


def _flood(stack: Any, headers_for, *, workers: int = 4, seconds: float = 20.0) -> Flood:
    """Requests from `workers` connections at once (request i with headers_for(i)) until 50
    have been refused or `seconds` have passed."""
    import http.client
    import itertools
    import threading

    host, port = stack.envoy_url.removeprefix("http://").split(":")
    counter = itertools.count()
    lock = threading.Lock()
    tally = {200: 0, 429: 0}
    started = time.monotonic()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            while time.monotonic() - started < seconds and tally[429] < 50:
                conn.request("GET", ENVOY_ANSWERED, headers=headers_for(next(counter)))
                resp = conn.getresponse()
                resp.read()
                assert resp.status in tally, resp.status
                if resp.status == 429:
                    assert resp.getheader("x-local-rate-limit") == "true"
                with lock:
                    tally[resp.status] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Flood(tally[200], tally[429], time.monotonic() - started)


def _limited(stack: Any, flood: Flood) -> bool:
    """Refused, and let through no more than one token bucket allows: the burst plus the
    refill over the flood's length (and one fill of slack for the interval's phase). Holds at
    whatever rate this machine can send."""
    burst = int(stack.env["ENVOY_RATELIMIT_BURST"])
    rate = int(stack.env["ENVOY_RATELIMIT_PER_SECOND"])
    return flood.limited > 0 and flood.ok <= burst + rate * (flood.seconds + 1)


def _status(stack: Any, headers: dict[str, str]) -> int:
    req = urllib.request.Request(stack.envoy_url + ENVOY_ANSWERED, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_user_rotating_client_ids_and_forging_xff_is_still_limited(stack):
    flooder, calm = user_token(USER_A + 10), user_token(USER_A + 11)

    def dodgy(i: int) -> dict[str, str]:
        return {
            "authorization": f"Bearer {flooder}",
            "x-client-id": f"client-{i}-{uuid.uuid4().hex}",
            "x-forwarded-for": f"203.0.113.{i % 250 + 1}",
        }

    flood = _flood(stack, dodgy)
    assert _limited(stack, flood), f"the flooding user was not limited: {flood}"
    assert _status(stack, {"authorization": f"Bearer {calm}"}) == 200, "another user must be unaffected"
    assert _status(stack, {}) == 200, "anonymous callers are unaffected by a user's flood"


def test_an_anonymous_client_forging_xff_is_limited_by_its_real_address(stack):
    calm = user_token(USER_A + 12)

    def dodgy(i: int) -> dict[str, str]:
        return {"x-client-id": uuid.uuid4().hex, "x-forwarded-for": f"198.51.100.{i % 250 + 1}"}

    try:
        flood = _flood(stack, dodgy)
        assert _limited(stack, flood), f"the anonymous flood was not limited: {flood}"
        assert _status(stack, {"authorization": f"Bearer {calm}"}) == 200, "a signed-in user is unaffected"
    finally:
        time.sleep(2.5)  # refill this address's bucket for the tests that follow


# --- what listens where ---------------------------------------------------------------------------


def _listeners(port: int) -> list[str]:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return [line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("port_key", ["RECOMMENDER_PORT", "EVENT_PORT", "PROFILE_PORT", "ENVOY_ADMIN_PORT"])
def test_only_envoy_is_reachable_from_outside(stack, port_key):
    addresses = _listeners(stack.cfg.port(port_key))
    assert addresses, f"nothing listens on {port_key}"
    for address in addresses:
        assert address in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"), (port_key, address)
