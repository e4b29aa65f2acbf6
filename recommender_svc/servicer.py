"""RecommenderService handlers: the serving cascade, similar movies and the catalogue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np

from recommender_svc.cache import RecommendationCache
from recommender_svc.diversity import mmr_order
from recommender_svc.experiments import ExperimentReader, RunningExperiment
from recommender_svc.freshness import PendingFoldIn
from recommender_svc.ranking import (
    POPULAR_REASON,
    BadPageToken,
    CachedEntry,
    CachedList,
    Candidate,
    apply_filters,
    decode_page_token,
    encode_page_token,
    explain,
    taste_genres,
    title_patterns,
)
from recommender_svc.retired import RetiredSet
from recommender_svc.servelog import ServeLogEntry, ServeLogWriter
from recommender_svc.store import History, MovieStore
from recsys import metrics
from recsys.domain.experiments import CANDIDATE, variant
from recsys.domain.movies import movie_from_row
from recsys.domain.recency import query_vector
from recsys.domain.vectors import EMBEDDING_DIM, to_array
from recsys.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from recsys.grpcserver import current_request_id, principal_var
from recsys.pending import PendingEvent
from recsys.v1 import (
    profile_service_pb2,
    profile_service_pb2_grpc,
)
from recsys.v1 import (
    recommender_service_pb2 as pb,
)
from recsys.v1 import recommender_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# How many candidates a user's cache entry holds (the design's "top 50").
CACHE_SIZE = 50
# The page size of a request that sets none (its bounds are rules in the protos).
DEFAULT_LIMIT = 20

TIER_NAMES = {
    pb.TIER_CACHE: "cache",
    pb.TIER_REALTIME: "realtime",
    pb.TIER_BATCH: "batch",
    pb.TIER_POPULAR: "popular",
}


@dataclass(frozen=True)
class UserVector:
    """A user's preference vector as the Profile service returned it."""

    vector: np.ndarray[Any, Any]
    model_version: str
    updated_at: float
    # The movies the user liked last, newest first (recsys.domain.recency), when they are read.
    context: tuple[int, ...] = ()


@dataclass
class Answer:
    """The cascade's result: ranked (candidate, tier) pairs and the tier that answered."""

    tier: pb.Tier.ValueType
    model_version: str
    items: list[tuple[Candidate, pb.Tier.ValueType]]


def with_reason(items: Sequence[Candidate], reason: str) -> list[Candidate]:
    return [Candidate(c.movie_id, c.score, c.title, c.year, c.genres, c.popularity, reason) for c in items]


