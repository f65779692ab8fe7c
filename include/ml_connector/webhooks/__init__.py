"""Exact Online webhooks: signed notifications drive the PO push through Airflow assets.

- ``signing``: the HashCode check (HMAC-SHA256 of the raw Content text, constant-time compare).
- ``store``: notifications kept durably (before the receiver answers 200), deduplicated; subscriptions as last seen.
- ``ml_connector.web.webhooks``: the receiver route of the plugin's FastAPI app.
- ``trigger``: the ``AssetWatcher`` trigger (triggerer) that turns stored notifications into asset events.
- ``subscriptions``: ``webhooks/WebhookSubscriptions`` calls behind ``mlc exact webhooks``.

One asset per tenant and division (:func:`asset_uri`); the PO-push DAG is scheduled on its cron OR these assets.
"""

from __future__ import annotations

TOPIC = "PurchaseOrders"
SECRET_FIELD = "webhook_secret"  # extra of the tenant's exact_online connection
RECEIVER_PATH = "/ml-connector/webhooks/exact/{tenant}"


def asset_uri(tenant: str, division: int) -> str:
    return f"exact://{tenant}/{int(division)}/purchase-orders"


def asset_name(tenant: str, division: int) -> str:
    return f"exact_purchase_orders__{tenant}__{int(division)}"


def division_of_uri(uri: str) -> int | None:
    """The division of an :func:`asset_uri` (``None`` for any other URI)."""
    if not uri.startswith("exact://"):
        return None
    parts = uri[len("exact://") :].split("/")
    if len(parts) == 3 and parts[1].isdigit() and parts[2] == "purchase-orders":
        return int(parts[1])
    return None


def callback_url(base_url: str, tenant: str) -> str:
    """The receiver's address under an Airflow base URL (``https://airflow.example.com``)."""
    return base_url.rstrip("/") + RECEIVER_PATH.format(tenant=tenant)
