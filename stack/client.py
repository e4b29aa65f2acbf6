"""A client of the running local stack: REST calls with a service token, the database, seeded
test movies. The integration tests and the benchmarks (bench/freshness.py, bench/ingest.py)
both drive the stack through it; neither imports the other."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from recsys.domain.vectors import EMBEDDING_DIM

from .auth import token
from .config import StackConfig

SEED_BASE = 910_000_000  # distinct from other suites' 900000000+ test movies
SEED_GENRES = ("SpeedAlpha", "SpeedBeta", "SpeedGamma")
PER_GENRE = 30


@cache
def service_token(name: str = "stack-client") -> str:
    """A service token of the development issuer: it may act for any user. These helpers drive
    the speed layer, not who may call (tests/integration/test_auth.py is about that)."""
    return token(StackConfig.load(), service=name)


def connect(database_url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(database_url, autocommit=True)
    register_vector(conn)
    return conn


def embedded_movie_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM movies WHERE embedding IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def seed_genre_clusters(conn: psycopg.Connection[Any], scale: float = 3.0) -> dict[str, list[int]]:
    """Test movies with genre-clustered embeddings (idempotent); {genre: [movie ids]}.

    One direction per genre plus noise, at `scale` times the norm of a typical item factor,
    so the clusters stand out from whatever else is in the catalogue (the trained model's
    movies, other suites' test movies): "leans to the genre" is then a deterministic check
    of the pipeline rather than of how genre-like the training data is. Remove them with
    remove_seeded() when done.
    """
    rng = np.random.default_rng(2026)
    out: dict[str, list[int]] = {}
    version = conn.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
    for g, genre in enumerate(SEED_GENRES):
        ids = []
        for i in range(PER_GENRE):
            movie_id = SEED_BASE + g * 1000 + i
            vec = np.zeros(EMBEDDING_DIM, dtype=np.float32)
            vec[g] = scale
            vec[3:16] = 0.15 * scale * rng.standard_normal(13)
            conn.execute(
                "INSERT INTO movies (movie_id, title, year, genres, embedding, popularity, model_version) "
                "VALUES (%s, %s, 2000, %s, %s, 1, %s) ON CONFLICT (movie_id) DO UPDATE SET "
                "embedding = EXCLUDED.embedding, genres = EXCLUDED.genres, updated_at = now()",
                (movie_id, f"Speed Test {genre} {i}", [genre], vec, version[0] if version else None),
            )
            ids.append(movie_id)
        out[genre] = ids
    return out


def remove_seeded(conn: psycopg.Connection[Any]) -> None:
    """Delete the seeded test movies (their events stay; they reference no foreign key)."""
    conn.execute(
        "DELETE FROM movies WHERE movie_id >= %s AND movie_id < %s",
        (SEED_BASE, SEED_BASE + len(SEED_GENRES) * 1000),
    )


def real_genre_movies(conn: psycopg.Connection[Any], min_movies: int = 40) -> dict[str, list[int]]:
    """Embedded movies of the trained model by genre (genres with enough movies)."""
    rows = conn.execute(
        "SELECT g, array_agg(movie_id ORDER BY popularity DESC) FROM movies, unnest(genres) g "
        "WHERE embedding IS NOT NULL AND movie_id < %s GROUP BY g HAVING count(*) >= %s",
        (SEED_BASE, min_movies),
    ).fetchall()
    return {r[0]: list(r[1]) for r in rows}


def new_user_id() -> int:
    """A fresh user id nobody else uses (above CreateUser's sequence range in practice)."""
    return 5_000_000_000 + uuid.uuid4().int % 1_000_000_000


def http(method: str, url: str, body: Any = None, timeout: float = 15) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {service_token()}"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, raw.decode(errors="replace")


def post_event(envoy_url: str, **event: Any) -> tuple[int, Any]:
    return http("POST", f"{envoy_url}/v1/events", event)


def recommendations(envoy_url: str, user_id: int, limit: int = 10) -> dict[str, Any]:
    status, body = http("GET", f"{envoy_url}/v1/users/{user_id}/recommendations?limit={limit}")
    assert status == 200, body
    return dict(body)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started
