"""Chat labels GIN index with jsonb_path_ops (the chat match only uses ``@>``) and without
the pending list (``fastupdate = off``), so the chat match is an index lookup.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no operator classes: its plain index is unchanged
    op.drop_index("ix_chats_labels", table_name="chats", postgresql_using="gin")
    op.create_index(
        "ix_chats_labels",
        "chats",
        ["labels"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
        postgresql_with={"fastupdate": "off"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_chats_labels", table_name="chats", postgresql_using="gin")
    op.create_index("ix_chats_labels", "chats", ["labels"], unique=False, postgresql_using="gin")
