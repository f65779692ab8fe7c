"""reconciliation: JAGGAER ⇄ Exact reconciliations per tenant, division and period (mlc_reconciliation)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mlc_reconciliation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=False),
        sa.Column("date_from", sa.String(length=10), nullable=False),
        sa.Column("date_to", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=250), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("off", sa.Integer(), nullable=False),
        sa.Column("exact_calls", sa.Integer(), nullable=False),
        sa.Column("jaggaer_calls", sa.Integer(), nullable=False),
        sa.Column("rows", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mlc_reconciliation", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_latest", ["tenant", "division", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mlc_reconciliation", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_latest")
    op.drop_table("mlc_reconciliation")
