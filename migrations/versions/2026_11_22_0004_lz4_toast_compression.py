"""lz4 instead of pglz for the large text columns (PostgreSQL 14+ built with lz4).

Event payloads (written by every accepted webhook, read by every pipeline run) and chat
messages (written by every created or continued chat) are a few KB each, so nearly every row
is compressed: lz4 compresses about four times faster than the default pglz and decompresses
faster too. Only values written from now on use it; existing rows stay readable as they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("automation_events", "payload"),
    ("automation_events", "pending_payload"),
    ("chat_messages", "content"),
)


def _lz4_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    values = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    return bool(values) and "lz4" in values


def upgrade() -> None:
    if not _lz4_available():
        return  # SQLite, or a server built without lz4: pglz stays
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION default")
