"""Full body of a pending event whose stored payload was truncated (SPEC 4.4).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:09:00.896178
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.add_column('automation_events', sa.Column('pending_payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))



def downgrade() -> None:

    op.drop_column('automation_events', 'pending_payload')

