"""The serving layer against the real stack: the cascade, validation, logs, cache, Envoy.

Every test seeds its own rows with ids far from any demo data (users and movies >= 900000000)
and a genre of its own, so the assertions are exact whatever else the database holds.
Tests of the cascade's tiers call a RecommenderServicer built in-process on the real
PostgreSQL, Redis and Profile service (so a pinned live model does not disturb the shared
stack); the rest go to the running services, directly and through Envoy.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import grpc
import psycopg
import pytest
import redis

from recommender_svc.cache import RecommendationCache
from recommender_svc.servelog import ServeLogWriter
from recommender_svc.servicer import RecommenderServicer
from recommender_svc.store import LiveModel, MovieStore
from recsys import cache as rcache
from recsys import grpcclient
from recsys.db import create_pool
from recsys.domain.vectors import EMBEDDING_DIM
from recsys.errors import InvalidArgument, NotFound
from recsys.v1 import profile_service_pb2_grpc
from recsys.v1 import recommender_service_pb2 as pb
from recsys.v1 import recommender_service_pb2_grpc as pb_grpc
from tests.tokens import auth_headers, bearer, service_credentials, service_token

pytestmark = pytest.mark.stack

GENRE = "SrvTest"  # only this module's movies have it
OTHER = "SrvTestOther"
M = [900_000_000 + i for i in range(13)]  # M[1]..M[12]; M[0] unused
U_RT, U_BATCH, U_POP, U_LOGS, U_GRPCURL = 900_000_001, 900_000_002, 900_000_003, 900_000_004, 900_000_005
U_PRIOR = 900_000_006
U_STRANGER = 900_000_099
USERS = [U_RT, U_BATCH, U_POP, U_LOGS, U_GRPCURL, U_PRIOR, U_STRANGER]


def vec(**dims: float) -> str:
    v = [0.0] * EMBEDDING_DIM
    for k, x in dims.items():
        v[int(k[1:])] = x
    return "[" + ",".join(str(x) for x in v) + "]"


# Movie i scores 100 * (100 - i) against the "forward" user vector (d0) and 100 * i against
# the "backward" one (d1): far above any trained embedding, so the order is exact. The first
# dimensions, because a model of a smaller rank is zero-padded to 64: test vectors living only
# in padded dimensions would be orthogonal to every trained movie, and HNSW's greedy search
# from a trained entry point would have no gradient to follow towards them.
def movie_embedding(i: int) -> str:
    return vec(d0=100.0 - i, d1=float(i))


FORWARD = vec(d0=100.0)
BACKWARD = vec(d1=100.0)


def title(i: int) -> str:
    return f"Serving Test Movie {i}"


@pytest.fixture(scope="module")
def live_version(db) -> str:
    row = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
    return row[0] if row else "test-serving-v1"


def cleanup(db, r: redis.Redis) -> None:
    db.execute("DELETE FROM rt_user_interactions WHERE user_id = ANY(%s)", (USERS,))
    db.execute("DELETE FROM user_profiles WHERE user_id = ANY(%s)", (USERS,))
    db.execute("DELETE FROM batch_recommendations WHERE user_id = ANY(%s)", (USERS,))
    db.execute("DELETE FROM recommendation_logs WHERE user_id = ANY(%s)", (USERS,))
    db.execute("DELETE FROM movies WHERE movie_id = ANY(%s)", (M,))
    for u in USERS:
        r.delete(rcache.recommendations_key(u))


def interact(db, user: int, movie: int, event: str, rating: float | None = None) -> None:
    db.execute(
        "INSERT INTO rt_user_interactions (event_id, user_id, movie_id, event_type, rating, occurred_at)"
        " VALUES (%s, %s, %s, %s, %s, now())",
        (uuid.uuid4().hex, user, movie, event, rating),
    )


def set_profile(db, user: int, vector: str | None, version: str | None) -> None:
    db.execute(
        "INSERT INTO user_profiles (user_id, preference_vector, model_version, updated_at)"
        " VALUES (%s, %s::vector, %s, clock_timestamp())"
        " ON CONFLICT (user_id) DO UPDATE SET preference_vector = EXCLUDED.preference_vector,"
        " model_version = EXCLUDED.model_version, updated_at = EXCLUDED.updated_at",
        (user, vector, version),
    )


@pytest.fixture(scope="module")
def seeded(stack, db, live_version):
    r = redis.Redis.from_url(stack.redis_url)
    cleanup(db, r)
    for i in range(1, 13):
        genres = [GENRE] if i % 3 else [GENRE, OTHER]  # 3, 6, 9, 12 are also OTHER
        db.execute(
            "INSERT INTO movies (movie_id, title, year, genres, embedding, popularity)"
            " VALUES (%s, %s, %s, %s, %s::vector, %s)",
            (M[i], title(i), 1990 + i, genres, movie_embedding(i), 1000 - i),
        )
    for u in (U_RT, U_LOGS, U_GRPCURL):
        set_profile(db, u, FORWARD, live_version)
    interact(db, U_RT, M[1], "like")
    interact(db, U_RT, M[4], "view")
    interact(db, U_POP, M[1], "click")
    yield
    cleanup(db, r)


@pytest.fixture
async def servicer_factory(stack):
    """Build in-process servicers on the real stack; `live` pins the live model version."""
    pool = await create_pool(stack.database_url, min_size=1, max_size=4)
    channel = grpcclient.channel(stack.profile_addr, credentials=service_credentials())
    clients = []
    writers = []

    def make(
        live: str | None = None, redis_url: str | None = None, boost: float = 0.0, typical: float = 1.0
    ) -> RecommenderServicer:
        store = MovieStore(pool)
        if live is not None:
            # Pinned, never re-read; with no popularity prior unless asked, so that scores are
            # the plain inner products.
            store._live = (float("inf"), LiveModel(live, boost, typical))
        client = rcache.create_client(redis_url or stack.redis_url)
        clients.append(client)
        writer = ServeLogWriter(pool)
        writers.append(writer)
        return RecommenderServicer(
            store,
            RecommendationCache(client, 3600),
            profile_service_pb2_grpc.ProfileServiceStub(channel),
            writer,
        )

    yield make
    for w in writers:
        await w.close()
    for c in clients:
        await c.aclose()
    await channel.close()
    await pool.close()


def ids(response) -> list[int]:
    return [item.movie.movie_id for item in response.items]


def req(user: int, limit: int | None = None, **kw: Any) -> pb.GetRecommendationsRequest:
    r = pb.GetRecommendationsRequest(user_id=user, genres=kw.pop("genres", [GENRE]), **kw)
    if limit is not None:
        r.limit = limit
    return r


# --- The cascade (in-process servicer on the real stack) --------------------------------------


async def test_realtime_then_cache_excluding_seen(seeded, servicer_factory, live_version):
    rc = servicer_factory(live=live_version)
    await rc.cache.delete(U_RT)
    first = await rc.GetRecommendations(req(U_RT, 5), None)
    assert first.tier == pb.TIER_REALTIME
    assert ids(first) == [M[2], M[3], M[5], M[6], M[7]]  # M1 liked and M4 viewed: seen
    assert all(i.tier == pb.TIER_REALTIME for i in first.items)
    assert [i.position for i in first.items] == [0, 1, 2, 3, 4]
    assert first.items[0].movie.title == title(2) and first.items[0].movie.year == 1992
    assert first.items[0].reason == f"Because you liked {title(1)}"
    assert first.items[0].score == pytest.approx(100 * 98)
    assert first.model_version == live_version and first.request_id
    await rc.drain()  # the cache write is in the background

    second = await rc.GetRecommendations(req(U_RT, 5), None)
    assert second.tier == pb.TIER_CACHE
    assert ids(second) == ids(first)
    assert [i.reason for i in second.items] == [i.reason for i in first.items]

    # Filters apply to the cached unfiltered list: exclude and genre.
    third = await rc.GetRecommendations(req(U_RT, 3, exclude_movie_ids=[M[2]], genres=[OTHER]), None)
    assert third.tier == pb.TIER_CACHE
    assert ids(third) == [M[3], M[6], M[9]]


PRIOR_VERSION = "test-serving-prior"


async def test_the_live_models_popularity_prior_reranks_what_the_index_finds(
    seeded, servicer_factory, db
):
    """Against the backward vector M12 is nearest (1200), then M11, M10, M9 (1100, 1000, 900).
    The pinned model trained M11 (a count of 10^6) and M12 (1); the others it did not train, so
    they count as its typical movie (1000). Under a prior of 0.1: M11 4378, M10 1995, M9 1796,
    M12 1200."""
    set_profile(db, U_PRIOR, BACKWARD, PRIOR_VERSION)
    db.execute(
        "INSERT INTO model_item_factors (model_version, movie_id, embedding, popularity)"
        " VALUES (%s, %s, %s::vector, 1000000), (%s, %s, %s::vector, 1)",
        (PRIOR_VERSION, M[11], movie_embedding(11), PRIOR_VERSION, M[12], movie_embedding(12)),
    )
    try:
        plain = servicer_factory(live=PRIOR_VERSION)
        await plain.cache.delete(U_PRIOR)
        answer = await plain.GetRecommendations(req(U_PRIOR, 3), None)
        assert answer.tier == pb.TIER_REALTIME and ids(answer) == [M[12], M[11], M[10]]

        boosted = servicer_factory(live=PRIOR_VERSION, boost=0.1, typical=1000.0)
        await boosted.cache.delete(U_PRIOR)
        answer = await boosted.GetRecommendations(req(U_PRIOR, 3), None)
        assert answer.tier == pb.TIER_REALTIME and ids(answer) == [M[11], M[10], M[9]]
        assert [i.score for i in answer.items] == pytest.approx(
            [1100 * 1e6**0.1, 1000 * 1000**0.1, 900 * 1000**0.1], rel=1e-4
        )
        await boosted.drain()
    finally:
        db.execute("DELETE FROM model_item_factors WHERE model_version = %s", (PRIOR_VERSION,))


async def test_the_typical_count_is_the_live_models_median(stack, db):
    pool = await create_pool(stack.database_url, min_size=1, max_size=1)
    try:
        live = await MovieStore(pool).live()
    finally:
        await pool.close()
    row = db.execute(
        "SELECT m.version, percentile_disc(0.5) WITHIN GROUP (ORDER BY f.popularity)"
        " FROM models m JOIN model_item_factors f ON f.model_version = m.version"
        " WHERE m.status = 'live' GROUP BY m.version"
    ).fetchone()
    assert row is not None and live.version == row[0]
    assert live.typical_popularity == float(row[1]) and live.typical_popularity > 1


async def test_cached_answer_dropped_when_the_profile_changes(
    stack, seeded, servicer_factory, db, live_version
):
    rc = servicer_factory(live=live_version)
    await rc.cache.delete(U_RT)
    await rc.GetRecommendations(req(U_RT, 3), None)
    await rc.drain()
    assert (await rc.GetRecommendations(req(U_RT, 3), None)).tier == pb.TIER_CACHE

    # What the speed layer does: a new vector, then delete the user's key.
    set_profile(db, U_RT, BACKWARD, live_version)
    redis.Redis.from_url(stack.redis_url).delete(rcache.recommendations_key(U_RT))
    after = await rc.GetRecommendations(req(U_RT, 3), None)
    assert after.tier == pb.TIER_REALTIME
    assert ids(after) == [M[12], M[11], M[10]]
    set_profile(db, U_RT, FORWARD, live_version)
    await rc.drain()
    await rc.cache.delete(U_RT)


async def test_cache_of_another_model_is_not_served(seeded, servicer_factory, db, live_version):
    """Belt and braces: a missed invalidation after a model swap does not serve the old list."""
    old = servicer_factory(live="test-serving-old")
    set_profile(db, U_GRPCURL, FORWARD, "test-serving-old")
    await old.cache.delete(U_GRPCURL)
    await old.GetRecommendations(req(U_GRPCURL, 3), None)
    await old.drain()
    assert (await old.GetRecommendations(req(U_GRPCURL, 3), None)).tier == pb.TIER_CACHE

    new = servicer_factory(live="test-serving-new")  # key NOT deleted
    set_profile(db, U_GRPCURL, BACKWARD, "test-serving-new")
    try:
        fresh = await new.GetRecommendations(req(U_GRPCURL, 3), None)
        assert fresh.tier == pb.TIER_REALTIME and fresh.model_version == "test-serving-new"
        assert ids(fresh) == [M[12], M[11], M[10]]
    finally:
        await new.drain()
        await new.cache.delete(U_GRPCURL)
        set_profile(db, U_GRPCURL, FORWARD, live_version)


async def test_vector_of_an_old_model_falls_to_batch(seeded, servicer_factory, db):
    version = f"test-serving-batch-{uuid.uuid4().hex[:8]}"
    rc = servicer_factory(live=version)
    set_profile(db, U_BATCH, FORWARD, "some-retired-model")  # not the live model: skipped
    interact(db, U_BATCH, M[1], "rate", 5.0)
    for rank, (movie, score) in enumerate([(M[5], 0.9), (M[1], 0.8), (M[7], 0.7), (M[8], 0.6)]):
        db.execute(
            "INSERT INTO batch_recommendations (model_version, user_id, rank, movie_id, score)"
            " VALUES (%s, %s, %s, %s, %s)",
            (version, U_BATCH, rank, movie, score),
        )
    try:
        resp = await rc.GetRecommendations(req(U_BATCH, 2), None)
        assert resp.tier == pb.TIER_BATCH and resp.model_version == version
        assert ids(resp) == [M[5], M[7]]  # M1 was rated since: seen, excluded
        assert resp.items[0].score == pytest.approx(0.9)
        assert resp.items[0].reason == f"Because you liked {title(1)}"
        # A short batch list is topped up with popular movies, each marked as such.
        more = await rc.GetRecommendations(req(U_BATCH, 4), None)
        assert [i.tier for i in more.items] == [pb.TIER_BATCH] * 3 + [pb.TIER_POPULAR]
        assert ids(more)[:3] == [M[5], M[7], M[8]] and M[1] not in ids(more)
    finally:
        db.execute("DELETE FROM batch_recommendations WHERE model_version = %s", (version,))


async def test_popular_for_strangers_and_seen_excluded(seeded, servicer_factory):
    rc = servicer_factory()
    stranger = await rc.GetRecommendations(req(U_STRANGER, 3), None)
    assert stranger.tier == pb.TIER_POPULAR and stranger.model_version == ""
    assert ids(stranger) == [M[1], M[2], M[3]]  # popularity 999, 998, 997
    assert {i.reason for i in stranger.items} == {"Popular now"}
    known = await rc.GetRecommendations(req(U_POP, 3), None)  # clicked M1, has no vector
    assert known.tier == pb.TIER_POPULAR and ids(known) == [M[2], M[3], M[4]]


async def test_redis_down_still_answers_from_postgres(seeded, servicer_factory, live_version):
    rc = servicer_factory(live=live_version, redis_url="redis://127.0.0.1:1/0")  # nothing listens
    for _ in range(2):
        started = time.perf_counter()
        resp = await rc.GetRecommendations(req(U_RT, 3), None)
        assert resp.tier == pb.TIER_REALTIME
        assert ids(resp) == [M[2], M[3], M[5]]
        assert time.perf_counter() - started < 1.0
    await rc.drain()
    assert rc.cache.errors >= 2


async def test_similar_movies_and_catalogue(seeded, servicer_factory):
    rc = servicer_factory()
    similar = await rc.GetSimilarMovies(pb.GetSimilarMoviesRequest(movie_id=M[1], limit=3), None)
    assert M[1] not in [i.movie.movie_id for i in similar.items]
    assert [i.movie.movie_id for i in similar.items] == [M[2], M[3], M[4]]
    with pytest.raises(NotFound):
        await rc.GetSimilarMovies(pb.GetSimilarMoviesRequest(movie_id=M[0]), None)
    movie = await rc.GetMovie(pb.GetMovieRequest(movie_id=M[3]), None)
    assert movie.movie.title == title(3) and list(movie.movie.genres) == [GENRE, OTHER]

    first = await rc.ListMovies(
        pb.ListMoviesRequest(query="serving TEST movie", genre=GENRE, page_size=5), None
    )
    assert [m.movie_id for m in first.movies] == M[1:6] and first.next_page_token
    rest = await rc.ListMovies(
        pb.ListMoviesRequest(
            query="serving TEST movie", genre=GENRE, page_size=5, page_token=first.next_page_token
        ),
        None,
    )
    assert [m.movie_id for m in rest.movies] == M[6:11]
    only = await rc.ListMovies(pb.ListMoviesRequest(query="test movie 12", genre=OTHER), None)
    assert [m.movie_id for m in only.movies] == [M[12]] and not only.next_page_token
    with pytest.raises(InvalidArgument, match="page_token"):
        await rc.ListMovies(pb.ListMoviesRequest(query="other", page_token=first.next_page_token), None)


# --- The running services, directly and through Envoy -----------------------------------------


def rest(stack, path: str, *, method: str = "GET", headers: dict[str, str] | None = None):
    # A service token unless the test sets its own headers: these tests are about serving, not
    # about who may call (tests/integration/test_auth.py).
    headers = auth_headers() if headers is None else headers
    request = urllib.request.Request(stack.envoy_url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_logs_row_per_serve(stack, seeded, db):
    rid = f"test-serving-{uuid.uuid4().hex}"
    with grpc.insecure_channel(stack.recommender_addr) as channel:
        resp = pb_grpc.RecommenderServiceStub(channel).GetRecommendations(
            req(U_LOGS, 4), metadata=[("x-request-id", rid), *bearer()], timeout=10
        )
    assert resp.request_id == rid
    status, _, body = rest(stack, f"/v1/users/{U_LOGS}/recommendations?limit=4&genres={GENRE}")
    assert status == 200
    rest_rid = json.loads(body)["requestId"]
    deadline = time.time() + 10
    rows: list[Any] = []
    while time.time() < deadline:
        rows = db.execute(
            "SELECT request_id, user_id, tier, movie_ids, cardinality(scores) FROM recommendation_logs"
            " WHERE request_id = ANY(%s) ORDER BY served_at",
            ([rid, rest_rid],),
        ).fetchall()
        if len(rows) == 2:
            break
        time.sleep(0.2)
    assert len(rows) == 2, rows
    assert rows[0][0] == rid and rows[0][1] == U_LOGS and rows[0][3] == ids(resp) and rows[0][4] == 4
    assert rows[0][2] in ("realtime", "cache") and rows[1][2] == "cache"


def test_slow_log_table_never_delays_serving(stack, seeded, db):
    """recommendation_logs locked (a stuck migration, a long vacuum): the running recommender
    still answers at once, and every serve of the locked period is written after the lock goes."""
    rids = [f"test-serving-lock-{uuid.uuid4().hex}" for _ in range(20)]
    with psycopg.connect(stack.database_url) as locker:  # a transaction: the lock is held until rollback
        locker.execute("LOCK TABLE recommendation_logs IN ACCESS EXCLUSIVE MODE")
        with grpc.insecure_channel(stack.recommender_addr) as channel:
            stub = pb_grpc.RecommenderServiceStub(channel)
            for rid in rids:
                # each call's deadline is far below the writer's 5 s wait on the lock
                stub.GetRecommendations(
                    req(U_LOGS, 3), metadata=[("x-request-id", rid), *bearer()], timeout=1.0
                )
        time.sleep(1.0)  # the writer is now blocked on the lock with these rows in its batch
        waiting = db.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = 'recommendation_logs' AND NOT l.granted"
        ).fetchone()[0]
        assert waiting >= 1, "the log writer should be waiting on the lock"
        locker.rollback()
    deadline = time.time() + 20
    written = 0
    while time.time() < deadline:
        written = db.execute(
            "SELECT count(*) FROM recommendation_logs WHERE request_id = ANY(%s)", (rids,)
        ).fetchone()[0]
        if written == len(rids):
            break
        time.sleep(0.25)
    assert written == len(rids)


BAD_REQUESTS = [
    (dict(user_id=U_RT, limit=0), "limit"),
    (dict(user_id=U_RT, limit=-1), "limit"),
    (dict(user_id=U_RT, limit=101), "limit"),
    (dict(user_id=0), "user_id"),
    (dict(user_id=-7), "user_id"),
    (dict(user_id=U_RT, exclude_movie_ids=[5, 0]), "exclude_movie_ids[1]"),
    (dict(user_id=U_RT, genres=["Drama", " "]), "genres[1]"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_REQUESTS)
def test_invalid_requests_grpc(stack, fields, field):
    with grpc.insecure_channel(stack.recommender_addr) as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.RecommenderServiceStub(channel).GetRecommendations(
                pb.GetRecommendationsRequest(**fields), metadata=bearer(), timeout=10
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":"), err.value.details()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/users/900000001/recommendations?limit=0", "limit"),
        ("/v1/users/900000001/recommendations?limit=-3", "limit"),
        ("/v1/users/900000001/recommendations?limit=500", "limit"),
        ("/v1/users/0/recommendations", "user_id"),
        ("/v1/users/-1/recommendations", "user_id"),
        ("/v1/users/900000001/recommendations?excludeMovieIds=-4", "exclude_movie_ids[0]"),
        ("/v1/movies/0/similar", "movie_id"),
        ("/v1/movies?pageToken=garbage", "page_token"),
        ("/v1/movies?pageSize=0", "page_size"),
        ("/v1/users/0/profile", "user_id"),
    ],
)
def test_invalid_requests_rest_are_400_naming_the_field(stack, path, field):
    status, _, body = rest(stack, path)
    assert status == 400, body
    assert json.loads(body)["message"].startswith(field + ":"), body


@pytest.mark.parametrize("path", ["/v1/users/abc/recommendations", "/v1/users/1/recommendations?limit=ten"])
def test_malformed_ids_rest_are_400(stack, path):
    status, _, body = rest(stack, path)
    assert status == 400, body


def test_unknown_movie_is_404(stack):
    status, _, body = rest(stack, f"/v1/movies/{M[0]}/similar")
    assert status == 404, body
    status, _, _ = rest(stack, f"/v1/movies/{M[0]}")
    assert status == 404


def test_unknown_user_gets_popular_through_envoy(stack, seeded):
    status, headers, body = rest(stack, f"/v1/users/{U_STRANGER}/recommendations?limit=2&genres={GENRE}")
    assert status == 200
    data = json.loads(body)
    assert data["tier"] == "TIER_POPULAR"
    assert [int(i["movie"]["movieId"]) for i in data["items"]] == [M[1], M[2]]
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("referrer-policy") == "no-referrer"


def grpcurl(stack, *args: str) -> str:
    out = subprocess.run(
        [str(stack.grpcurl), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_grpcurl_lists_the_services(stack):
    listed = grpcurl(stack, stack.envoy_grpc_addr, "list").split()
    for service in (
        "recsys.v1.RecommenderService",
        "recsys.v1.EventService",
        "recsys.v1.ProfileService",
        "recsys.v1.SessionService",
        "recsys.v1.AnalyticsService",
    ):
        assert service in listed


def test_grpcurl_and_rest_return_the_same_items(stack, seeded):
    r = redis.Redis.from_url(stack.redis_url)
    r.delete(rcache.recommendations_key(U_GRPCURL))
    status, _, body = rest(stack, f"/v1/users/{U_GRPCURL}/recommendations?limit=5&genres={GENRE}")
    assert status == 200
    via_rest = json.loads(body)
    via_grpc = json.loads(
        grpcurl(
            stack,
            "-H",
            f"authorization: Bearer {service_token()}",
            "-d",
            json.dumps({"user_id": U_GRPCURL, "limit": 5, "genres": [GENRE]}),
            stack.envoy_grpc_addr,
            "recsys.v1.RecommenderService/GetRecommendations",
        )
    )
    assert via_rest["tier"] in ("TIER_REALTIME", "TIER_CACHE") and via_grpc["tier"] == "TIER_CACHE"
    assert via_grpc["request_id"] != via_rest["requestId"]

    def strip(d: dict[str, Any]) -> list[tuple[int, str, str]]:
        # REST prints JSON names (movieId), grpcurl the proto names (movie_id); both int64 as strings.
        return [
            (int(i["movie"].get("movieId", i["movie"].get("movie_id"))), i["movie"]["title"], i["reason"])
            for i in d["items"]
        ]

    assert strip(via_rest) == strip(via_grpc)
    assert [m for m, _, _ in strip(via_rest)] == [M[1], M[2], M[3], M[4], M[5]]


def test_cors_preflight(stack):
    origin = f"http://localhost:{stack.cfg.port('WEB_PORT')}"  # the web client's origin
    status, headers, _ = rest(
        stack,
        "/v1/users/1/recommendations",
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    assert status == 200
    assert headers.get("access-control-allow-origin") == origin
    assert "GET" in headers.get("access-control-allow-methods", "")
    status, headers, _ = rest(
        stack,
        "/v1/users/1/recommendations",
        method="OPTIONS",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in {k.lower() for k in headers}
    # The actual (simple) request carries the CORS answer too.
    status, headers, _ = rest(stack, "/v1/movies?pageSize=1", headers={"Origin": origin})
    assert status == 200
    assert headers.get("access-control-allow-origin") == origin
