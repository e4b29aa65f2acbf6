"""The living catalogue: retired movies, ids for created movies, each model's cold-start map.

- `movies.retired_at`: a retired movie stays in the table (its history, GetMovie) but no tier
  serves it. The HNSW index is rebuilt partial (`WHERE retired_at IS NULL`), so the realtime
  tier and similar-movies never walk a retired movie, and no post-filter shortens their answers.
- `movie_id_seq`: ids of movies created through CatalogueService.CreateMovie, far above any
  imported dataset's ids (as user_id_seq is for users).
- `models.cold_start`: the genre/year -> item-factor map fitted with each version
  (recsys.coldstart), so a new movie is embedded in the item space of the model that serves it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE movies ADD COLUMN retired_at timestamptz")
    # The retired set the Recommender checks its cached lists against: a handful of rows.
    op.execute("CREATE INDEX movies_retired ON movies (movie_id) WHERE retired_at IS NOT NULL")
    op.execute("DROP INDEX movies_embedding_hnsw")
    op.execute(
        "CREATE INDEX movies_embedding_hnsw ON movies "
        "USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64) "
        "WHERE retired_at IS NULL"
    )
    op.execute("CREATE SEQUENCE movie_id_seq START WITH 10000000")
    op.execute("ALTER TABLE models ADD COLUMN cold_start jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE models DROP COLUMN IF EXISTS cold_start")
    op.execute("DROP SEQUENCE IF EXISTS movie_id_seq")
    op.execute("DROP INDEX IF EXISTS movies_embedding_hnsw")
    op.execute(
        "CREATE INDEX movies_embedding_hnsw ON movies "
        "USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)"
    )
    op.execute("DROP INDEX IF EXISTS movies_retired")
    op.execute("ALTER TABLE movies DROP COLUMN IF EXISTS retired_at")