class RecommenderServicer(pb_grpc.RecommenderServiceServicer):
    """Serves recommendations from the cheapest tier that can answer."""

    def __init__(
        self,
        store: MovieStore,
        cache: RecommendationCache,
        profiles: profile_service_pb2_grpc.ProfileServiceStub,
        serve_log: ServeLogWriter,
        *,
        profile_timeout_seconds: float = 0.5,
        pending: PendingFoldIn | None = None,
        retired: RetiredSet | None = None,
        experiments: ExperimentReader | None = None,
    ) -> None:
        self.store = store
        self.retired = retired or RetiredSet(store.retired)
        self.pending = pending
        self.experiments = experiments
        self.cache = cache
        self.profiles = profiles
        self.serve_log = serve_log
        self.profile_timeout_seconds = profile_timeout_seconds
        self._background: set[asyncio.Task[None]] = set()

    # --- GetRecommendations ---------------------------------------------------------------

    async def GetRecommendations(
        self, request: pb.GetRecommendationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRecommendationsResponse:
        started = time.perf_counter()
        limit = request.limit if request.HasField("limit") else DEFAULT_LIMIT
        user_id = request.user_id
        exclude = frozenset(request.exclude_movie_ids)
        genres = frozenset(g.strip() for g in request.genres)
        diversity = request.diversity if request.HasField("diversity") else 0.0
        live = await self.store.live_model()
        experiment = await self.experiments.current() if self.experiments is not None else None
        arm = variant(user_id, experiment.name, experiment.candidate_share) if experiment else ""
        if experiment is not None and arm == CANDIDATE:
            # The candidate's own lists; the cache holds the live model's, so it is not read.
            answer = await self._candidate(user_id, experiment.candidate_version, limit, exclude, genres)
            return self._respond(user_id, answer, started, experiment, arm)
        cached, pending, retired_version = await self.cache.get_with_pending(user_id)
        retired = await self.retired.current(retired_version)
        if cached is not None and retired and not retired.isdisjoint(cached.movie_ids(cached.count)):
            cached = None  # it holds a movie retired since it was cached: recompute without it
        if pending:
            cached = None  # the list predates events the user has posted since: fold them in
        if cached is not None and live and cached.model_version != live:
            cached = None  # computed with another model: its invalidation was missed
        if cached is not None and not exclude and not genres and not diversity and cached.count >= limit:
            return self._cache_hit(user_id, limit, cached, started, experiment, arm)
        # A diverse list is picked from a wider pool (the cache's top-50), re-ranked after the
        # cascade: the cache keeps the plain ranking, so one entry serves every weight.
        pool = max(limit, CACHE_SIZE) if diversity else limit
        answer = await self.cascade(
            user_id, pool, exclude, genres, cached=cached, live=live, pending=pending
        )
        if diversity:
            order = mmr_order([frozenset(c.genres) for c, _ in answer.items], diversity, limit)
            answer.items = [answer.items[i] for i in order]
        return self._respond(user_id, answer, started, experiment, arm)

    def _respond(
        self, user_id: int, answer: Answer, started: float, experiment: RunningExperiment | None, arm: str
    ) -> pb.GetRecommendationsResponse:
        request_id = current_request_id()
        response = pb.GetRecommendationsResponse(
            user_id=user_id,
            tier=answer.tier,
            model_version=answer.model_version,
            request_id=request_id,
            experiment=experiment.name if experiment else "",
            variant=arm,
        )
        for position, (c, tier) in enumerate(answer.items):
            response.items.append(
                pb.RecommendedMovie(
                    movie=c.movie(), score=c.score, tier=tier, position=position, reason=c.reason
                )
            )
        self._log_serve(
            request_id,
            user_id,
            answer.tier,
            answer.model_version,
            [c.movie_id for c, _ in answer.items],
            [c.score for c, _ in answer.items],
            started,
            experiment,
            arm,
        )
        return response

    async def _candidate(
        self, user_id: int, version: str, limit: int, exclude: frozenset[int], genres: frozenset[str]
    ) -> Answer:
        """An experiment's candidate variant: the candidate version's own precomputed list for
        the user (its batch tier, staged with the version), topped up with popular movies. The
        speed layer folds events into the live model only, so the candidate has no realtime tier.
        """
        history = await self.store.history(user_id)
        ranked = await self.store.batch(version, user_id, history.seen | exclude, genres, limit)
        answer = Answer(pb.TIER_POPULAR, "", [])
        if ranked.items:
            items = explain(ranked.items, ranked.embeddings, history.liked, taste_genres(history.genre_lists))
            answer = Answer(pb.TIER_BATCH, version, [(c, pb.TIER_BATCH) for c in items])
        return await self._top_up(answer, history.seen, exclude, genres, limit)

    def _cache_hit(
        self,
        user_id: int,
        limit: int,
        cached: CachedEntry,
        started: float,
        experiment: RunningExperiment | None = None,
        arm: str = "",
    ) -> pb.GetRecommendationsResponse:
        """The hot path: a cached list without filters, served from its pre-encoded items.

        The same answer the general path gives (the first `limit` cached items, tier CACHE,
        positions 0..limit-1), without decoding or building a message per item.
        """
        request_id = current_request_id()
        response = pb.GetRecommendationsResponse(
            user_id=user_id, tier=pb.TIER_CACHE, model_version=cached.model_version, request_id=request_id
        )
        if experiment is not None:
            response.experiment = experiment.name
            response.variant = arm
        response.MergeFromString(cached.items_field(limit))
        self._log_serve(
            request_id,
            user_id,
            pb.TIER_CACHE,
            cached.model_version,
            cached.movie_ids(limit),
            cached.scores(limit),
            started,
            experiment,
            arm,
        )
        return response

    def _log_serve(
        self,
        request_id: str,
        user_id: int,
        tier: pb.Tier.ValueType,
        model_version: str,
        movie_ids: list[int],
        scores: list[float],
        started: float,
        experiment: RunningExperiment | None = None,
        arm: str = "",
    ) -> None:
        metrics.answered(TIER_NAMES[tier])
        self.serve_log.submit(
            ServeLogEntry(
                request_id=request_id,
                user_id=user_id,
                tier=TIER_NAMES[tier],
                model_version=model_version or None,
                movie_ids=movie_ids,
                scores=scores,
                served_at=datetime.now(UTC),
                latency_ms=(time.perf_counter() - started) * 1e3,
                experiment=experiment.name if experiment else None,
                variant=arm or None,
            )
        )

    async def cascade(
        self,
        user_id: int,
        limit: int,
        exclude: frozenset[int],
        genres: frozenset[str],
        *,
        cached: CachedEntry | None,
        live: str,
        pending: Sequence[PendingEvent] = (),
    ) -> Answer:
        """Cache -> realtime (pgvector) -> batch -> popular; short answers are topped up with popular.

        Cache and filters: the cache holds the user's *unfiltered* top-50 (minus seen movies)
        and filters apply after reading it, so one entry serves every filter combination. Only
        when the filters leave fewer than `limit` of a non-exhaustive list does the request go
        to the database, with the filters pushed into the query.

        `cached` is the user's cache entry (already checked against `live`, the live model),
        read by the caller, which serves the common case (no filters) from it directly.

        `pending` are the user's events that Kafka has and the stream has not applied yet
        (recsys.pending): the realtime tier then uses the vector with them folded in
        (recommender_svc.freshness), excludes their movies, and caches nothing (the stream's
        own answer replaces it within a trigger). Without a live model, or when the fold-in
        cannot be computed, the stored vector answers as before.
        """
        listed = cached.to_list() if cached is not None else None
        if listed is not None:
            hits = apply_filters(listed.items, exclude, genres)
            if len(hits) >= limit or listed.exhaustive:
                hit = Answer(pb.TIER_CACHE, listed.model_version, [(c, pb.TIER_CACHE) for c in hits[:limit]])
                return await self._top_up(hit, frozenset(), exclude, genres, limit)

        # The generation first (the list is cached only if no event of the user was committed,
        # and invalidated, after this read), then the vector, then the history: the history is
        # then at least as new as the vector. Read side by side, a micro-batch committing in
        # between gave a vector that knows events the history did not (their movies not
        # excluded; found by tests/integration/test_request_freshness.py).
        generation = await self.cache.generation(user_id)
        vector = await self._vector_with(user_id, pending, live)
        history = await self.store.history(user_id)
        if pending:
            history = History(
                history.seen | {p.movie_id for p in pending}, history.liked, history.genre_lists
            )
        user_genres = taste_genres(history.genre_lists)
        answer: Answer | None = None
        if vector is not None and (not live or vector.model_version == live):
            answer = await self._realtime(
                user_id,
                vector,
                history,
                user_genres,
                limit,
                exclude,
                genres,
                generation,
                cache=not pending,
            )
        if answer is None and live:
            ranked = await self.store.batch(live, user_id, history.seen | exclude, genres, limit)
            if ranked.items:
                items = explain(ranked.items, ranked.embeddings, history.liked, user_genres)
                answer = Answer(pb.TIER_BATCH, live, [(c, pb.TIER_BATCH) for c in items])
        if answer is None:
            answer = Answer(pb.TIER_POPULAR, "", [])
        return await self._top_up(answer, history.seen, exclude, genres, limit)

    async def _realtime(
        self,
        user_id: int,
        vector: UserVector,
        history: History,
        user_genres: list[str],
        limit: int,
        exclude: frozenset[int],
        genres: frozenset[str],
        generation: bytes | None,
        *,
        cache: bool = True,
    ) -> Answer | None:
        k = max(CACHE_SIZE, limit)
        live = await self.store.live()
        ranked = await self.store.nearest(vector.vector, history.seen, (), k, live, vector.context)
        if not ranked.items:
            return None
        explained = explain(ranked.items, ranked.embeddings, history.liked, user_genres)
        exhaustive = len(explained) < k
        if cache:
            self._in_background(
                self.cache.set(
                    user_id,
                    CachedList(vector.model_version, vector.updated_at, exhaustive, explained[:CACHE_SIZE]),
                    generation,
                )
            )
        items = apply_filters(explained, exclude, genres)
        if len(items) < limit and not exhaustive:
            # The filters ate the unfiltered list; ask the index again with them pushed down.
            ranked = await self.store.nearest(
                vector.vector, history.seen | exclude, sorted(genres), limit, live, vector.context
            )
            items = explain(ranked.items, ranked.embeddings, history.liked, user_genres)
        if not items:
            return None
        return Answer(pb.TIER_REALTIME, vector.model_version, [(c, pb.TIER_REALTIME) for c in items[:limit]])

    async def _top_up(
        self,
        answer: Answer,
        seen: frozenset[int],
        exclude: frozenset[int],
        genres: frozenset[str],
        limit: int,
    ) -> Answer:
        """Fill a short answer with popular movies (each keeps its own tier)."""
        missing = limit - len(answer.items)
        if missing <= 0:
            return answer
        taken = {c.movie_id for c, _ in answer.items}
        popular = await self.store.popular(sorted(seen | exclude | taken), sorted(genres), missing)
        answer.items.extend((c, pb.TIER_POPULAR) for c in with_reason(popular, POPULAR_REASON))
        return answer

    async def _vector_with(
        self, user_id: int, pending: Sequence[PendingEvent], live: str
    ) -> UserVector | None:
        """The realtime query: with pending events, the vector they make (the stream's fold-in,
        now), else the stored one; steered by the movies liked last (their lean and context,
        recsys.domain.recency) when the live model weighs them."""
        model = await self.store.live() if live else None
        steered = model is not None and (model.recent_weight > 0 or model.sequence_weight > 0)
        weight = model.recent_weight if model is not None else 0.0
        if pending and live and self.pending is not None:
            fresh = await self.pending.vector(user_id, pending)
            if fresh is not None:
                query = query_vector(fresh.vector, [r.embedding for r in fresh.recent], weight)
                return UserVector(query, live, time.time(), tuple(r.movie_id for r in fresh.recent))
        stored = await self._vector(user_id)
        if stored is None or not steered:
            return stored
        recent = await self.store.recent(user_id)
        return replace(
            stored,
            vector=query_vector(stored.vector, [r.embedding for r in recent], weight),
            context=tuple(r.movie_id for r in recent),
        )

    async def _vector(self, user_id: int) -> UserVector | None:
        """The user's vector from the Profile service; None when it has none or cannot answer."""
        try:
            resp = await self.profiles.GetPreferenceVector(
                profile_service_pb2.GetPreferenceVectorRequest(user_id=user_id),
                timeout=self.profile_timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            log.warning("profile service failed, skipping the realtime tier", extra={"code": str(err.code())})
            return None
        if len(resp.vector) != EMBEDDING_DIM:
            if resp.vector:
                log.warning(
                    "preference vector of wrong size", extra={"user_id": user_id, "n": len(resp.vector)}
                )
            return None
        updated = resp.updated_at.ToDatetime(UTC).timestamp() if resp.HasField("updated_at") else 0.0
        return UserVector(np.asarray(resp.vector, dtype=np.float32), resp.model_version, updated)

    def _in_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background cache writes (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- Similar movies and the catalogue -------------------------------------------------

    async def GetSimilarMovies(
        self, request: pb.GetSimilarMoviesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSimilarMoviesResponse:
        limit = request.limit if request.HasField("limit") else DEFAULT_LIMIT
        for_user = request.HasField("user_id")
        if for_user:
            # The method is public, but what a user's answer leaves out tells their history:
            # only that user (or a service acting for them) may ask for it.
            caller = principal_var.get()
            if caller is None:
                raise Unauthenticated("user_id needs a bearer token")
            if not caller.may_act_for(request.user_id):
                raise PermissionDenied(
                    f"the token of {caller.subject!r} may not act for user {request.user_id}"
                )
        row = await self.store.movie(request.movie_id)
        if row is None:
            raise NotFound(f"movie {request.movie_id} not found")
        response = pb.GetSimilarMoviesResponse(
            movie_id=request.movie_id, model_version=row["model_version"] or await self.store.live_model()
        )
        if row["embedding"] is None:
            return response
        # Shown to a user, the list leaves out what they have already seen (as every tier does).
        exclude = {request.movie_id} | (await self.store.seen(request.user_id) if for_user else set())
        ranked = await self.store.nearest(to_array(row["embedding"]), exclude, (), limit)
        for c in ranked.items:
            response.items.append(pb.SimilarMovie(movie=c.movie(), score=c.score))
        return response

    async def GetMovie(
        self, request: pb.GetMovieRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMovieResponse:
        row = await self.store.movie(request.movie_id)
        if row is None:
            raise NotFound(f"movie {request.movie_id} not found")
        return pb.GetMovieResponse(movie=movie_from_row(row))

    async def ListMovies(
        self, request: pb.ListMoviesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMoviesResponse:
        query, genre = request.query.strip(), request.genre.strip()
        page_size = request.page_size if request.HasField("page_size") else DEFAULT_LIMIT
        after = None
        if request.page_token:  # a token is only valid for the query it was made for: checked here
            try:
                after = decode_page_token(request.page_token, query, genre)
            except BadPageToken as err:
                raise InvalidArgument([FieldViolation("page_token", str(err))]) from err
        rows = await self.store.list_movies(
            title_patterns(query), genre, after, page_size + 1, include_retired=request.include_retired
        )
        response = pb.ListMoviesResponse(movies=[movie_from_row(r) for r in rows[:page_size]])
        if len(rows) > page_size:
            last = rows[page_size - 1]
            response.next_page_token = encode_page_token(last["popularity"], last["movie_id"], query, genre)
        return response
