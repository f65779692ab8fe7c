"""The webhook tables: verified Exact notifications and the subscriptions ``mlc exact webhooks`` last saw.

They live in the store (below ``ml_connector.webhooks``, which reads and writes them) so the store never imports the
webhook code; ``store.models`` imports this module to register them on ``Base.metadata``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ml_connector.store.base import Base
from ml_connector.store.types import UTCDateTime, utcnow


class WebhookNotification(Base):
    """One verified Exact notification. ``emitted_at`` is set once the asset watcher turned it into an asset event."""

    __tablename__ = "mlc_webhook_notification"
    __table_args__ = (
        UniqueConstraint("tenant", "hash_code", name="uq_webhook_notification_hash"),
        Index("ix_webhook_notification_pending", "tenant", "division", "emitted_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    division: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(16))
    entity_key: Mapped[str | None] = mapped_column(String(64))
    event_created_on: Mapped[str | None] = mapped_column(String(64))
    hash_code: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    emitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookSubscriptionRecord(Base):
    """A subscription at Exact as ``mlc exact webhooks`` last saw it."""

    __tablename__ = "mlc_webhook_subscription"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    division: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
