"""Fewer index entries per event: drop the trigger_id index (the unique (trigger_id,
delivery_id) index serves lookups by trigger), and index matched_chat_id / created_chat_id
only where set. Every event insert and every (never HOT) status update writes an entry into
each index of the table; most events reference no chat, or one of the two.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHAT_COLUMNS = ("matched_chat_id", "created_chat_id")


def upgrade() -> None:
    op.drop_index("ix_automation_events_trigger_id", table_name="automation_events")
    for column in _CHAT_COLUMNS:
        name = f"ix_automation_events_{column}"
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name="automation_events")
        op.create_index(
            name,
            "automation_events",
            [column],
            unique=False,
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in _CHAT_COLUMNS:
        name = f"ix_automation_events_{column}"
        op.drop_index(name, table_name="automation_events")
        op.create_index(name, "automation_events", [column], unique=False)
    op.create_index(
        "ix_automation_events_trigger_id", "automation_events", ["trigger_id"], unique=False
    )
