"""Online A/B experiments: the experiments table, the variant of each serve, CTR per variant.

An experiment splits users deterministically (recsys.domain.experiments: a hash of the user id
and the experiment's name) between the live model (control) and a candidate version; at most one
runs at a time. Each serve logs the experiment and the variant it was in; CTR per variant comes
with a 95 % Wilson interval (impressions as the trials).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from alembic import op

from recsys.domain.events import click_types_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE experiments (
            name              text PRIMARY KEY,
            candidate_version text NOT NULL REFERENCES models (version),
            control_version   text,
            candidate_share   real NOT NULL CHECK (candidate_share > 0 AND candidate_share < 1),
            status            text NOT NULL CHECK (status IN ('running', 'stopped', 'promoted')),
            started_at        timestamptz NOT NULL DEFAULT now(),
            stopped_at        timestamptz
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX experiments_one_running ON experiments (status) WHERE status = 'running'")
    op.execute("ALTER TABLE recommendation_logs ADD COLUMN experiment text, ADD COLUMN variant text")
    op.execute(
        f"""
        CREATE FUNCTION analytics_ctr_by_variant_since(
            since timestamptz, until timestamptz DEFAULT 'infinity')
        RETURNS TABLE (experiment text, variant text, users bigint, serves bigint, impressions bigint,
                       clicks bigint, ctr float8, ctr_low float8, ctr_high float8)
        LANGUAGE sql STABLE AS $$
        WITH served AS (
            SELECT experiment, variant, count(DISTINCT user_id) AS users, count(*) AS serves,
                   sum(cardinality(movie_ids))::bigint AS impressions
            FROM recommendation_logs
            WHERE served_at >= since AND served_at < until AND experiment IS NOT NULL
            GROUP BY 1, 2
        ), clicked AS (
            SELECT l.experiment, l.variant, count(DISTINCT (f.request_id, f.movie_id)) AS clicks
            FROM recommendation_feedback f
            JOIN recommendation_logs l ON l.request_id = f.request_id
            WHERE l.served_at >= since AND l.served_at < until AND l.experiment IS NOT NULL
              AND f.position IS NOT NULL AND f.event_type IN {click_types_sql()}
            GROUP BY 1, 2
        ), rates AS (
            SELECT s.*, coalesce(c.clicks, 0) AS clicks,
                   coalesce(c.clicks, 0)::float8 / s.impressions AS p, s.impressions::float8 AS n,
                   1.959964::float8 AS z
            FROM served s LEFT JOIN clicked c USING (experiment, variant)
            WHERE s.impressions > 0
        )
        SELECT experiment, variant, users, serves, impressions, clicks, p,
               (p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n),
               (p + z * z / (2 * n) + z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        FROM rates
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION analytics_ctr_by_variant_since(timestamptz, timestamptz)")
    op.execute("ALTER TABLE recommendation_logs DROP COLUMN experiment, DROP COLUMN variant")
    op.execute("DROP TABLE experiments")
