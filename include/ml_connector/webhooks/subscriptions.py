"""The tenant's Exact webhook subscriptions (``webhooks/WebhookSubscriptions``), per pinned division.

Only properties of Exact's published reference are sent: ``CallbackURL`` and ``Topic`` on POST, ``ID``,
``CallbackURL``, ``Topic``, ``Division`` in ``$select``. ``subscribe`` is idempotent: a subscription of the same
topic and callback URL is kept as it is. Every call stores what it saw (``webhooks.store.save_subscriptions``) for
``mlc status`` and the status page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from ml_connector import http
from ml_connector.exact import odata
from ml_connector.exact.client import ExactClient
from ml_connector.webhooks import TOPIC
from ml_connector.webhooks import store as wstore

ENDPOINT = "webhooks/WebhookSubscriptions"
SELECT = "ID,CallbackURL,Topic,Division"


@dataclass
class Change:
    division: int
    action: str  # created | kept | deleted | listed
    subscription_id: str
    topic: str
    callback_url: str


def _rows(client: ExactClient, division: int) -> list[dict[str, Any]]:
    return list(client.iter_collection(division, ENDPOINT, select=SELECT))


def _ctx(client: ExactClient, action: str) -> http.AuditContext:
    return http.AuditContext(tenant=client.tenant, flow="po_push", action=action)


def list_subscriptions(client: ExactClient, engine: Engine, divisions: list[int]) -> list[Change]:
    out = []
    for division in divisions:
        rows = _rows(client, division)
        wstore.save_subscriptions(engine, client.tenant, division, rows)
        out += [Change(division, "listed", str(r["ID"]), str(r.get("Topic")), str(r.get("CallbackURL"))) for r in rows]
    return out


def subscribe(
    client: ExactClient, engine: Engine, divisions: list[int], callback_url: str, topic: str = TOPIC
) -> list[Change]:
    out = []
    for division in divisions:
        rows = _rows(client, division)
        same = [r for r in rows if r.get("Topic") == topic and r.get("CallbackURL") == callback_url]
        if same:
            out.append(Change(division, "kept", str(same[0]["ID"]), topic, callback_url))
        else:
            created = client.post(
                division,
                ENDPOINT,
                {"CallbackURL": callback_url, "Topic": topic},
                audit_ctx=_ctx(client, "webhook_subscribe"),
            )
            rows.append(created)
            out.append(Change(division, "created", str(created.get("ID")), topic, callback_url))
        wstore.save_subscriptions(engine, client.tenant, division, rows)
    return out


def unsubscribe(
    client: ExactClient, engine: Engine, divisions: list[int], callback_url: str | None, topic: str = TOPIC
) -> list[Change]:
    """Delete the tenant's subscriptions of ``topic`` (only those to ``callback_url`` when given)."""
    out = []
    for division in divisions:
        rows = _rows(client, division)
        keep = []
        for r in rows:
            if r.get("Topic") == topic and (callback_url is None or r.get("CallbackURL") == callback_url):
                client.delete(
                    division, f"{ENDPOINT}({odata.guid(str(r['ID']))})", audit_ctx=_ctx(client, "webhook_unsubscribe")
                )
                out.append(Change(division, "deleted", str(r["ID"]), topic, str(r.get("CallbackURL"))))
            else:
                keep.append(r)
        wstore.save_subscriptions(engine, client.tenant, division, keep)
    return out
