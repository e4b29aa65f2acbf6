"""deleted_users: the tombstones of erased users (DeleteUser, issue #18).

One row per erased user id: when it was erased. Every row of the user elsewhere is deleted in
the same transaction that writes it; the row itself stays only while Kafka or the Parquet archive
may still hold the user's events, so that the streaming sink, the training extract and the
archive job can drop them (see recsys/tables/deleted_users.py and docs/privacy.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE deleted_users (
            user_id           bigint PRIMARY KEY,
            deleted_at        timestamptz NOT NULL DEFAULT now(),
            archive_erased_at timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS deleted_users")
