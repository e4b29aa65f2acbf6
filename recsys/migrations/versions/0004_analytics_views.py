"""Analytics views behind the dashboard: CTR, catalogue coverage, model quality, tier mix.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Feedback that counts as a click on a served item: acting on it in any positive way.
_CLICK_TYPES = "('click', 'watch', 'like', 'rate')"


def upgrade() -> None:
    # Impression-level CTR per day and tier: clicked served items / served items.
    op.execute(
        f"""
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
            WHERE f.event_type IN {_CLICK_TYPES}
            GROUP BY 1, 2
        )
        SELECT s.day, s.tier, s.serves, s.impressions,
               coalesce(c.clicks, 0) AS clicks,
               coalesce(c.clicks, 0)::float8 / nullif(s.impressions, 0) AS ctr,
               coalesce(c.serves_clicked, 0)::float8 / nullif(s.serves, 0) AS serve_ctr
        FROM served s LEFT JOIN clicked c USING (day, tier)
        """
    )
    # Share of the catalogue that was recommended to anyone that day.
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
    # One row per trained model with its holdout metrics, for RMSE / NDCG over time.
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
    # Serving health per hour: how often each cascade tier answers and how fast.
    op.execute(
        """
        CREATE VIEW analytics_serving_hourly AS
        SELECT date_trunc('hour', served_at) AS hour, tier, count(*) AS serves,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50_ms,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99_ms
        FROM recommendation_logs GROUP BY 1, 2
        """
    )


def downgrade() -> None:
    for view in (
        "analytics_serving_hourly",
        "analytics_model_quality",
        "analytics_coverage_daily",
        "analytics_ctr_daily",
    ):
        op.execute(f"DROP VIEW IF EXISTS {view}")
