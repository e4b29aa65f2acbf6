"""Co-visitation per model version: each movie's strongest "liked next" neighbours.

The nightly job counts which movies users liked close together in time (batch.als.covisit) and
stages them with the version's factors; the realtime tier re-ranks its candidates with the live
version's rows (recsys.domain.recency). Kept and pruned with the other per-version rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE model_covisits (
            model_version text NOT NULL,
            movie_id      bigint NOT NULL,
            neighbour_id  bigint NOT NULL,
            weight        real NOT NULL,
            PRIMARY KEY (model_version, movie_id, neighbour_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS model_covisits")
