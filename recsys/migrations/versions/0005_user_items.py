"""user_items: each user's whole history, one row per (user, movie) ever touched.

The seen set of every serving tier, the summed signal fold-in needs and the profile's counts
(see recsys/tables/user_items.py). Backfilled from rt_user_interactions; history already archived to
Parquet before this revision is not in PostgreSQL and is not backfilled here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

from recsys.tables.user_items import accumulate_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE user_items (
            user_id  bigint NOT NULL,
            movie_id bigint NOT NULL,
            signal   double precision NOT NULL DEFAULT 0,
            events   integer NOT NULL DEFAULT 0,
            ratings  integer NOT NULL DEFAULT 0,
            dislikes integer NOT NULL DEFAULT 0,
            last_at  timestamptz,
            PRIMARY KEY (user_id, movie_id)
        )
        """
    )
    op.execute(accumulate_sql("rt_user_interactions"))
    # The profile's counts describe the whole history from now on (the sink keeps them so).
    op.execute(
        """
        UPDATE user_profiles p
           SET interaction_count = greatest(p.interaction_count, s.events),
               rating_count = greatest(p.rating_count, s.ratings)
          FROM (SELECT user_id, sum(events) AS events, sum(ratings) AS ratings
                  FROM user_items GROUP BY user_id) s
         WHERE p.user_id = s.user_id
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS user_items")
