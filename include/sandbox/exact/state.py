"""The Exact sandbox's state: :class:`ExactState` (settings, clock, store, OAuth server, limits, faults, call log,
webhooks, the served entity sets).

The routers (``oauth_routes``, ``rest``, ``admin``) and the REST handlers work on it; ``app`` builds the app over it.
Nothing here imports a router or the app, so the app and its routers form no import cycle."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from sandbox.common.calls import CallLog
from sandbox.common.clock import Clock
from sandbox.common.faults import FaultInjector, FaultRule
from sandbox.exact.entities import build_sets
from sandbox.exact.limits import ErrorBudget, RateLimiter
from sandbox.exact.oauth import OAuthServer
from sandbox.exact.settings import ExactSettings
from sandbox.exact.store import ExactStore
from sandbox.exact.webhooks import WebhookHub


class ExactState:
    """Everything the Exact sandbox knows; the store's lock serialises the data."""

    def __init__(self, settings: ExactSettings | dict[str, Any] | None = None, clock: Clock | None = None) -> None:
        if isinstance(settings, dict):
            settings = ExactSettings.model_validate(settings)
        self._settings = settings or ExactSettings()
        self._initial_settings = self._settings.model_copy(deep=True)
        self.clock = clock or Clock()
        self.store = ExactStore(self.clock)
        self.oauth = OAuthServer(self.clock, self.settings)
        self.limiter = RateLimiter(self.clock, self.settings)
        self.budget = ErrorBudget(self.clock, self.settings)
        self.faults = FaultInjector()
        self.calls = CallLog(clock=self.clock)
        self.sets = build_sets()
        self.webhooks = WebhookHub(self.settings, self._webhook_secret)
        self.store.reset()
        self.store.on_po_change = lambda division, action, key: self.webhooks.notify(
            division, "PurchaseOrders", action, key
        )

    def settings(self) -> ExactSettings:
        return self._settings

    def patch_settings(self, patch: dict[str, Any]) -> dict[str, Any]:
        merged = {**self._settings.model_dump(), **patch}
        self._settings = ExactSettings.model_validate(merged)
        return self._settings.model_dump(mode="json")

    def reset(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        if params.get("settings", True):
            self._settings = self._initial_settings.model_copy(deep=True)
        # A shared clock (``mlc sandbox``: one clock for Exact and JAGGAER) is only reset when asked explicitly
        # (``"clock": true``); resetting Exact must not move JAGGAER's time.
        if params.get("clock", not self.clock.shared):
            self.clock.reset()
        self.oauth.reset()
        self.limiter.reset()
        self.budget.reset()
        self.faults.clear()
        self.calls.reset()
        self.webhooks.reset()  # before the store: re-seeding notifies no one
        return self.store.reset(params)

    def _webhook_secret(self, client_id: str) -> str | None:
        app = self._settings.apps.get(client_id)
        return app.webhook_secret if app is not None else None

    def state(self) -> dict[str, Any]:
        with self.store.lock:
            entries = {
                code: [self.entry_view(e) for e in div.purchase_entries] for code, div in self.store.divisions.items()
            }
            return {
                **self.store.summary(),
                "purchase_entries": entries,
                "oauth": self.oauth.state(),
                "settings": self._settings.model_dump(mode="json"),
            }

    @staticmethod
    def entry_view(e: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in e.items() if not k.startswith("_")}
        out["PurchaseEntryLines"] = e["_lines"]
        return out

    def rate_limit_fault(self, rule: FaultRule, method: str, path: str) -> Response:
        s = self._settings
        reset = int((self.clock.time() // s.minute_window_s + 1) * s.minute_window_s * 1000)
        return Response(
            b"",
            status_code=429,
            headers={
                "X-RateLimit-Minutely-Limit": str(s.minutely_limit),
                "X-RateLimit-Minutely-Remaining": "0",
                "X-RateLimit-Minutely-Reset": str(reset),
                **rule.headers,
            },
        )

    def base_url(self, request: Request) -> str:
        if self._settings.public_base_url:
            return self._settings.public_base_url.rstrip("/")
        return str(request.base_url).rstrip("/")
