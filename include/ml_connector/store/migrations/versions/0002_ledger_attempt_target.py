"""ledger: where the unresolved write was sent (attempt_division, attempt_target)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_division", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "attempt_target",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.drop_column("attempt_target")
        batch_op.drop_column("attempt_division")
