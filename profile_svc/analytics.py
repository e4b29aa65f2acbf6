"""AnalyticsService handlers: read the dashboard's figures (profile_svc.analytics_store), shape them.

It runs in the profile service's process: both are light, read-mostly and off the serving path,
and a process of its own would need its own port, Envoy cluster and supervisor program for one
read RPC; the recommender (the hot path, replicated) keeps its pool for serving.
"""

from __future__ import annotations

import grpc

from profile_svc.analytics_store import AnalyticsStore, Dashboard
from profile_svc.servicer import timestamp
from recsys.v1 import analytics_service_pb2 as pb
from recsys.v1 import analytics_service_pb2_grpc

DEFAULT_DAYS = 7
DEFAULT_RECENT_MINUTES = 60

_METRICS = (
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "map_at_10",
    "catalogue_coverage",
    "popularity_ndcg_at_10",
)


def _float(value: float | None) -> float:
    """A figure of an empty window (no rows: NULL) is 0."""
    return 0.0 if value is None else float(value)


def dashboard_message(d: Dashboard) -> pb.GetDashboardResponse:
    """The proto of the store's rows."""
    days = (d.windows.until.date() - d.windows.days_since.date()).days + 1
    out = pb.GetDashboardResponse(
        generated_at=timestamp(d.windows.until),
        days=days,
        recent_minutes=round(d.windows.recent_seconds / 60),
        coverage=pb.Coverage(
            movies_served=d.coverage["movies_served"],
            catalogue=d.coverage["catalogue"],
            coverage=_float(d.coverage["coverage"]),
        ),
        freshness=pb.Freshness(
            events=d.freshness["events"],
            p50_seconds=_float(d.freshness["p50_seconds"]),
            p95_seconds=_float(d.freshness["p95_seconds"]),
        ),
    )
    for r in d.ctr_daily:
        out.ctr_daily.append(
            pb.DailyCtr(
                day=timestamp(r["day"]),
                tier=r["tier"],
                serves=r["serves"],
                impressions=r["impressions"],
                clicks=r["clicks"],
                ctr=_float(r["ctr"]),
                serve_ctr=_float(r["serve_ctr"]),
            )
        )
    for r in d.ctr_by_position:
        out.ctr_by_position.append(
            pb.PositionCtr(
                tier=r["tier"],
                position=r["position"],
                impressions=r["impressions"],
                clicks=r["clicks"],
                ctr=_float(r["ctr"]),
            )
        )
    for r in d.coverage_daily:
        out.coverage_daily.append(
            pb.DailyCoverage(
                day=timestamp(r["day"]), movies_served=r["movies_served"], coverage=_float(r["coverage"])
            )
        )
    for r in d.tier_mix:
        out.tier_mix.append(pb.TierShare(tier=r["tier"], serves=r["serves"], share=_float(r["share"])))
    for r in d.serve_latency:
        out.serve_latency.append(
            pb.ServeLatency(
                tier=r["tier"], serves=r["serves"], p50_ms=_float(r["p50_ms"]), p99_ms=_float(r["p99_ms"])
            )
        )
    for r in d.models:
        model = pb.ModelVersion(
            version=r["version"],
            status=r["status"],
            created_at=timestamp(r["created_at"]),
            published_at=timestamp(r["published_at"]),
        )
        for name in _METRICS:
            if r[name] is not None:
                setattr(model, name, r[name])
        out.models.append(model)
    for r in d.experiment_ctr:
        out.experiment_ctr.append(
            pb.VariantCtr(
                experiment=r["experiment"],
                variant=r["variant"],
                users=r["users"],
                serves=r["serves"],
                impressions=r["impressions"],
                clicks=r["clicks"],
                ctr=_float(r["ctr"]),
                ctr_low=_float(r["ctr_low"]),
                ctr_high=_float(r["ctr_high"]),
            )
        )
    total = sum(r["events"] for r in d.ingest)
    out.ingest.CopyFrom(
        pb.Ingest(
            events=total,
            events_per_second=total / d.windows.recent_seconds if d.windows.recent_seconds else 0.0,
            per_minute=[pb.IngestMinute(minute=timestamp(r["minute"]), events=r["events"]) for r in d.ingest],
        )
    )
    return out


class AnalyticsServicer(analytics_service_pb2_grpc.AnalyticsServiceServicer):
    """Reads only: the serve logs, the feedback on them, the models table, the speed layer's writes."""

    def __init__(self, store: AnalyticsStore) -> None:
        self.store = store

    async def GetDashboard(
        self, request: pb.GetDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDashboardResponse:
        days = request.days if request.HasField("days") else DEFAULT_DAYS
        recent = request.recent_minutes if request.HasField("recent_minutes") else DEFAULT_RECENT_MINUTES
        return dashboard_message(await self.store.dashboard(days, recent))
