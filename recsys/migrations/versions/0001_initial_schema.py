"""Initial schema: catalogue, profiles, interactions, batch lists, logs, feedback, models.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Every embedding lives in one fixed-size space so that HNSW can index it. Models of a
# smaller rank are zero-padded to this size when published, which leaves inner products
# (the serving score) unchanged.
EMBEDDING_DIM = 64


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.execute(
        f"""
        CREATE TABLE movies (
            movie_id      bigint PRIMARY KEY,
            title         text NOT NULL,
            year          integer,
            genres        text[] NOT NULL DEFAULT '{{}}',
            embedding     vector({EMBEDDING_DIM}),
            popularity    bigint NOT NULL DEFAULT 0,
            model_version text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The realtime tier and similar-movies rank by inner product, the ALS score.
    op.execute(
        "CREATE INDEX movies_embedding_hnsw ON movies "
        "USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)"
    )
    op.execute("CREATE INDEX movies_popularity ON movies (popularity DESC, movie_id)")
    op.execute("CREATE INDEX movies_genres ON movies USING gin (genres)")
    op.execute("CREATE INDEX movies_title_trgm ON movies USING gin (lower(title) gin_trgm_ops)")

    op.execute(
        f"""
        CREATE TABLE user_profiles (
            user_id           bigint PRIMARY KEY,
            display_name      text,
            preference_vector vector({EMBEDDING_DIM}),
            interaction_count bigint NOT NULL DEFAULT 0,
            rating_count      bigint NOT NULL DEFAULT 0,
            model_version     text,
            created_at        timestamptz NOT NULL DEFAULT now(),
            updated_at        timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Ids handed out by CreateUser start far above any imported dataset's ids.
    op.execute("CREATE SEQUENCE user_id_seq START WITH 10000000")

    op.execute(
        """
        CREATE TABLE rt_user_interactions (
            event_id    text PRIMARY KEY,
            user_id     bigint NOT NULL,
            movie_id    bigint NOT NULL,
            event_type  text NOT NULL
                CHECK (event_type IN ('view', 'click', 'watch', 'rate', 'like', 'dislike')),
            rating      real CHECK (rating IS NULL OR (rating >= 0.5 AND rating <= 5)),
            request_id  text,
            occurred_at timestamptz NOT NULL,
            ingested_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX rt_interactions_user_time ON rt_user_interactions (user_id, occurred_at DESC)"
    )
    # The archive job scans by age.
    op.execute("CREATE INDEX rt_interactions_time ON rt_user_interactions (occurred_at)")

    op.execute(
        """
        CREATE TABLE models (
            version      text PRIMARY KEY,
            status       text NOT NULL
                CHECK (status IN ('training', 'candidate', 'live', 'rejected', 'retired')),
            params       jsonb NOT NULL DEFAULT '{}',
            metrics      jsonb NOT NULL DEFAULT '{}',
            artifact_uri text,
            trained_on   jsonb NOT NULL DEFAULT '{}',
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        )
        """
    )
    # At most one model serves at a time; publishing flips it in one transaction.
    op.execute("CREATE UNIQUE INDEX models_one_live ON models (status) WHERE status = 'live'")

    op.execute(
        """
        CREATE TABLE batch_recommendations (
            model_version text NOT NULL,
            user_id       bigint NOT NULL,
            rank          integer NOT NULL,
            movie_id      bigint NOT NULL,
            score         real NOT NULL,
            PRIMARY KEY (model_version, user_id, rank)
        )
        """
    )

    op.execute(
        """
        CREATE TABLE recommendation_logs (
            request_id    text PRIMARY KEY,
            user_id       bigint NOT NULL,
            tier          text NOT NULL,
            model_version text,
            movie_ids     bigint[] NOT NULL,
            scores        real[] NOT NULL,
            served_at     timestamptz NOT NULL,
            latency_ms    real
        )
        """
    )
    op.execute("CREATE INDEX recommendation_logs_user ON recommendation_logs (user_id, served_at DESC)")
    op.execute("CREATE INDEX recommendation_logs_time ON recommendation_logs (served_at)")

    op.execute(
        """
        CREATE TABLE recommendation_feedback (
            event_id    text PRIMARY KEY,
            request_id  text NOT NULL,
            user_id     bigint NOT NULL,
            movie_id    bigint NOT NULL,
            event_type  text NOT NULL,
            position    integer,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX recommendation_feedback_request ON recommendation_feedback (request_id)")


def downgrade() -> None:
    for table in (
        "recommendation_feedback",
        "recommendation_logs",
        "batch_recommendations",
        "models",
        "rt_user_interactions",
        "user_profiles",
        "movies",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP SEQUENCE IF EXISTS user_id_seq")
