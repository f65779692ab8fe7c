"""Exact webhooks over real HTTP: the sandbox's subscriptions and signed notifications, our subscription calls, the
receiver route (served by uvicorn on loopback, notifications stored in a migrated SQLite store) and the asset
watcher's trigger reading that store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from exact_hook_support import connect, wait_until
from fastapi import FastAPI
from sqlalchemy import func, select

from ml_connector.errors import RejectedError
from ml_connector.store.models import AuditLog
from ml_connector.webhooks import signing, subscriptions
from ml_connector.webhooks import store as wstore
from ml_connector.webhooks.store import WebhookNotification
from sandbox.common.server import ServerThread
from sandbox.exact.settings import DEMO_WEBHOOK_SECRET
from sandbox.exact.webhooks import body_text

TENANT = "demo"
DIVISION = 111111
SUPPLIER = "1009"


@pytest.fixture
def receiver(sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch, exact_sandbox: Any) -> Iterator[str]:
    """The receiver route of the plugin app under /ml-connector, on a real port; returns the demo tenant's URL."""
    from ml_connector.web import webhooks as web_webhooks

    monkeypatch.setenv("MLC_DB_URL", sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXACT_DEMO",
        json.dumps(
            {
                "conn_type": "exact_online",
                "host": exact_sandbox.url,
                "login": "mlc-demo-client",
                "password": "mlc-demo-secret",
                "extra": {"sandbox": True, "webhook_secret": DEMO_WEBHOOK_SECRET},
            }
        ),
    )
    web_webhooks._SECRETS.clear()
    app = FastAPI()
    web_webhooks.install(app)
    root = FastAPI()
    root.mount("/ml-connector", app)
    server = ServerThread(root)
    base = server.start()
    try:
        yield f"{base}/ml-connector/webhooks/exact/{TENANT}"
    finally:
        server.stop()
        web_webhooks._SECRETS.clear()


@pytest.fixture
def client(make_client: Any, sqlite_engine: Any, exact_sandbox: Any) -> Any:
    c = make_client(sqlite_engine)
    connect(c, exact_sandbox)
    exact_sandbox.settings(webhook_allow_http=True)
    return c


def _stored(engine: Any) -> list[WebhookNotification]:
    with engine.connect() as conn:
        return list(conn.execute(select(WebhookNotification).order_by(WebhookNotification.id)))


def _audit(engine: Any, outcome: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).where(AuditLog.action == "webhook_notification", AuditLog.outcome == outcome)
            )
        )


def _signed(key: str, secret: str = DEMO_WEBHOOK_SECRET, division: int = DIVISION) -> bytes:
    content = {
        "Topic": "PurchaseOrders",
        "ClientId": "mlc-demo-client",
        "Division": division,
        "Action": "Create",
        "Key": key,
        "ExactOnlineEndpoint": f"https://start.exactonline.co.uk/api/v1/{division}/purchaseorder/PurchaseOrders",
        "EventCreatedOn": "2026-12-07T10:00:00.000Z",
    }
    return body_text(content, secret).encode()


def _order(exact_sandbox: Any, division: int = DIVISION) -> str:
    return exact_sandbox.create_po(
        division=division,
        SupplierCode=SUPPLIER,
        PurchaseOrderLines=[{"ItemCode": "CP-M8X25-HT", "QuantityInPurchaseUnits": 2}],
    )["PurchaseOrderID"]


def test_subscribe_is_idempotent_and_listed_unsubscribe_removes(
    client: Any, sqlite_engine: Any, receiver: str, exact_sandbox: Any
) -> None:
    first = subscriptions.subscribe(client, sqlite_engine, [DIVISION, 222222], receiver)
    assert [c.action for c in first] == ["created", "created"]
    again = subscriptions.subscribe(client, sqlite_engine, [DIVISION, 222222], receiver)
    assert [c.action for c in again] == ["kept", "kept"]
    assert [c.subscription_id for c in again] == [c.subscription_id for c in first]
    listed = subscriptions.list_subscriptions(client, sqlite_engine, [DIVISION])
    assert [(c.topic, c.callback_url) for c in listed] == [("PurchaseOrders", receiver)]
    assert len(wstore.subscriptions(sqlite_engine, TENANT)) == 2
    lines = wstore.status_lines(sqlite_engine, TENANT)
    assert any(f"division {DIVISION} PurchaseOrders -> {receiver}" in x for x in lines), lines
    gone = subscriptions.unsubscribe(client, sqlite_engine, [DIVISION, 222222], None)
    assert {c.action for c in gone} == {"deleted"} and len(gone) == 2
    assert subscriptions.list_subscriptions(client, sqlite_engine, [DIVISION, 222222]) == []
    assert wstore.subscriptions(sqlite_engine, TENANT) == []


