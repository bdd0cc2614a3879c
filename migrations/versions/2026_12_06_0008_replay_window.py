"""Replay window (issue 16): a GitHub-style signature signs the body only, so a captured
request stays valid with a new or missing delivery id. A byte-identical body on the same
trigger within ``replay_window_seconds`` (default one day, 0: off) is a duplicate; events
keep the body's hash for that look-up.

Existing triggers get the default window; existing events carry no hash (the window starts
with the first delivery after the upgrade).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the models' REPLAY_WINDOW_* values as of this revision (a migration never imports them)
_DEFAULT_SECONDS = 86_400
_MAX_SECONDS = 30 * 86_400
#: the CHECK's name; the metadata's naming convention makes it
#: ``ck_automation_triggers_replay_window_range``, as in the model
_CHECK = "replay_window_range"
_INDEX = "ix_automation_events_body_sha256"


def upgrade() -> None:
    with op.batch_alter_table("automation_triggers") as batch:
        batch.add_column(
            sa.Column(
                "replay_window_seconds",
                sa.Integer(),
                server_default=str(_DEFAULT_SECONDS),
                nullable=False,
            )
        )
        batch.create_check_constraint(_CHECK, f"replay_window_seconds BETWEEN 0 AND {_MAX_SECONDS}")
    with op.batch_alter_table("automation_events") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
    where = sa.text("body_sha256 IS NOT NULL")
    op.create_index(
        _INDEX,
        "automation_events",
        ["trigger_id", "body_sha256", "received_at"],
        unique=False,
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="automation_events")
    with op.batch_alter_table("automation_events") as batch:
        batch.drop_column("body_sha256")
    with op.batch_alter_table("automation_triggers") as batch:
        batch.drop_constraint(_CHECK, type_="check")
        batch.drop_column("replay_window_seconds")
