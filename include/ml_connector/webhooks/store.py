"""Webhook tables: every verified notification (stored before the receiver answers 200, one row per HashCode) and
the tenant's subscriptions as last seen at Exact (for ``mlc status`` and the status page without a live call)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog
from ml_connector.store.types import utcnow
from ml_connector.store.webhook_tables import WebhookNotification, WebhookSubscriptionRecord

FLOW = "po_push"


def _audit(tenant: str, division: int | None, key: str | None, outcome: str, message: str) -> AuditLog:
    return AuditLog(
        tenant=tenant,
        flow=FLOW,
        action="webhook_notification",
        division=division,
        source_id=(key or "")[:64] or None,
        method="POST",
        outcome=outcome,
        message=message[:2000],
    )


def store_notification(engine: Engine, tenant: str, hash_code: str, content: dict[str, Any]) -> bool:
    """Store a verified notification with its audit row, in one transaction; ``False`` when this HashCode was stored
    before (a duplicate delivery or a replay: audited, nothing else)."""
    division = int(content["Division"])
    key = str(content.get("Key") or "") or None
    action = str(content.get("Action") or "")[:16] or None
    row = WebhookNotification(
        tenant=tenant,
        division=division,
        topic=str(content.get("Topic") or "")[:64],
        action=action,
        entity_key=(key or "")[:64] or None,
        event_created_on=str(content.get("EventCreatedOn") or "")[:64] or None,
        hash_code=hash_code,
    )
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.add(_audit(tenant, division, key, "stored", f"{row.topic} {action} stored"))
        return True
    except IntegrityError:
        with session_scope(engine) as session:
            session.add(_audit(tenant, division, key, "duplicate", f"{row.topic} {action}: seen before, ignored"))
        return False


def audit_refusal(engine: Engine, tenant: str, message: str) -> None:
    """An audit row for a refused request (bad or missing HashCode, unusable body): nothing else is stored."""
    with session_scope(engine) as session:
        session.add(_audit(tenant, None, None, "refused", message))


def pending(engine: Engine, tenant: str, division: int, limit: int = 500) -> list[WebhookNotification]:
    """Notifications not yet turned into an asset event, oldest first."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(WebhookNotification)
            .where(
                WebhookNotification.tenant == tenant,
                WebhookNotification.division == int(division),
                WebhookNotification.emitted_at.is_(None),
            )
            .order_by(WebhookNotification.id)
            .limit(limit)
        )
        out = list(rows)
        session.expunge_all()
        return out


def mark_emitted(engine: Engine, ids: list[int]) -> None:
    if not ids:
        return
    with session_scope(engine) as session:
        session.execute(update(WebhookNotification).where(WebhookNotification.id.in_(ids)).values(emitted_at=utcnow()))


@dataclass
class Summary:
    received: int
    waiting: int
    last_received: datetime | None


def summary(engine: Engine, tenant: str) -> Summary:
    with session_scope(engine) as session:
        received, last = session.execute(
            select(func.count(), func.max(WebhookNotification.received_at)).where(WebhookNotification.tenant == tenant)
        ).one()
        waiting = session.scalar(
            select(func.count()).where(WebhookNotification.tenant == tenant, WebhookNotification.emitted_at.is_(None))
        )
        return Summary(int(received or 0), int(waiting or 0), last)


def save_subscriptions(engine: Engine, tenant: str, division: int, rows: list[dict[str, Any]]) -> None:
    """Replace the stored subscriptions of one division with ``rows`` (Exact's ``ID``, ``Topic``, ``CallbackURL``)."""
    with session_scope(engine) as session:
        session.execute(
            delete(WebhookSubscriptionRecord).where(
                WebhookSubscriptionRecord.tenant == tenant, WebhookSubscriptionRecord.division == int(division)
            )
        )
        for r in rows:
            session.add(
                WebhookSubscriptionRecord(
                    tenant=tenant,
                    subscription_id=str(r["ID"]),
                    division=int(division),
                    topic=str(r.get("Topic") or ""),
                    callback_url=str(r.get("CallbackURL") or ""),
                )
            )


def subscriptions(engine: Engine, tenant: str) -> list[WebhookSubscriptionRecord]:
    with session_scope(engine) as session:
        rows = list(
            session.scalars(
                select(WebhookSubscriptionRecord)
                .where(WebhookSubscriptionRecord.tenant == tenant)
                .order_by(WebhookSubscriptionRecord.division, WebhookSubscriptionRecord.topic)
            )
        )
        session.expunge_all()
        return rows


def status_lines(engine: Engine, tenant: str) -> list[str]:
    """What ``mlc status`` and the status page say about a tenant's webhooks (stored state only)."""
    try:
        subs = subscriptions(engine, tenant)
        s = summary(engine, tenant)
    except Exception as exc:  # table missing (database not upgraded) or unreachable: say so, do not fail status
        return [f"webhooks: unknown ({type(exc).__name__}; run mlc db upgrade?)"]
    if not subs:
        lines = ["webhooks: no subscriptions (mlc exact webhooks subscribe); the schedule alone pushes POs"]
    else:
        lines = [f"webhooks: division {x.division} {x.topic} -> {x.callback_url}" for x in subs]
    last = s.last_received.isoformat(timespec="seconds") if s.last_received else "-"
    lines.append(f"notifications received: {s.received} (last {last}); waiting for a run: {s.waiting}")
    return lines
