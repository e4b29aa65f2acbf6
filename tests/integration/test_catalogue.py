"""Issue #18, the living catalogue: admins create, edit, retire and restore movies through the
gateway, a new movie is served at once, and a retired one by no tier, cache included.

- Create: the movie is embedded in the live model's item space by the model's own genre/year
  map (recsys.coldstart) at creation, so similar-movies returns it for movies of its genre and a
  user who likes that genre gets it in their very next realtime list.
- Retire: from the next request on, the movie is in no answer: not in a list already cached in
  Redis, not in the realtime tier, the batch tier, the popular tier or similar-movies;
  GetMovie still shows it, marked retired, and ListMovies leaves it out unless asked. Restore
  brings it back in each.
- Another recommender replica, whose retired set predates the retirement, drops the movie from
  the shared cached list at its next request too.
- Only the admin scope may call these methods; bad fields are refused naming the field (every
  rule of the proto is also broken by tests/integration/test_proto_rules.py).

Movies created here are retired at the end of the module, so no other test is served them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psycopg
import pytest

from recsys import coldstart
from recsys.domain.vectors import to_array
from recsys.v1 import catalogue_service_pb2 as cat
from recsys.v1 import catalogue_service_pb2_grpc as cat_grpc
from recsys.v1 import recommender_service_pb2 as rc
from recsys.v1 import recommender_service_pb2_grpc as rc_grpc
from stack import checks
from stack.config import ROOT
from tests.tokens import admin_token, bearer, service_token, user_token

pytestmark = pytest.mark.stack

# A genre with an audience of its own in the demo catalogue (recsys.importer.synthetic: users
# love and dislike genres), and enough movies that have no other genre for the checks below.
GENRE = "Horror"
SIMILAR_LIMIT = 20


def call(
    stack: Any, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """(status, JSON body) of one REST call through the gateway; errors are returned, not raised."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def admin(stack: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, answer = call(stack, method, path, admin_token(), {} if body is None else body)
    assert status == 200, answer
    return dict(answer)


def ids(answer: dict[str, Any]) -> list[int]:
    return [int(i["movie"]["movieId"]) for i in answer.get("items", [])]


def similar(stack: Any, movie_id: int) -> list[int]:
    status, answer = call(stack, "GET", f"/v1/movies/{movie_id}/similar?limit={SIMILAR_LIMIT}")
    assert status == 200, answer
    return ids(answer)


def recommend(stack: Any, user_id: int, query: str = "limit=20") -> dict[str, Any]:
    status, answer = call(stack, "GET", f"/v1/users/{user_id}/recommendations?{query}", service_token())
    assert status == 200, answer
    return dict(answer)


def new_user() -> int:
    return 7_000_000_000 + uuid.uuid4().int % 1_000_000_000


@pytest.fixture(scope="module")
def live(db: psycopg.Connection[Any]) -> tuple[str, dict[str, Any]]:
    """The live model's version and its cold-start map (fitted by the training at `make up`)."""
    row = db.execute("SELECT version, cold_start FROM models WHERE status = 'live'").fetchone()
    assert row is not None, "no live model (make up trains the first one)"
    assert row[1] is not None, f"the live model {row[0]} has no cold-start map: train it with this code"
    return row[0], row[1]


@pytest.fixture(scope="module")
def only_genre(db: psycopg.Connection[Any]) -> list[int]:
    """The embedded movies whose one genre is GENRE, most popular first."""
    rows = db.execute(
        "SELECT movie_id FROM movies WHERE genres = ARRAY[%s] AND embedding IS NOT NULL "
        "AND retired_at IS NULL AND movie_id < 10000000 ORDER BY popularity DESC, movie_id",
        (GENRE,),
    ).fetchall()
    assert len(rows) >= 30, f"too few {GENRE} movies in the demo catalogue: {len(rows)}"
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def created(stack: Any) -> Iterator[list[int]]:
    """Ids of the movies this module creates; retired at the end."""
    made: list[int] = []
    yield made
    for movie_id in made:
        call(stack, "POST", f"/v1/movies/{movie_id}:retire", admin_token(), {})


