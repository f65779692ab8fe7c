"""webhooks: Exact notifications (mlc_webhook_notification) and subscriptions as last seen (mlc_webhook_subscription)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlc_webhook_notification",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("entity_key", sa.String(length=64), nullable=True),
        sa.Column("event_created_on", sa.String(length=64), nullable=True),
        sa.Column("hash_code", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("emitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant", "hash_code", name="uq_webhook_notification_hash"),
    )
    with op.batch_alter_table("mlc_webhook_notification", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_notification_pending", ["tenant", "division", "emitted_at"], unique=False)
    op.create_table(
        "mlc_webhook_subscription",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "subscription_id"),
    )


def downgrade() -> None:
    op.drop_table("mlc_webhook_subscription")
    with op.batch_alter_table("mlc_webhook_notification", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_notification_pending")
    op.drop_table("mlc_webhook_notification")
