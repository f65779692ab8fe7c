"""posting lease (mlc_post_lease), the claim on a ledger entry in posting, indexes on the ledger's target_ref and
the audit log's run_id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlc_post_lease",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "flow", "scope"),
    )
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_scope", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claim_generation", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("claim_owner", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_ledger_target_ref", ["tenant", "flow", "target_ref"], unique=False)
    with op.batch_alter_table("mlc_audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_run", ["tenant", "flow", "run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mlc_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_run")
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_target_ref")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claim_owner")
        batch_op.drop_column("claim_generation")
        batch_op.drop_column("claim_scope")
    op.drop_table("mlc_post_lease")
