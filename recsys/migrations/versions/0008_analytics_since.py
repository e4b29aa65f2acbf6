"""Analytics over a window: CTR on served items only, by day and by position; coverage; tier
mix; serve latency; measured freshness; ingest. No RMSE.

Each figure is a SQL function of a window [since, until) (until: open when left out), so the
AnalyticsService (profile_svc.analytics) and Grafana's SQL panels
(`..._since($__timeFrom(), $__timeTo())`) read the same definition, and a window only scans its
own rows (recommendation_logs_time, rt_interactions_ingested below).
The views of 0004 are kept for ad-hoc SQL as the functions over all time.

- CTR counts a click only on a movie that was in the served list (the feedback row's position,
  1-based, is set then; NULL when the movie was not served in that list). 0004's view counted
  any feedback that named the request, served or not.
- RMSE is gone from analytics_model_quality: it came from a separate explicit-rating model that
  is never served (the served model is implicit ALS, whose scores are preferences, not ratings).
- Freshness is event time -> the user's profile rewritten: the streaming sink inserts the event
  (rt_user_interactions.ingested_at defaults to now(), the transaction's start) and rewrites the
  user's profile in the same transaction, so ingested_at - occurred_at is that delay (over the
  events that happened in the window: imported history is old, not late).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from alembic import op

from recsys.domain.events import click_types_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CLICKS = click_types_sql()
_WINDOW = "since timestamptz, until timestamptz DEFAULT 'infinity'"

_FUNCTIONS = {
    # Impression-level CTR per day and tier: clicked served items / served items.
    "analytics_ctr_daily_since": f"""
        RETURNS TABLE (day timestamptz, tier text, serves bigint, impressions bigint, clicks bigint,
                       ctr float8, serve_ctr float8)
        LANGUAGE sql STABLE AS $$
        WITH served AS (
            SELECT date_trunc('day', served_at) AS day, tier,
                   count(*) AS serves, sum(cardinality(movie_ids))::bigint AS impressions
            FROM recommendation_logs WHERE served_at >= since AND served_at < until GROUP BY 1, 2
        ), clicked AS (
            SELECT date_trunc('day', l.served_at) AS day, l.tier,
                   count(DISTINCT (f.request_id, f.movie_id)) AS clicks,
                   count(DISTINCT f.request_id) AS serves_clicked
            FROM recommendation_feedback f
            JOIN recommendation_logs l ON l.request_id = f.request_id
            WHERE l.served_at >= since AND l.served_at < until
              AND f.position IS NOT NULL AND f.event_type IN {_CLICKS}
            GROUP BY 1, 2
        )
        SELECT s.day, s.tier, s.serves, s.impressions,
               coalesce(c.clicks, 0) AS clicks,
               coalesce(c.clicks, 0)::float8 / nullif(s.impressions, 0) AS ctr,
               coalesce(c.serves_clicked, 0)::float8 / nullif(s.serves, 0) AS serve_ctr
        FROM served s LEFT JOIN clicked c USING (day, tier)
        $$""",
    # CTR by served position (1 = first) and tier: how much the rank matters.
    "analytics_ctr_by_position_since": f"""
        RETURNS TABLE (tier text, "position" integer, impressions bigint, clicks bigint, ctr float8)
        LANGUAGE sql STABLE AS $$
        WITH served AS (
            SELECT l.tier, p AS position, count(*) AS impressions
            FROM recommendation_logs l, generate_subscripts(l.movie_ids, 1) AS p
            WHERE l.served_at >= since AND l.served_at < until GROUP BY 1, 2
        ), clicked AS (
            SELECT l.tier, f.position, count(DISTINCT (f.request_id, f.movie_id)) AS clicks
            FROM recommendation_feedback f
            JOIN recommendation_logs l ON l.request_id = f.request_id
            WHERE l.served_at >= since AND l.served_at < until
              AND f.position IS NOT NULL AND f.event_type IN {_CLICKS}
            GROUP BY 1, 2
        )
        SELECT s.tier, s.position, s.impressions, coalesce(c.clicks, 0),
               coalesce(c.clicks, 0)::float8 / s.impressions
        FROM served s LEFT JOIN clicked c USING (tier, position)
        $$""",
    # Share of the catalogue recommended to anyone, per day (the dashboard's line).
    "analytics_coverage_daily_since": """
        RETURNS TABLE (day timestamptz, movies_served bigint, catalogue bigint, coverage float8)
        LANGUAGE sql STABLE AS $$
        SELECT date_trunc('day', l.served_at) AS day, count(DISTINCT m.movie_id),
               (SELECT count(*) FROM movies),
               count(DISTINCT m.movie_id)::float8 / nullif((SELECT count(*) FROM movies), 0)
        FROM recommendation_logs l CROSS JOIN LATERAL unnest(l.movie_ids) AS m(movie_id)
        WHERE l.served_at >= since AND l.served_at < until
        GROUP BY 1
        $$""",
    # The same over the whole window (a movie served on two days counts once).
    "analytics_coverage_since": """
        RETURNS TABLE (movies_served bigint, catalogue bigint, coverage float8)
        LANGUAGE sql STABLE AS $$
        SELECT count(DISTINCT m.movie_id), (SELECT count(*) FROM movies),
               count(DISTINCT m.movie_id)::float8 / nullif((SELECT count(*) FROM movies), 0)
        FROM recommendation_logs l CROSS JOIN LATERAL unnest(l.movie_ids) AS m(movie_id)
        WHERE l.served_at >= since AND l.served_at < until
        $$""",
    # How often each cascade tier answered.
    "analytics_tier_mix_since": """
        RETURNS TABLE (tier text, serves bigint, share float8)
        LANGUAGE sql STABLE AS $$
        SELECT tier, count(*), count(*)::float8 / sum(count(*)) OVER ()
        FROM recommendation_logs WHERE served_at >= since AND served_at < until GROUP BY 1
        $$""",
    # Serve latency (the recommender's own, as logged) per tier and over all tiers ('all').
    "analytics_serve_latency_since": """
        RETURNS TABLE (tier text, serves bigint, p50_ms float8, p99_ms float8)
        LANGUAGE sql STABLE AS $$
        SELECT coalesce(tier, 'all'), count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
        FROM recommendation_logs
        WHERE served_at >= since AND served_at < until AND latency_ms IS NOT NULL
        GROUP BY GROUPING SETS ((tier), ())
        $$""",
    # Event time -> profile rewritten (see the module's docstring), over the events that both
    # happened and were applied in the window: an import or a backfill of old history is
    # applied now but happened long ago, and its age is not a delay of the pipeline.
    "analytics_freshness_since": """
        RETURNS TABLE (events bigint, p50_seconds float8, p95_seconds float8)
        LANGUAGE sql STABLE AS $$
        SELECT count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - occurred_at)),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - occurred_at))
        FROM rt_user_interactions
        WHERE ingested_at >= since AND ingested_at < until AND occurred_at >= since
        $$""",
    # Events written to rt_user_interactions per minute (the speed layer's, and imports').
    "analytics_ingest_since": """
        RETURNS TABLE (minute timestamptz, events bigint)
        LANGUAGE sql STABLE AS $$
        SELECT date_trunc('minute', ingested_at), count(*)
        FROM rt_user_interactions WHERE ingested_at >= since AND ingested_at < until GROUP BY 1
        $$""",
}

_MODEL_QUALITY = """
    CREATE VIEW analytics_model_quality AS
    SELECT version, status, created_at, published_at,
           (metrics->>'ndcg@10')::float8 AS ndcg_at_10,
           (metrics->>'precision@10')::float8 AS precision_at_10,
           (metrics->>'recall@10')::float8 AS recall_at_10,
           (metrics->>'map@10')::float8 AS map_at_10,
           (metrics->>'coverage@10')::float8 AS catalogue_coverage,
           (metrics->>'popularity_ndcg@10')::float8 AS popularity_ndcg_at_10
    FROM models
