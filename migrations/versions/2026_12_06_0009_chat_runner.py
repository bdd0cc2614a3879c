"""The chat runner (issue 17, SPEC 9): model configs name their provider (``openai``: any
OpenAI-compatible endpoint, ``anthropic``) and carry generation settings; chats carry the
runner's claim (``runner_id``, ``heartbeat_at``), the retry in progress (``retry_at``,
``retry``) and when ``run_chat`` was last published (``queued_at``); assistant messages carry
the model, token counts and finish reason; ``usage_records`` is the token ledger, and
organizations and their members may carry a monthly token limit.

Existing model configs of provider ``openai-compatible`` (the only one before) become
``openai``; a config whose name repeats another of its organization gets its id's first
eight characters appended, so that names are unique per organization.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _unique_config_names() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, organization_id, name FROM model_configs ORDER BY created_at, id")
    ).all()
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (str(row.organization_id), row.name)
        if key in seen:
            name = f"{row.name[:189]} ({str(row.id)[:8]})"
            bind.execute(
                sa.text("UPDATE model_configs SET name = :name WHERE id = :id"),
                {"name": name, "id": row.id},
            )
            key = (str(row.organization_id), name)
        seen.add(key)


def upgrade() -> None:
    op.execute("UPDATE model_configs SET provider = 'openai' WHERE provider <> 'anthropic'")
    _unique_config_names()
    with op.batch_alter_table("model_configs") as batch:
        batch.alter_column(
            "provider",
            existing_type=sa.String(length=100),
            server_default="openai",
            existing_nullable=False,
        )
        batch.add_column(sa.Column("max_output_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("temperature", sa.Float(), nullable=True))
        batch.add_column(sa.Column("context_window", sa.Integer(), nullable=True))
        batch.create_unique_constraint(
            "uq_model_configs_organization_id_name", ["organization_id", "name"]
        )
        batch.create_check_constraint("provider_known", "provider IN ('openai', 'anthropic')")
        batch.create_check_constraint("temperature_range", "temperature BETWEEN 0 AND 2")
        batch.create_check_constraint(
            "max_output_tokens_range", "max_output_tokens BETWEEN 1 AND 1000000"
        )
        batch.create_check_constraint(
            "context_window_range", "context_window BETWEEN 1 AND 100000000"
        )
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("runner_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", _UTC, nullable=True))
        batch.add_column(sa.Column("retry_at", _UTC, nullable=True))
        batch.add_column(sa.Column("retry", _JSON, nullable=True))
        batch.add_column(sa.Column("queued_at", _UTC, nullable=True))
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("model", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("input_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("output_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("finish_reason", sa.String(length=50), nullable=True))
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("monthly_token_limit", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("organization_members") as batch:
        batch.add_column(sa.Column("monthly_token_limit", sa.BigInteger(), nullable=True))
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("automation_id", sa.Uuid(), nullable=True),
        sa.Column("chat_id", sa.Uuid(), nullable=True),
        sa.Column("model_config_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_usage_records_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_usage_records_user_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_usage_records"),
    )
    op.create_index(
        "ix_usage_records_organization_created",
        "usage_records",
        ["organization_id", "created_at"],
    )
    op.create_index(
        "ix_usage_records_organization_user_created",
        "usage_records",
        ["organization_id", "user_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_usage_records_organization_user_created", table_name="usage_records")
    op.drop_index("ix_usage_records_organization_created", table_name="usage_records")
    op.drop_table("usage_records")
    with op.batch_alter_table("organization_members") as batch:
        batch.drop_column("monthly_token_limit")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("monthly_token_limit")
    with op.batch_alter_table("chat_messages") as batch:
        for column in ("finish_reason", "output_tokens", "input_tokens", "model"):
            batch.drop_column(column)
    with op.batch_alter_table("chats") as batch:
        for column in ("queued_at", "retry", "retry_at", "heartbeat_at", "runner_id"):
            batch.drop_column(column)
    with op.batch_alter_table("model_configs") as batch:
        for check in (
            "context_window_range",
            "max_output_tokens_range",
            "temperature_range",
            "provider_known",
        ):
            batch.drop_constraint(check, type_="check")
        batch.drop_constraint("uq_model_configs_organization_id_name", type_="unique")
        for column in ("context_window", "temperature", "max_output_tokens"):
            batch.drop_column(column)
        batch.alter_column(
            "provider",
            existing_type=sa.String(length=100),
            server_default=None,
            existing_nullable=False,
        )
    op.execute("UPDATE model_configs SET provider = 'openai-compatible' WHERE provider = 'openai'")
