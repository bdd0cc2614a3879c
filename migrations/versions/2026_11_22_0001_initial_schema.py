"""Initial schema: every table of SPEC section 3.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:03:36.390841
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "encryption_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "revoked", name="encryption_key_status", create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encryption_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_encryption_keys_digest")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("name", name=op.f("uq_organizations_name")),
    )
    op.create_table(
        "site_configs",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_site_configs")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "site_role",
            sa.Enum("member", "site-admin", name="site_role", create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_keys_token_hash")),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"], unique=False)
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("resource_type", sa.String(length=100), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_audit_logs_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_logs_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    op.create_index(op.f("ix_audit_logs_actor_id"), "audit_logs", ["actor_id"], unique=False)
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_audit_logs_organization_id"), "audit_logs", ["organization_id"], unique=False
    )
    op.create_index(
        "ix_audit_logs_resource", "audit_logs", ["resource_type", "resource_id"], unique=False
    )
    op.create_table(
        "model_configs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=True),
        sa.Column("api_key_key_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_model_configs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_configs")),
    )
    op.create_index(
        op.f("ix_model_configs_organization_id"), "model_configs", ["organization_id"], unique=False
    )
    op.create_table(
        "organization_members",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum("member", "org-admin", name="org_role", create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_members_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_organization_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "user_id", name=op.f("pk_organization_members")),
    )
    op.create_index(
        op.f("ix_organization_members_user_id"), "organization_members", ["user_id"], unique=False
    )
    op.create_table(
        "automations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("model_config_id", sa.Uuid(), nullable=True),
        sa.Column(
            "mcp_server_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "allowed_tools",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "disabled", "preview", "active", name="automation_status", create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("max_chat_creates_per_hour", sa.Integer(), nullable=False),
        sa.Column("max_messages_per_hour", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "max_chat_creates_per_hour BETWEEN 1 AND 1000",
            name=op.f("ck_automations_max_chat_creates_per_hour_range"),
        ),
        sa.CheckConstraint(
            "max_messages_per_hour BETWEEN 1 AND 1000",
            name=op.f("ck_automations_max_messages_per_hour_range"),
        ),
        sa.ForeignKeyConstraint(
            ["model_config_id"],
            ["model_configs.id"],
            name=op.f("fk_automations_model_config_id_model_configs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_automations_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
        sa.UniqueConstraint(
            "owner_id",
            "organization_id",
            "name",
            name=op.f("uq_automations_owner_id_organization_id_name"),
        ),
    )
    op.create_index(
        op.f("ix_automations_model_config_id"), "automations", ["model_config_id"], unique=False
    )
    op.create_index(
        "ix_automations_organization_id", "automations", ["organization_id"], unique=False
    )
    op.create_table(
        "automation_triggers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "type",
            sa.Enum("webhook", "cron", name="trigger_type", create_constraint=True),
            nullable=False,
        ),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        sa.Column("webhook_secret_key_id", sa.String(length=64), nullable=True),
        sa.Column("previous_webhook_secret", sa.Text(), nullable=True),
        sa.Column("previous_webhook_secret_key_id", sa.String(length=64), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cron_schedule", sa.String(length=200), nullable=True),
        sa.Column("last_triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "filter",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "label_paths",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(type != 'cron') OR (cron_schedule IS NOT NULL AND webhook_secret IS NULL AND webhook_secret_key_id IS NULL AND previous_webhook_secret IS NULL)",
            name=op.f("ck_automation_triggers_cron_fields"),
        ),
        sa.CheckConstraint(
            "(type != 'webhook') OR (webhook_secret IS NOT NULL AND cron_schedule IS NULL AND next_fire_at IS NULL)",
            name=op.f("ck_automation_triggers_webhook_fields"),
        ),
        sa.CheckConstraint(
            "(previous_webhook_secret IS NULL) = (previous_secret_expires_at IS NULL)",
            name=op.f("ck_automation_triggers_previous_secret_expiry"),
        ),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name=op.f("fk_automation_triggers_automation_id_automations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_triggers")),
    )
    op.create_index(
        "ix_automation_triggers_automation_id",
        "automation_triggers",
        ["automation_id"],
        unique=False,
    )
    op.create_index(
        "ix_automation_triggers_next_fire_at", "automation_triggers", ["next_fire_at"], unique=False
    )
    op.create_table(
        "chats",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "waiting",
                "pending",
                "running",
                "paused",
                "completed",
                "error",
                name="chat_status",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("automation_id", sa.Uuid(), nullable=True),
        sa.Column("model_config_id", sa.Uuid(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("pin_order", sa.Integer(), nullable=False),
        sa.Column("parent_chat_id", sa.Uuid(), nullable=True),
        sa.Column("root_chat_id", sa.Uuid(), nullable=True),
        sa.Column(
            "client_type",
            sa.Enum("ui", "api", name="chat_client_type", create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            "last_error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name=op.f("fk_chats_automation_id_automations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_config_id"],
            ["model_configs.id"],
            name=op.f("fk_chats_model_config_id_model_configs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chats_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_chats_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_chat_id"],
            ["chats.id"],
            name=op.f("fk_chats_parent_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["root_chat_id"],
            ["chats.id"],
            name=op.f("fk_chats_root_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chats")),
    )
    op.create_index("ix_chats_automation_id", "chats", ["automation_id"], unique=False)
    op.create_index("ix_chats_labels", "chats", ["labels"], unique=False, postgresql_using="gin")
    op.create_index(op.f("ix_chats_model_config_id"), "chats", ["model_config_id"], unique=False)
    op.create_index(
        "ix_chats_owner_org_updated",
        "chats",
        ["owner_id", "organization_id", "updated_at"],
        unique=False,
    )
    op.create_index("ix_chats_parent_chat_id", "chats", ["parent_chat_id"], unique=False)
    op.create_index("ix_chats_root_chat_id", "chats", ["root_chat_id"], unique=False)
    op.create_index("ix_chats_status", "chats", ["status"], unique=False)
    op.create_table(
        "automation_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("automation_id", sa.Uuid(), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("filter_matched", sa.Boolean(), nullable=True),
        sa.Column(
            "resolved_labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("matched_chat_id", sa.Uuid(), nullable=True),
        sa.Column("created_chat_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "filtered",
                "preview",
                "created",
                "continued",
                "rate_limited",
                "error",
                name="event_status",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("publish_attempts", sa.Integer(), nullable=False),
        sa.Column("last_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status != 'continued' OR matched_chat_id IS NOT NULL",
            name=op.f("ck_automation_events_continued_has_chat"),
        ),
        sa.CheckConstraint(
            "status != 'created' OR created_chat_id IS NOT NULL",
            name=op.f("ck_automation_events_created_has_chat"),
        ),
        sa.CheckConstraint(
            "matched_chat_id IS NULL OR created_chat_id IS NULL",
            name=op.f("ck_automation_events_one_chat_id"),
        ),
        sa.CheckConstraint(
            "occurrences >= 1", name=op.f("ck_automation_events_occurrences_positive")
        ),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name=op.f("fk_automation_events_automation_id_automations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_chat_id"],
            ["chats.id"],
            name=op.f("fk_automation_events_created_chat_id_chats"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["matched_chat_id"],
            ["chats.id"],
            name=op.f("fk_automation_events_matched_chat_id_chats"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["automation_triggers.id"],
            name=op.f("fk_automation_events_trigger_id_automation_triggers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_events")),
        sa.UniqueConstraint(
            "trigger_id", "delivery_id", name=op.f("uq_automation_events_trigger_id_delivery_id")
        ),
    )
    op.create_index(
        "ix_automation_events_automation_received",
        "automation_events",
        ["automation_id", "received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_events_created_chat_id"),
        "automation_events",
        ["created_chat_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_events_matched_chat_id"),
        "automation_events",
        ["matched_chat_id"],
        unique=False,
    )
    op.create_index(
        "ix_automation_events_pending",
        "automation_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_automation_events_rate_limit",
        "automation_events",
        ["automation_id", "received_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('created', 'continued')"),
        sqlite_where=sa.text("status IN ('created', 'continued')"),
    )
    op.create_index(
        "ix_automation_events_received_at", "automation_events", ["received_at"], unique=False
    )
    op.create_index(
        op.f("ix_automation_events_trigger_id"), "automation_events", ["trigger_id"], unique=False
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "system",
                "user",
                "assistant",
                "tool",
                name="chat_message_role",
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
            name=op.f("fk_chat_messages_chat_id_chats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index(
        "ix_chat_messages_chat_created", "chat_messages", ["chat_id", "created_at"], unique=False
    )
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index("ix_chat_messages_chat_created", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index(op.f("ix_automation_events_trigger_id"), table_name="automation_events")
    op.drop_index("ix_automation_events_received_at", table_name="automation_events")
    op.drop_index(
        "ix_automation_events_rate_limit",
        table_name="automation_events",
        postgresql_where=sa.text("status IN ('created', 'continued')"),
        sqlite_where=sa.text("status IN ('created', 'continued')"),
    )
    op.drop_index(
        "ix_automation_events_pending",
        table_name="automation_events",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_automation_events_matched_chat_id"), table_name="automation_events")
    op.drop_index(op.f("ix_automation_events_created_chat_id"), table_name="automation_events")
    op.drop_index("ix_automation_events_automation_received", table_name="automation_events")
    op.drop_table("automation_events")
    op.drop_index("ix_chats_status", table_name="chats")
    op.drop_index("ix_chats_root_chat_id", table_name="chats")
    op.drop_index("ix_chats_parent_chat_id", table_name="chats")
    op.drop_index("ix_chats_owner_org_updated", table_name="chats")
    op.drop_index(op.f("ix_chats_model_config_id"), table_name="chats")
    op.drop_index("ix_chats_labels", table_name="chats", postgresql_using="gin")
    op.drop_index("ix_chats_automation_id", table_name="chats")
    op.drop_table("chats")
    op.drop_index("ix_automation_triggers_next_fire_at", table_name="automation_triggers")
    op.drop_index("ix_automation_triggers_automation_id", table_name="automation_triggers")
    op.drop_table("automation_triggers")
    op.drop_index("ix_automations_organization_id", table_name="automations")
    op.drop_index(op.f("ix_automations_model_config_id"), table_name="automations")
    op.drop_table("automations")
    op.drop_index(op.f("ix_organization_members_user_id"), table_name="organization_members")
    op.drop_table("organization_members")
    op.drop_index(op.f("ix_model_configs_organization_id"), table_name="model_configs")
    op.drop_table("model_configs")
    op.drop_index("ix_audit_logs_resource", table_name="audit_logs")
    op.drop_index(op.f("ix_audit_logs_organization_id"), table_name="audit_logs")
    op.drop_index("ix_audit_logs_created_at", table_name="audit_logs")
    op.drop_index(op.f("ix_audit_logs_actor_id"), table_name="audit_logs")
    op.drop_table("audit_logs")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("site_configs")
    op.drop_table("organizations")
    op.drop_table("encryption_keys")
    # ### end Alembic commands ###

    # PostgreSQL keeps enum types after their tables are dropped.
    for name in (
        "encryption_key_status",
        "site_role",
        "org_role",
        "automation_status",
        "trigger_type",
        "chat_status",
        "chat_client_type",
        "event_status",
        "chat_message_role",
    ):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
