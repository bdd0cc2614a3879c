"""Chat lifecycle (issue 18, SPEC 11): chats record when they were archived (chat retention
counts from it) with partial indexes for the retention and auto-archive queries; the
``notifications`` table; and the "created/continued event has a chat" CHECKs are dropped,
because chat retention deletes chats and the events that pointed at them keep their status
with a null reference.

Chats archived before this revision get ``archived_at`` = their ``updated_at``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
_CANDIDATES = "archived = false AND pin_order = 0 AND parent_chat_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("archived_at", _UTC, nullable=True))
    op.execute("UPDATE chats SET archived_at = updated_at WHERE archived")
    where = sa.text("archived_at IS NOT NULL")
    op.create_index(
        "ix_chats_archived_at",
        "chats",
        ["archived_at"],
        postgresql_where=where,
        sqlite_where=where,
    )
    candidates = sa.text(_CANDIDATES)
    op.create_index(
        "ix_chats_auto_archive_candidates",
        "chats",
        ["created_at"],
        postgresql_where=candidates,
        sqlite_where=candidates,
    )
    with op.batch_alter_table("automation_events") as batch:
        batch.drop_constraint("created_has_chat", type_="check")
        batch.drop_constraint("continued_has_chat", type_="check")
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("read_at", _UTC, nullable=True),
        sa.Column("email_status", sa.String(length=20), server_default="none", nullable=False),
        sa.Column("email_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("emailed_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_notifications_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index(
        "ix_notifications_user_created", "notifications", ["user_id", "created_at"]
    )
    pending = sa.text("email_status = 'pending'")
    op.create_index(
        "ix_notifications_email_pending",
        "notifications",
        ["created_at"],
        postgresql_where=pending,
        sqlite_where=pending,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_email_pending", table_name="notifications")
    op.drop_index("ix_notifications_user_created", table_name="notifications")
    op.drop_table("notifications")
    # events whose chat was deleted would violate the restored CHECKs: they lose nothing
    # by becoming ``error`` with a note
    op.execute(
        "UPDATE automation_events SET status = 'error', "
        "error = 'its chat was deleted (downgrade below 0010)' "
        "WHERE (status = 'created' AND created_chat_id IS NULL) "
        "OR (status = 'continued' AND matched_chat_id IS NULL)"
    )
    with op.batch_alter_table("automation_events") as batch:
        batch.create_check_constraint(
            "created_has_chat", "status != 'created' OR created_chat_id IS NOT NULL"
        )
        batch.create_check_constraint(
            "continued_has_chat", "status != 'continued' OR matched_chat_id IS NOT NULL"
        )
    op.drop_index("ix_chats_auto_archive_candidates", table_name="chats")
    op.drop_index("ix_chats_archived_at", table_name="chats")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("archived_at")