"""


def upgrade() -> None:
    op.execute("CREATE INDEX rt_interactions_ingested ON rt_user_interactions (ingested_at)")
    for name, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {name}({_WINDOW}) {body}")
    op.execute("DROP VIEW analytics_ctr_daily")
    op.execute("CREATE VIEW analytics_ctr_daily AS SELECT * FROM analytics_ctr_daily_since('-infinity')")
    op.execute("DROP VIEW analytics_coverage_daily")
    op.execute(
        "CREATE VIEW analytics_coverage_daily AS "
        "SELECT day, movies_served, coverage FROM analytics_coverage_daily_since('-infinity')"
    )
    op.execute("DROP VIEW analytics_model_quality")
    op.execute(_MODEL_QUALITY)


def downgrade() -> None:
    for view in ("analytics_model_quality", "analytics_coverage_daily", "analytics_ctr_daily"):
        op.execute(f"DROP VIEW {view}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}(timestamptz, timestamptz)")
    op.execute("DROP INDEX rt_interactions_ingested")
    # 0004's views as they were.
    op.execute(
        """
        CREATE VIEW analytics_ctr_daily AS
        WITH served AS (
            SELECT date_trunc('day', served_at) AS day, tier,
                   count(*) AS serves, sum(cardinality(movie_ids)) AS impressions
            FROM recommendation_logs GROUP BY 1, 2
        ), clicked AS (
            SELECT date_trunc('day', l.served_at) AS day, l.tier,
                   count(DISTINCT (f.request_id, f.movie_id)) AS clicks,
                   count(DISTINCT f.request_id) AS serves_clicked
            FROM recommendation_feedback f
            JOIN recommendation_logs l ON l.request_id = f.request_id
            WHERE f.event_type IN ('click', 'watch', 'like', 'rate')
            GROUP BY 1, 2
        )
        SELECT s.day, s.tier, s.serves, s.impressions,
               coalesce(c.clicks, 0) AS clicks,
               coalesce(c.clicks, 0)::float8 / nullif(s.impressions, 0) AS ctr,
               coalesce(c.serves_clicked, 0)::float8 / nullif(s.serves, 0) AS serve_ctr
        FROM served s LEFT JOIN clicked c USING (day, tier)
        """
    )
    op.execute(
        """
        CREATE VIEW analytics_coverage_daily AS
        SELECT date_trunc('day', l.served_at) AS day,
               count(DISTINCT m.movie_id) AS movies_served,
               count(DISTINCT m.movie_id)::float8 / nullif((SELECT count(*) FROM movies), 0) AS coverage
        FROM recommendation_logs l CROSS JOIN LATERAL unnest(l.movie_ids) AS m(movie_id)
        GROUP BY 1
        """
    )
    op.execute(
        """
        CREATE VIEW analytics_model_quality AS
        SELECT version, status, created_at, published_at,
               (metrics->>'rmse')::float8 AS rmse,
               (metrics->>'ndcg@10')::float8 AS ndcg_at_10,
               (metrics->>'precision@10')::float8 AS precision_at_10,
               (metrics->>'recall@10')::float8 AS recall_at_10,
               (metrics->>'map@10')::float8 AS map_at_10,
               (metrics->>'coverage@10')::float8 AS catalogue_coverage
        FROM models
        """
    )