def test_exact_refuses_an_http_callback_by_default(client: Any, sqlite_engine: Any, exact_sandbox: Any) -> None:
    exact_sandbox.settings(webhook_allow_http=False)
    with pytest.raises(RejectedError, match="https"):
        subscriptions.subscribe(client, sqlite_engine, [DIVISION], "http://127.0.0.1:9/hook")


def test_created_changed_deleted_orders_arrive_signed_and_stored_once_each(
    client: Any, sqlite_engine: Any, receiver: str, exact_sandbox: Any
) -> None:
    subscriptions.subscribe(client, sqlite_engine, [DIVISION], receiver)
    exact_sandbox.settings(webhook_duplicates=2, webhook_shuffle_s=0.5)  # at-least-once, any order
    ids = [_order(exact_sandbox) for _ in range(5)]
    exact_sandbox.modify_po(ids[0], Description="changed")
    exact_sandbox.delete_po(ids[1])
    _order(exact_sandbox, division=222222)  # not subscribed: nothing sent

    def delivered() -> bool:
        view = requests.get(f"{exact_sandbox.url}/_admin/webhooks", timeout=5).json()
        return view["pending"] == 0 and len(view["deliveries"]) == 7 * 3

    assert wait_until(delivered, timeout=20)
    view = requests.get(f"{exact_sandbox.url}/_admin/webhooks", timeout=5).json()
    assert {d["status"] for d in view["deliveries"]} == {200}
    rows = _stored(sqlite_engine)
    assert sorted((r.action, r.entity_key) for r in rows) == sorted(
        [("Create", i) for i in ids] + [("Update", ids[0]), ("Delete", ids[1])]
    )
    assert {r.division for r in rows} == {DIVISION}
    assert _audit(sqlite_engine, "stored") == 7 and _audit(sqlite_engine, "duplicate") == 14


def test_a_wrong_hashcode_is_refused_with_401_and_nothing_stored(
    client: Any, sqlite_engine: Any, receiver: str, exact_sandbox: Any
) -> None:
    subscriptions.subscribe(client, sqlite_engine, [DIVISION], receiver)
    requests.post(f"{exact_sandbox.url}/_admin/webhooks", json={"bad_signature_next": 1}, timeout=5)
    _order(exact_sandbox)

    def delivered() -> bool:
        return bool(requests.get(f"{exact_sandbox.url}/_admin/webhooks", timeout=5).json()["deliveries"])

    assert wait_until(delivered, timeout=10)
    deliveries = requests.get(f"{exact_sandbox.url}/_admin/webhooks", timeout=5).json()["deliveries"]
    assert [d["status"] for d in deliveries] == [401]
    # unsigned, signed with another secret, and a HashCode of other bytes: all 401
    r = requests.post(receiver, data=b'{"Content":{"Division":111111},"HashCode":""}', timeout=5)
    assert r.status_code == 401
    assert requests.post(receiver, data=_signed("x", secret="other"), timeout=5).status_code == 401
    tampered = _signed("y").replace(b'"Key":"y"', b'"Key":"z"')
    assert requests.post(receiver, data=tampered, timeout=5).status_code == 401
    assert requests.post(receiver, data=b"not json", timeout=5).status_code == 401
    assert _stored(sqlite_engine) == []
    assert _audit(sqlite_engine, "refused") == 5
    assert wstore.pending(sqlite_engine, TENANT, DIVISION) == []


def test_a_replayed_body_with_a_valid_signature_is_ignored(receiver: str, sqlite_engine: Any) -> None:
    body = _signed("3c5e1c1e-0000-4000-8000-000000000001")
    first = requests.post(receiver, data=body, timeout=5)
    replay = requests.post(receiver, data=body, timeout=5)
    assert (first.status_code, first.json()) == (200, {"stored": True})
    assert (replay.status_code, replay.json()) == (200, {"stored": False})
    assert len(_stored(sqlite_engine)) == 1
    assert _audit(sqlite_engine, "duplicate") == 1


def test_an_oversized_body_is_refused_with_413_and_nothing_stored(receiver: str, sqlite_engine: Any) -> None:
    from ml_connector.web.webhooks import MAX_BODY_BYTES

    content = {"Topic": "PurchaseOrders", "Division": DIVISION, "Key": "k", "Padding": "x" * MAX_BODY_BYTES}
    big = body_text(content, DEMO_WEBHOOK_SECRET).encode()  # validly signed, only too big
    assert requests.post(receiver, data=big, timeout=5).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming too
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    assert requests.post(receiver, data=chunks(), timeout=5).status_code == 413
    assert _stored(sqlite_engine) == []