def create(stack: Any, created: list[int], **fields: Any) -> dict[str, Any]:
    answer = admin(stack, "POST", "/v1/movies", {"title": f"A new film {uuid.uuid4().hex[:8]}", **fields})
    created.append(int(answer["movie"]["movieId"]))
    return answer


def embedding_of(db: psycopg.Connection[Any], movie_id: int) -> tuple[np.ndarray, str]:
    row = db.execute(
        "SELECT embedding, model_version FROM movies WHERE movie_id = %s", (movie_id,)
    ).fetchone()
    assert row is not None and row[0] is not None, f"movie {movie_id} has no embedding"
    return to_array(row[0]), row[1]


# --- Create ------------------------------------------------------------------------------------


def test_create_embeds_the_movie_with_the_live_models_map(
    stack: Any, db: Any, created: Any, live: Any
) -> None:
    version, cold_start = live
    answer = create(stack, created, year=1987, genres=[GENRE, "Comedy"])
    movie = answer["movie"]
    assert answer["coldStart"] == "COLD_START_FEATURE_MAP" and answer["modelVersion"] == version
    assert int(movie["movieId"]) >= 10_000_000 and movie["year"] == 1987 and not movie["retired"]
    assert movie["genres"] == [GENRE, "Comedy"]
    vector, model_version = embedding_of(db, int(movie["movieId"]))
    assert model_version == version
    expected = coldstart.FeatureMap.from_json(cold_start).embed([GENRE, "Comedy"], 1987)
    np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
    status, got = call(stack, "GET", f"/v1/movies/{movie['movieId']}")
    assert status == 200 and got["movie"] == movie


def test_a_created_movie_is_similar_to_the_movies_of_its_genre(
    stack: Any, db: Any, created: Any, only_genre: list[int]
) -> None:
    """Its embedding says its genre: similar-movies returns it for movies of that genre, and
    for more of them than of movies without it."""
    new = int(create(stack, created, year=1995, genres=[GENRE])["movie"]["movieId"])
    others = [
        r[0]
        for r in db.execute(
            "SELECT movie_id FROM movies WHERE NOT genres && ARRAY[%s] AND embedding IS NOT NULL "
            "AND retired_at IS NULL AND movie_id < 10000000 ORDER BY popularity DESC, movie_id LIMIT 30",
            (GENRE,),
        )
    ]
    in_genre = [m for m in only_genre[:30] if new in similar(stack, m)]
    out_of_genre = [m for m in others if new in similar(stack, m)]
    assert in_genre, f"the new {GENRE} movie is in no top-{SIMILAR_LIMIT} of 30 {GENRE} movies"
    assert len(in_genre) > len(out_of_genre), (in_genre, out_of_genre)


def test_a_created_movie_is_recommended_in_the_next_request(
    stack: Any, created: Any, only_genre: list[int]
) -> None:
    """A user who has just liked five GENRE movies gets the new one in the first list they ask
    for after its creation (the realtime tier, their likes folded in on that request)."""
    new = int(create(stack, created, year=1995, genres=[GENRE])["movie"]["movieId"])
    user = new_user()
    events = [{"movieId": str(m), "type": "EVENT_TYPE_LIKE"} for m in only_genre[:5]]
    body = {"userId": str(user), "events": events}
    status, answer = call(stack, "POST", "/v1/events:batch", user_token(user), body)
    assert status == 200, answer
    answer = recommend(stack, user)
    assert answer["tier"] == "TIER_REALTIME", answer["tier"]
    assert new in ids(answer), ids(answer)


