"""CatalogueService handlers: create and edit movies, retire and restore them (admins only).

Writes go through the table's owner (recsys.tables.movies). A new movie gets a cold-start
embedding in the live model's item space (recsys.coldstart): the live model's genre/year map
when it has one, else the mean of the live embeddings of the movies sharing a genre. A
retirement is committed, then announced to every replica through Redis
(recommender_svc.retired), so no cached list serves the movie from the next request on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc
import numpy as np

from recommender_svc.cache import RecommendationCache
from recommender_svc.retired import RetiredSet
from recsys import coldstart
from recsys.domain.movies import movie_from_row
from recsys.domain.vectors import to_array
from recsys.errors import FieldViolation, InvalidArgument, NotFound
from recsys.tables import movies
from recsys.v1 import catalogue_service_pb2 as pb
from recsys.v1 import catalogue_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_LIVE_MAP_SQL = "SELECT version, cold_start FROM models WHERE status = 'live'"

# The live model's trained embeddings of the movies sharing a genre (the fallback's input; not
# other cold-start embeddings, which would only echo this fallback).
_GENRE_VECTORS_SQL = """
SELECT f.embedding FROM model_item_factors f JOIN movies m USING (movie_id)
WHERE f.model_version = $1 AND m.genres && $2::text[]
"""

UPDATABLE = ("title", "year", "genres")


class ColdStartEmbedder:
    """A new movie's first embedding, from its genres and year, in the live model's space."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def embed(
        self, genres: Sequence[str], year: int | None
    ) -> tuple[np.ndarray[Any, Any] | None, str, pb.ColdStart.ValueType]:
        """(embedding or None, the live model's version or "", where the embedding came from)."""
        async with self.pool.acquire() as conn:
            live = await conn.fetchrow(_LIVE_MAP_SQL)
            if live is None:
                return None, "", pb.COLD_START_NONE
            version: str = live["version"]
            if live["cold_start"] is not None:
                raw = live["cold_start"]
                feature_map = coldstart.FeatureMap.from_json(json.loads(raw) if isinstance(raw, str) else raw)
                return feature_map.embed(genres, year), version, pb.COLD_START_FEATURE_MAP
            rows = await conn.fetch(_GENRE_VECTORS_SQL, version, list(genres)) if genres else []
        vector = coldstart.genre_mean(np.array([to_array(r["embedding"]) for r in rows])) if rows else None
        if vector is None:
            return None, version, pb.COLD_START_NONE
        return vector, version, pb.COLD_START_GENRE_MEAN


def _genres(values: Sequence[str]) -> list[str]:
    return [g.strip() for g in values]


class CatalogueServicer(pb_grpc.CatalogueServiceServicer):
    """Admin writes to the catalogue."""

    def __init__(
        self, pool: asyncpg.Pool, cache: RecommendationCache, retired: RetiredSet
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.retired = retired
        self.embedder = ColdStartEmbedder(pool)

    async def CreateMovie(
        self, request: pb.CreateMovieRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateMovieResponse:
        genres = _genres(request.genres)
        year = request.year if request.HasField("year") else None
        vector, version, source = await self.embedder.embed(genres, year)
        row = await movies.create(self.pool, request.title.strip(), year, genres, vector, version or None)
        log.info(
            "movie created",
            extra={
                "movie_id": row["movie_id"],
                "cold_start": pb.ColdStart.Name(source),
                "model_version": version,
            },
        )
        return pb.CreateMovieResponse(movie=movie_from_row(row), cold_start=source, model_version=version)

    async def UpdateMovie(
        self, request: pb.UpdateMovieRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateMovieResponse:
        paths = set(request.update_mask.paths)
        if not paths:
            paths = {f for f in ("title", "year") if request.HasField(f)}
            if request.genres:
                paths.add("genres")
            if not paths:
                raise InvalidArgument(
                    [FieldViolation("update_mask", "names no field, and no field to change is set")]
                )
        if "title" in paths and not request.HasField("title"):
            raise InvalidArgument([FieldViolation("title", "must be set when update_mask names it")])
        genres = _genres(request.genres)
        row = await movies.update(
            self.pool,
            request.movie_id,
            title=("title" in paths, request.title.strip() if request.HasField("title") else None),
            year=("year" in paths, request.year if request.HasField("year") else None),
            genres=("genres" in paths, genres),
        )
        if row is None:
            raise NotFound(f"movie {request.movie_id} not found")
        if paths & {"year", "genres"}:
            # A movie no training has learned keeps an embedding of what is known of it.
            vector, version, _ = await self.embedder.embed(row["genres"], row["year"])
            if vector is not None:
                await movies.set_cold_embedding(self.pool, request.movie_id, vector, version)
        return pb.UpdateMovieResponse(movie=movie_from_row(row))

    async def RetireMovie(
        self, request: pb.RetireMovieRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetireMovieResponse:
        row = await movies.retire(self.pool, request.movie_id)
        if row is None:
            raise NotFound(f"movie {request.movie_id} not found")
        await self._announce()
        return pb.RetireMovieResponse(movie=movie_from_row(row))

    async def RestoreMovie(
        self, request: pb.RestoreMovieRequest, context: grpc.aio.ServicerContext
    ) -> pb.RestoreMovieResponse:
        row = await movies.restore(self.pool, request.movie_id)
        if row is None:
            raise NotFound(f"movie {request.movie_id} not found")
        await self._announce()
        return pb.RestoreMovieResponse(movie=movie_from_row(row))

    async def _announce(self) -> None:
        """After the commit: this replica's set at once, the others' through Redis."""
        if not await self.cache.bump_retired():
            log.warning(
                "retired-set version not bumped: other replicas see the change within their reload age",
                extra={"max_age_seconds": self.retired.max_age_seconds},
            )
        await self.retired.reload(None)
