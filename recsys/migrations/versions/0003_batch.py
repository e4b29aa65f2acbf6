"""Batch layer: per-version factors, so a model can be published atomically and rolled back.

Every trained version's item embeddings (with its popularity) and user vectors are staged here
beside the previous versions'. Publishing copies one version into `movies` / `user_profiles`
inside the transaction that flips `models.status`; rolling back republishes an older version.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

EMBEDDING_DIM = 64


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE model_item_factors (
            model_version text NOT NULL,
            movie_id      bigint NOT NULL,
            embedding     vector({EMBEDDING_DIM}) NOT NULL,
            popularity    bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (model_version, movie_id)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE model_user_factors (
            model_version     text NOT NULL,
            user_id           bigint NOT NULL,
            preference_vector vector({EMBEDDING_DIM}) NOT NULL,
            PRIMARY KEY (model_version, user_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS model_user_factors")
    op.execute("DROP TABLE IF EXISTS model_item_factors")