def test_without_a_map_the_genre_mean_embeds_the_movie(
    stack: Any, db: Any, created: Any, live: Any
) -> None:
    """A live model trained before the maps existed: the mean of the model's trained embeddings
    of the movies sharing a genre, at their median length, and the answer says so."""
    version, cold_start = live
    db.execute("UPDATE models SET cold_start = NULL WHERE version = %s", (version,))
    try:
        answer = create(stack, created, year=2001, genres=[GENRE])
    finally:
        db.execute("UPDATE models SET cold_start = %s WHERE version = %s", (json.dumps(cold_start), version))
    assert answer["coldStart"] == "COLD_START_GENRE_MEAN" and answer["modelVersion"] == version
    vectors = np.array(
        [
            to_array(r[0])
            for r in db.execute(
                "SELECT f.embedding FROM model_item_factors f JOIN movies m USING (movie_id) "
                "WHERE f.model_version = %s AND m.genres && ARRAY[%s]",
                (version, GENRE),
            )
        ]
    )
    vector, _ = embedding_of(db, int(answer["movie"]["movieId"]))
    np.testing.assert_allclose(vector, coldstart.genre_mean(vectors), rtol=1e-4, atol=1e-5)


def test_update_changes_the_fields_and_re_embeds_a_cold_started_movie(
    stack: Any, db: Any, created: Any, live: Any
) -> None:
    movie_id = int(create(stack, created, year=1980, genres=[GENRE])["movie"]["movieId"])
    before, _ = embedding_of(db, movie_id)
    changed = admin(stack, "PATCH", f"/v1/movies/{movie_id}", {"title": "Renamed", "genres": ["Musical"]})
    assert changed["movie"]["title"] == "Renamed" and changed["movie"]["genres"] == ["Musical"]
    assert changed["movie"]["year"] == 1980  # not set, not in a mask: kept
    after, _ = embedding_of(db, movie_id)
    expected = coldstart.FeatureMap.from_json(live[1]).embed(["Musical"], 1980)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, after)
    # With a mask, a field is cleared by leaving it out.
    cleared = admin(stack, "PATCH", f"/v1/movies/{movie_id}", {"updateMask": "year"})
    assert cleared["movie"]["year"] == 0 and cleared["movie"]["title"] == "Renamed"


def test_update_keeps_the_trained_embedding_of_a_movie_the_model_learned(
    stack: Any, db: Any, live: Any
) -> None:
    row = db.execute(
        "SELECT m.movie_id, m.genres FROM movies m JOIN model_item_factors f "
        "ON f.model_version = m.model_version AND f.movie_id = m.movie_id "
        "WHERE m.model_version = %s ORDER BY m.popularity DESC LIMIT 1",
        (live[0],),
    ).fetchone()
    assert row is not None, "no trained movie"
    movie_id, genres = row
    before, _ = embedding_of(db, movie_id)
    try:
        changed = admin(stack, "PATCH", f"/v1/movies/{movie_id}", {"genres": ["Musical"]})
        assert changed["movie"]["genres"] == ["Musical"]
        after, _ = embedding_of(db, movie_id)
        np.testing.assert_array_equal(after, before)
    finally:
        admin(stack, "PATCH", f"/v1/movies/{movie_id}", {"genres": genres, "updateMask": "genres"})