def test_unknown_tenant_and_foreign_division_are_refused(receiver: str, sqlite_engine: Any) -> None:
    other = receiver.replace(f"/exact/{TENANT}", "/exact/nosuchtenant")
    assert requests.post(other, data=_signed("k1"), timeout=5).status_code == 404
    assert requests.post(receiver, data=_signed("k2", division=999999), timeout=5).status_code == 422
    assert _stored(sqlite_engine) == []


def test_the_rate_is_bounded_per_tenant(receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_connector.web import webhooks as web_webhooks

    monkeypatch.setattr(web_webhooks, "RATE_BURST", 3.0)
    monkeypatch.setattr(web_webhooks, "RATE_PER_S", 0.01)
    statuses = [requests.post(receiver, data=b"x", timeout=5).status_code for _ in range(6)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429, 429]


def test_signature_is_over_the_raw_content_text() -> None:
    content_text = '{"Topic":"PurchaseOrders", "Division":111111,"Key":"a"}'  # spacing as sent, not re-serialised
    code = signing.hash_code(content_text, "s")
    note = signing.verify(('{"Content":' + content_text + ',"HashCode":"' + code + '"}').encode(), "s")
    assert note.division == 111111 and note.hash_code == code
    with pytest.raises(signing.BadSignature):
        signing.verify(('{"Content":' + content_text + ',"HashCode":"' + code.lower()[:-1] + '0"}').encode(), "s")
    with pytest.raises(signing.BadSignature):
        signing.verify(('{"Content":' + content_text + ',"HashCode":"' + code + '"}').encode(), "")


def test_trigger_turns_stored_notifications_into_one_event_and_marks_them(receiver: str, sqlite_engine: Any) -> None:
    from ml_connector.webhooks.trigger import ExactNotificationTrigger

    for i in range(3):
        assert requests.post(receiver, data=_signed(f"key-{i}"), timeout=5).status_code == 200
    trigger = ExactNotificationTrigger(tenant=TENANT, division=DIVISION, poll_interval=0.05)
    assert trigger.serialize() == (
        "ml_connector.webhooks.trigger.ExactNotificationTrigger",
        {"tenant": TENANT, "division": DIVISION, "poll_interval": 0.05},
    )

    async def first_event_then_quiet() -> tuple[Any, bool]:
        gen = trigger.run()
        event = await asyncio.wait_for(gen.__anext__(), timeout=10)
        try:
            await asyncio.wait_for(gen.__anext__(), timeout=0.5)  # marks the three, then finds nothing more
            more = True
        except TimeoutError:
            more = False
        await gen.aclose()
        return event, more

    event, more = asyncio.run(first_event_then_quiet())
    assert event.payload["notifications"] == 3 and event.payload["division"] == DIVISION
    assert not more
    assert wstore.pending(sqlite_engine, TENANT, DIVISION) == []
    assert wstore.summary(sqlite_engine, TENANT).received == 3


def test_a_replay_after_the_event_was_made_makes_no_second_event(receiver: str, sqlite_engine: Any) -> None:
    """A replayed (validly signed) notification whose event was already made leaves nothing for the watcher: no
    second asset event, so no run and nothing posted."""
    from ml_connector.webhooks.trigger import ExactNotificationTrigger

    body = _signed("3c5e1c1e-0000-4000-8000-000000000002")
    assert requests.post(receiver, data=body, timeout=5).json() == {"stored": True}
    trigger = ExactNotificationTrigger(tenant=TENANT, division=DIVISION, poll_interval=0.05)

    async def events(replay_between: bool) -> int:
        gen = trigger.run()
        n = 0
        try:
            while True:
                await asyncio.wait_for(gen.__anext__(), timeout=0.5 if n else 10)
                n += 1
                if replay_between:
                    await asyncio.to_thread(requests.post, receiver, data=body, timeout=5)
        except TimeoutError:
            return n
        finally:
            await gen.aclose()

    assert asyncio.run(events(replay_between=True)) == 1  # the replay arrived after the event: ignored
    assert requests.post(receiver, data=body, timeout=5).json() == {"stored": False}
    assert wstore.pending(sqlite_engine, TENANT, DIVISION) == []
    assert _audit(sqlite_engine, "duplicate") == 2
