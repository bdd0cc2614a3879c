"""Index chats' parent_chat_id, root_chat_id and model_config_id only where set.

Most chats are root chats, and many have no model configuration: every chat insert and every
non-HOT update (an event continuing a chat moves its updated_at) wrote a NULL entry into each
of these three indexes. The lookups they serve are by value (a parent's sub-chats, the
foreign keys' ON DELETE), which a partial index on ``IS NOT NULL`` still answers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("parent_chat_id", "root_chat_id", "model_config_id")


def upgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_chats_{column}"
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(name, table_name="chats")
        op.create_index(
            name, "chats", [column], unique=False, postgresql_where=where, sqlite_where=where
        )


def downgrade() -> None:
    for column in _COLUMNS:
        name = f"ix_chats_{column}"
        op.drop_index(name, table_name="chats")
        op.create_index(name, "chats", [column], unique=False)
