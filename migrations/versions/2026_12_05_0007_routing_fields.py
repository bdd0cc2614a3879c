"""Routing fields (issue 15): chat scope, event types and headers, message templates,
replay links, user deactivation.

Existing automations get ``chat_scope = 'automation'`` (the new default: an event continues
only chats its own automation created), existing users stay active, existing triggers accept
every event type.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: native enum on PostgreSQL; on SQLite an explicit named CHECK (an Enum's own constraint
#: added through batch mode would come out twice, once under the enum's name)
_SCOPE = sa.Enum("automation", "organization", name="chat_scope", create_constraint=False)
_SCOPE_CHECK = "chat_scope IN ('automation', 'organization')"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    _SCOPE.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("automations") as batch:
        batch.add_column(
            sa.Column("chat_scope", _SCOPE, server_default="automation", nullable=False)
        )
        if _sqlite():
            batch.create_check_constraint("chat_scope", _SCOPE_CHECK)
    with op.batch_alter_table("automation_triggers") as batch:
        batch.add_column(sa.Column("event_types", _JSON, server_default="[]", nullable=False))
        batch.add_column(sa.Column("message_template", sa.Text(), nullable=True))
    with op.batch_alter_table("automation_events") as batch:
        batch.add_column(sa.Column("event_type", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("headers", _JSON, nullable=True))
        batch.add_column(sa.Column("replay_of", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            "fk_automation_events_replay_of_automation_events",
            "automation_events",
            ["replay_of"],
            ["id"],
            ondelete="SET NULL",
        )
    where = sa.text("replay_of IS NOT NULL")
    op.create_index(
        "ix_automation_events_replay_of",
        "automation_events",
        ["replay_of"],
        unique=False,
        postgresql_where=where,
        sqlite_where=where,
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("active")
    op.drop_index("ix_automation_events_replay_of", table_name="automation_events")
    with op.batch_alter_table("automation_events") as batch:
        batch.drop_constraint(
            "fk_automation_events_replay_of_automation_events", type_="foreignkey"
        )
        batch.drop_column("replay_of")
        batch.drop_column("headers")
        batch.drop_column("event_type")
    with op.batch_alter_table("automation_triggers") as batch:
        batch.drop_column("message_template")
        batch.drop_column("event_types")
    with op.batch_alter_table("automations") as batch:
        if _sqlite():
            batch.drop_constraint("chat_scope", type_="check")
        batch.drop_column("chat_scope")
    _SCOPE.drop(op.get_bind(), checkfirst=True)
