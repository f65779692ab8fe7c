"""Webhooks of the Exact sandbox: ``webhooks/WebhookSubscriptions`` and a background sender of signed notifications.

Exact (docs/po-push.md): an app subscribes per division (``CallbackURL``, ``Topic``); on a change Exact POSTs
``{"Content": {Topic, ClientId, Division, Action, Key, ExactOnlineEndpoint, EventCreatedOn}, "HashCode": H}`` where
``H`` is the upper-case hex HMAC-SHA256 of the raw ``Content`` JSON text keyed with the app's webhook secret. Exact
delivers to https callbacks only; retries and ordering are undocumented ([guess] at-least-once, any order).

The sandbox sends from one daemon thread (the API call that made the change is never blocked). Switches
(``ExactSettings``): ``webhook_allow_http`` (loopback tests), ``webhook_delay_s`` (delayed delivery),
``webhook_duplicates`` (extra copies of every notification), ``webhook_shuffle_s`` (out-of-order: each copy leaves
at a random moment within that window), ``webhook_drop_all`` (nothing leaves: a receiver that is down). One-shot
faults (``POST /_admin/webhooks`` ``{"drop_next": n, "bad_signature_next": n}``) drop or mis-sign the next n
notifications. ``GET /_admin/webhooks`` lists the subscriptions and every delivery attempt.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

log = logging.getLogger(__name__)

TOPIC_ENDPOINTS = {"PurchaseOrders": "purchaseorder/PurchaseOrders"}


def sign(content_text: str, secret: str) -> str:
    """Exact's ``HashCode``: HMAC-SHA256 of the raw Content JSON text, upper-case hex."""
    return hmac.new(secret.encode(), content_text.encode(), hashlib.sha256).hexdigest().upper()


def body_text(content: dict[str, Any], secret: str, *, bad_signature: bool = False) -> str:
    content_text = json.dumps(content, separators=(",", ":"))
    code = sign(content_text, secret + ("x" if bad_signature else ""))
    return '{"Content":' + content_text + ',"HashCode":"' + code + '"}'


@dataclass
class Subscription:
    id: str
    division: int
    client_id: str
    user_id: str
    callback_url: str
    topic: str
    base: str  # the sandbox's public base, for ExactOnlineEndpoint
    created: int
    description: str = ""

    def row(self, creator_name: str) -> dict[str, Any]:
        return {
            "ID": self.id,
            "CallbackURL": self.callback_url,
            "Topic": self.topic,
            "ClientID": self.client_id,
            "Division": self.division,
            "UserID": self.user_id,
            "Created": self.created,
            "Creator": self.user_id,
            "CreatorFullName": creator_name,
            "Description": self.description or f"{self.topic} -> {self.callback_url}",
        }


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    url: str = field(compare=False)
    body: str = field(compare=False)
    meta: dict[str, Any] = field(compare=False)


class WebhookHub:
    """Subscriptions of every app and division, and the sender thread."""

    def __init__(self, settings: Callable[[], Any], secret_of: Callable[[str], str | None]) -> None:
        self._settings = settings
        self._secret_of = secret_of
        self.lock = threading.Lock()
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.drop_next = 0
        self.bad_signature_next = 0
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._wake = threading.Condition(self.lock)
        self._rng = random.Random(7)
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._session.trust_env = False

    # ---- subscriptions ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.subscriptions.clear()
            self.deliveries.clear()
            self._heap.clear()
            self.drop_next = self.bad_signature_next = 0

    def of(self, client_id: str, division: int) -> list[Subscription]:
        with self.lock:
            return [s for s in self.subscriptions.values() if s.client_id == client_id and s.division == division]

    def add(self, sub: Subscription) -> None:
        with self.lock:
            self.subscriptions[sub.id] = sub

    def remove(self, sub_id: str) -> Subscription | None:
        with self.lock:
            return self.subscriptions.pop(sub_id, None)

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    # ---- notifications ---------------------------------------------------------------------------------------
    def notify(self, division: int, topic: str, action: str, key: str) -> None:
        """Queue a notification for every subscription of ``topic`` in ``division`` (called under the store's
        lock by every change; returns at once)."""
        s = self._settings()
        now = time.monotonic()
        created_on = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self.lock:
            subs = [x for x in self.subscriptions.values() if x.division == division and x.topic == topic]
            for sub in subs:
                secret = self._secret_of(sub.client_id) or ""
                content = {
                    "Topic": topic,
                    "ClientId": sub.client_id,
                    "Division": division,
                    "Action": action,
                    "Key": key,
                    "ExactOnlineEndpoint": f"{sub.base}/api/v1/{division}/{TOPIC_ENDPOINTS.get(topic, topic)}"
                    f"(guid'{key}')",
                    "EventCreatedOn": created_on,
                }
                meta = {"division": division, "action": action, "key": key, "subscription": sub.id}
                if s.webhook_drop_all or self.drop_next > 0:
                    if not s.webhook_drop_all:
                        self.drop_next -= 1
                    self.deliveries.append({**meta, "status": "dropped"})
                    continue
                bad = self.bad_signature_next > 0
                if bad:
                    self.bad_signature_next -= 1
                body = body_text(content, secret, bad_signature=bad)
                for _ in range(1 + max(0, int(s.webhook_duplicates))):
                    due = now + float(s.webhook_delay_s) + self._rng.uniform(0, float(s.webhook_shuffle_s))
                    heapq.heappush(self._heap, _Pending(due, next(self._seq), sub.callback_url, body, meta))
            if subs:
                self._ensure_thread()
                self._wake.notify()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="exact-sandbox-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._heap or self._heap[0].due > time.monotonic():
                    timeout = None if not self._heap else max(0.0, self._heap[0].due - time.monotonic())
                    self._wake.wait(timeout)
                item = heapq.heappop(self._heap)
            status: Any
            try:
                r = self._session.post(
                    item.url, data=item.body.encode(), headers={"Content-Type": "application/json"}, timeout=10
                )
                status = r.status_code
            except requests.RequestException as exc:
                status = f"error: {type(exc).__name__}"
            with self.lock:
                self.deliveries.append({**item.meta, "status": status, "at": time.time()})

    def pending(self) -> int:
        with self.lock:
            return len(self._heap)

    def view(self) -> dict[str, Any]:
        with self.lock:
            return {
                "subscriptions": [s.row("") for s in self.subscriptions.values()],
                "deliveries": list(self.deliveries),
                "pending": len(self._heap),
                "drop_next": self.drop_next,
                "bad_signature_next": self.bad_signature_next,
            }
