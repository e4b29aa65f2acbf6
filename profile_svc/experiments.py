"""ExperimentService handlers: start, stop and promote online A/B experiments (the experiments table's
only writer). Hosted beside the AnalyticsService (profile_svc.analytics says why); the
recommender reads the running experiment (recommender_svc.experiments) and splits users by
recsys.domain.experiments.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import grpc

from profile_svc.servicer import timestamp
from recsys.config import Settings
from recsys.errors import FailedPrecondition, NotFound
from recsys.v1 import analytics_service_pb2 as pb
from recsys.v1 import analytics_service_pb2_grpc

_COLUMNS = "name, candidate_version, control_version, candidate_share, status, started_at, stopped_at"

# A candidate must be staged (batch.als.publish.stage): its lists are what its variant serves.
_CANDIDATE_SQL = """
SELECT m.status, (SELECT version FROM models WHERE status = 'live') AS live,
       EXISTS (SELECT 1 FROM batch_recommendations b WHERE b.model_version = m.version) AS staged
FROM models m WHERE m.version = $1
"""

_START_SQL = f"""
INSERT INTO experiments (name, candidate_version, control_version, candidate_share, status)
VALUES ($1, $2, $3, $4, 'running')
RETURNING {_COLUMNS}
"""

_STOP_SQL = f"""
UPDATE experiments SET status = 'stopped', stopped_at = now()
WHERE name = $1 AND status = 'running'
RETURNING {_COLUMNS}
"""


_PROMOTED_SQL = f"""
UPDATE experiments SET status = 'promoted', stopped_at = coalesce(stopped_at, now())
WHERE name = %s
RETURNING {_COLUMNS}
"""


def promote(settings: Settings, name: str) -> tuple[dict[str, Any], str | None]:
    """Publish the experiment's candidate with the batch layer's atomic switch (one transaction
    with the experiment's end), then drop the cached lists. Blocking: psycopg, as the batch
    layer's publish is; the handler runs it in a thread. Returns (experiment row, old live)."""
    from psycopg.rows import dict_row

    from batch.als import publish

    with publish.connect(settings.database_url) as conn:
        with conn.transaction():
            found = conn.execute(
                "SELECT candidate_version, status FROM experiments WHERE name = %s FOR UPDATE", (name,)
            ).fetchone()
            if found is None:
                raise NotFound(f"name: no experiment {name!r}")
            version, status = found
            if status == "promoted":
                raise FailedPrecondition(f"name: {name!r} was promoted already")
            staged = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM model_item_factors WHERE model_version = %s)", (version,)
            ).fetchone()
            if not (staged and staged[0]):
                raise FailedPrecondition(f"{version!r} has no staged item factors to publish")
            previous = publish.switch(conn, version)  # a savepoint of this transaction
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(_PROMOTED_SQL, (name,)).fetchone()
    publish.invalidate_cache(settings.redis_url)
    assert row is not None
    return row, previous


def experiment_message(row: asyncpg.Record | dict[str, Any]) -> pb.Experiment:
    return pb.Experiment(
        name=row["name"],
        candidate_version=row["candidate_version"],
        control_version=row["control_version"] or "",
        candidate_share=row["candidate_share"],
        status=row["status"],
        started_at=timestamp(row["started_at"]),
        stopped_at=timestamp(row["stopped_at"]),
    )


class ExperimentServicer(analytics_service_pb2_grpc.ExperimentServiceServicer):
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def StartExperiment(
        self, request: pb.StartExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartExperimentResponse:
        version = request.candidate_version
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow(_CANDIDATE_SQL, version)
            if found is None:
                raise NotFound(f"candidate_version: no model {version!r}")
            if found["status"] == "live":
                raise FailedPrecondition(f"candidate_version: {version!r} is the live model")
            if not found["staged"]:
                raise FailedPrecondition(f"candidate_version: {version!r} is not staged (no lists to serve)")
            if await conn.fetchval("SELECT 1 FROM experiments WHERE name = $1", request.name):
                raise FailedPrecondition(f"name: an experiment {request.name!r} exists already")
            try:
                row = await conn.fetchrow(
                    _START_SQL, request.name, version, found["live"], request.candidate_share
                )
            except asyncpg.UniqueViolationError as err:  # experiments_one_running
                raise FailedPrecondition("another experiment is running: stop it first") from err
        return pb.StartExperimentResponse(experiment=experiment_message(row))

    async def StopExperiment(
        self, request: pb.StopExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopExperimentResponse:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_STOP_SQL, request.name)
        if row is None:
            raise NotFound(f"name: no running experiment {request.name!r}")
        return pb.StopExperimentResponse(experiment=experiment_message(row))

    async def PromoteExperiment(
        self, request: pb.PromoteExperimentRequest, context: grpc.aio.ServicerContext
    ) -> pb.PromoteExperimentResponse:
        row, previous = await asyncio.to_thread(promote, self.settings, request.name)
        return pb.PromoteExperimentResponse(
            experiment=experiment_message(row), previous_version=previous or ""
        )