# --- Who may, and what is refused --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/movies", {"title": "Not yours", "genres": ["Drama"]}),
        ("PATCH", "/v1/movies/1", {"title": "Not yours"}),
        ("POST", "/v1/movies/1:retire", {}),
        ("POST", "/v1/movies/1:restore", {}),
    ],
)
def test_only_admins_may_change_the_catalogue(stack: Any, db: Any, method: str, path: str, body: Any) -> None:
    before = db.execute("SELECT title, retired_at FROM movies WHERE movie_id = 1").fetchone()
    for token in (user_token(1), service_token()):
        status, answer = call(stack, method, path, token, body)
        assert status == 403 and answer["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0], answer
    status, answer = call(stack, method, path, None, body)
    assert status == 401 and answer["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0], answer
    assert db.execute("SELECT title, retired_at FROM movies WHERE movie_id = 1").fetchone() == before


def test_grpc_callers_without_the_admin_scope_are_refused(stack: Any) -> None:
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        stub = cat_grpc.CatalogueServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.RetireMovie(cat.RetireMovieRequest(movie_id=1), metadata=bearer(user_token(1)), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/movies", {"title": "", "genres": ["Drama"]}, "title"),
        ("POST", "/v1/movies", {"title": "A", "year": 1700}, "year"),
        ("POST", "/v1/movies", {"title": "A", "genres": ["Drama", "Drama"]}, "genres"),
        ("POST", "/v1/movies", {"title": "A", "genres": [" "]}, "genres[0]"),
        ("PATCH", "/v1/movies/1", {"updateMask": "popularity"}, "update_mask"),
        ("PATCH", "/v1/movies/1", {}, "update_mask"),
        ("PATCH", "/v1/movies/1", {"updateMask": "title"}, "title"),
        ("POST", "/v1/movies/0:retire", {}, "movie_id"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(
    stack: Any, method: str, path: str, body: Any, field: str
) -> None:
    status, answer = call(stack, method, path, admin_token(), body)
    assert status == 400 and answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], answer
    assert any(part.startswith(f"{field}: ") for part in answer["message"].split("; ")), answer


def test_an_unknown_movie_is_not_found(stack: Any) -> None:
    for method, path, body in (
        ("PATCH", "/v1/movies/999999999999", {"title": "x"}),
        ("POST", "/v1/movies/999999999999:retire", {}),
        ("POST", "/v1/movies/999999999999:restore", {}),
    ):
        status, answer = call(stack, method, path, admin_token(), body)
        assert status == 404 and answer["code"] == grpc.StatusCode.NOT_FOUND.value[0], answer


# --- Retire and restore ------------------------------------------------------------------------


def _warm_user(stack: Any, db: psycopg.Connection[Any], version: str) -> tuple[int, dict[str, Any]]:
    """A user of the demo data with a vector of the live model, whose list is now cached."""
    rows = db.execute(
        "SELECT user_id FROM user_profiles WHERE model_version = %s AND preference_vector IS NOT NULL "
        "ORDER BY user_id LIMIT 20",
        (version,),
    ).fetchall()
    for (user,) in rows:
        first = recommend(stack, user)
        if first["tier"] not in ("TIER_REALTIME", "TIER_CACHE"):
            continue
        for _ in range(50):  # the list is cached in the background of the first answer
            again = recommend(stack, user)
            if again["tier"] == "TIER_CACHE":
                return user, again
    raise AssertionError("no demo user got a cached realtime list")


def test_a_retired_movie_is_served_by_no_tier_until_restored(
    stack: Any, db: psycopg.Connection[Any], live: Any
) -> None:
    version = live[0]
    user, cached = _warm_user(stack, db, version)
    x = ids(cached)[0]  # the first movie of a list cached in Redis
    neighbour = next((m for m in similar(stack, x)[:10] if x in similar(stack, m)), None)
    assert neighbour is not None, f"no neighbour of {x} has it among its own similar movies"
    # A user without a vector is served their batch list; this one's holds x.
    batch_user = new_user()
    batch = [x, *[m for m in ids(cached)[1:6]]]
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO batch_recommendations (model_version, user_id, rank, movie_id, score) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(version, batch_user, rank, m, 1.0 - rank / 10) for rank, m in enumerate(batch, start=1)],
        )
    stranger = new_user()  # nobody the system knows: the popular tier
    popular = recommend(stack, stranger)
    assert popular["tier"] == "TIER_POPULAR"
    p = ids(popular)[0]
    assert x in ids(recommend(stack, batch_user)) and recommend(stack, batch_user)["tier"] == "TIER_BATCH"
    x_genres = db.execute("SELECT genres FROM movies WHERE movie_id = %s", (x,)).fetchone()[0]
    genre_query = "limit=50&" + "&".join(f"genres={urllib.parse.quote(g)}" for g in x_genres)
    try:
        for movie_id in (x, p):
            assert admin(stack, "POST", f"/v1/movies/{movie_id}:retire")["movie"]["retired"] is True

        # No sleep: the very next request of each kind.
        answer = recommend(stack, user)
        assert x not in ids(answer), "served from the list cached before the retirement"
        assert x not in ids(recommend(stack, user, genre_query)), "realtime tier"
        assert x not in ids(recommend(stack, batch_user)), "batch tier"
        assert p not in ids(recommend(stack, stranger)), "popular tier"
        assert p not in ids(recommend(stack, new_user())), "popular tier"
        assert x not in similar(stack, neighbour), "similar movies"
        status, got = call(stack, "GET", f"/v1/movies/{x}")
        assert status == 200 and got["movie"]["retired"] is True
        status, page = call(stack, "GET", "/v1/movies?pageSize=100")
        assert status == 200 and p not in [int(m["movieId"]) for m in page["movies"]]
        status, page = call(stack, "GET", "/v1/movies?pageSize=100&includeRetired=true")
        listed = {int(m["movieId"]): m["retired"] for m in page["movies"]}
        assert status == 200 and listed.get(p) is True, listed
    finally:
        for movie_id in (x, p):
            assert admin(stack, "POST", f"/v1/movies/{movie_id}:restore")["movie"]["retired"] is False
        db.execute("DELETE FROM batch_recommendations WHERE user_id = %s", (batch_user,))

    assert x in similar(stack, neighbour)
    assert ids(recommend(stack, new_user()))[0] == p
    status, got = call(stack, "GET", f"/v1/movies/{x}")
    assert status == 200 and got["movie"]["retired"] is False
    # The list cached while x was retired lacks it until it is recomputed (the user's next event,
    # the cache's TTL); a request its filters send to the index gets x again.
    assert x in ids(recommend(stack, user, genre_query))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def other_replica(stack: Any, tmp_path: Path) -> Iterator[str]:
    """A second recommender process on the stack's database and Redis, outside the gateway (it
    loads its retired set at its first request, before the retirement below). Yields its address."""
    port, metrics = _free_port(), _free_port()
    env = {**stack.cfg.child_env(), "RECOMMENDER_PORT": str(port), "RECOMMENDER_METRICS_PORT": str(metrics)}
    with open(tmp_path / "recommender.log", "w") as log:
        proc = subprocess.Popen(
            [str(stack.cfg.venv / "bin" / "python"), "-m", "recommender_svc"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    checks.grpc_health(f"127.0.0.1:{port}", "recsys.v1.RecommenderService")
                    break
                except Exception as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        tail = (tmp_path / "recommender.log").read_text()[-1500:]
                        pytest.fail(f"second recommender not ready ({exc}): {tail}")
                    time.sleep(0.3)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_a_retirement_reaches_every_replica_at_once(
    stack: Any, db: psycopg.Connection[Any], live: Any, other_replica: str
) -> None:
    """The gateway's replica applies the retirement; another replica, whose retired set was
    loaded before it, drops the movie from the shared cached list at its next request (the Redis
    version it reads with the list moved), not after its reload age."""
    user, cached = _warm_user(stack, db, live[0])
    x = ids(cached)[0]
    with grpc.insecure_channel(other_replica) as channel:
        stub = rc_grpc.RecommenderServiceStub(channel)

        def listed() -> tuple[int, list[int]]:
            answer = stub.GetRecommendations(
                rc.GetRecommendationsRequest(user_id=user, limit=20), metadata=bearer(), timeout=10
            )
            return answer.tier, [i.movie.movie_id for i in answer.items]

        tier, before = listed()
        assert tier == rc.TIER_CACHE and x in before, (tier, before)
        admin(stack, "POST", f"/v1/movies/{x}:retire")
        try:
            tier, after = listed()
            assert x not in after, "the other replica served the cached list with the retired movie"
        finally:
            admin(stack, "POST", f"/v1/movies/{x}:restore")
