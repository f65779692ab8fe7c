"""initial connector tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "mlc_audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("source_ref", sa.String(length=128), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_ref", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mlc_audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_source", ["tenant", "flow", "source_id"], unique=False)

    op.create_table(
        "mlc_code_map",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source_value", sa.String(length=255), nullable=False),
        sa.Column("target_value", sa.String(length=255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "kind", "source_value", name="uq_code_map"),
    )
    op.create_table(
        "mlc_cursor",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "flow", "scope"),
    )
    op.create_table(
        "mlc_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("source_ref", sa.String(length=128), nullable=True),
        sa.Column("division", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("staged_hash", sa.String(length=64), nullable=True),
        sa.Column("posted_hash", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_ref", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.String(length=250), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "flow", "source_id", name="uq_ledger_source"),
    )
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_state", ["tenant", "flow", "state"], unique=False)

    op.create_table(
        "mlc_oauth_state",
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state"),
    )
    op.create_table(
        "mlc_staged_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "flow", "source_id", "payload_hash", name="uq_staged_version"),
    )
    with op.batch_alter_table("mlc_staged_record", schema=None) as batch_op:
        batch_op.create_index("ix_staged_source", ["tenant", "flow", "source_id"], unique=False)

    op.create_table(
        "mlc_token",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("conn_id", sa.String(length=250), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("access_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refresh_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_calls_today", sa.Integer(), nullable=False),
        sa.Column("token_calls_day", sa.String(length=10), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "conn_id"),
    )
    op.create_table(
        "mlc_vendor_map",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=False),
        sa.Column("exact_account_id", sa.String(length=36), nullable=True),
        sa.Column("exact_code", sa.String(length=32), nullable=True),
        sa.Column("jaggaer_supplier_id", sa.String(length=64), nullable=True),
        sa.Column("jaggaer_supplier_number", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("vat_number", sa.Text(), nullable=True),
        sa.Column("vat_bidx", sa.String(length=64), nullable=True),
        sa.Column("coc_number", sa.Text(), nullable=True),
        sa.Column("coc_bidx", sa.String(length=64), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "division", "exact_account_id", name="uq_vendor_exact"),
        sa.UniqueConstraint("tenant", "division", "jaggaer_supplier_id", name="uq_vendor_jaggaer"),
    )
    with op.batch_alter_table("mlc_vendor_map", schema=None) as batch_op:
        batch_op.create_index("ix_vendor_coc", ["tenant", "coc_bidx"], unique=False)
        batch_op.create_index("ix_vendor_codes", ["tenant", "exact_code", "jaggaer_supplier_number"], unique=False)
        batch_op.create_index("ix_vendor_vat", ["tenant", "vat_bidx"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("mlc_vendor_map", schema=None) as batch_op:
        batch_op.drop_index("ix_vendor_vat")
        batch_op.drop_index("ix_vendor_codes")
        batch_op.drop_index("ix_vendor_coc")

    op.drop_table("mlc_vendor_map")
    op.drop_table("mlc_token")
    with op.batch_alter_table("mlc_staged_record", schema=None) as batch_op:
        batch_op.drop_index("ix_staged_source")

    op.drop_table("mlc_staged_record")
    op.drop_table("mlc_oauth_state")
    with op.batch_alter_table("mlc_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_state")

    op.drop_table("mlc_ledger")
    op.drop_table("mlc_cursor")
    op.drop_table("mlc_code_map")
    with op.batch_alter_table("mlc_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_source")
        batch_op.drop_index("ix_audit_at")

    op.drop_table("mlc_audit_log")
