"""The JAGGAER sandbox's state: :class:`JaggaerSandbox` (tenants, tokens, settings, clock, faults, calls).

The routers (``j1p``, ``eproc``, ``admin``) and ``xml_import`` work on it; ``app.create_app`` wires them together.
Nothing here imports a router or the app, so the app and its routers form no import cycle."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from sandbox.common.admin import clock_view
from sandbox.common.calls import CallLog
from sandbox.common.clock import Clock
from sandbox.common.faults import FaultInjector
from sandbox.jaggaer import seed as seeding
from sandbox.jaggaer.model import Tenant, fmt_ts
from sandbox.jaggaer.settings import JaggaerSettings
from sandbox.jaggaer.volume import seed_volume

DEFAULT_PORT = 8702
REALM_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"
XML_PREFIX = "/apps/Router/"
MAX_TOKENS = 10_000  # access tokens remembered; expired ones go first, then the oldest


@dataclass
class TokenInfo:
    tenant: str
    client_id: str
    issued_at: float
    expires_at: float


class J1PUnauthorized(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class RateLimited(Exception):
    pass


class JaggaerSandbox:
    """Everything the JAGGAER sandbox knows, behind one re-entrant lock."""

    def __init__(self, settings: JaggaerSettings | None = None, clock: Clock | None = None, seed: int = 42) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.faults = FaultInjector()
        self.calls = CallLog(clock=self.clock)
        self.default_settings = (settings or JaggaerSettings()).model_copy()
        self.settings = self.default_settings.model_copy()
        self.default_seed = seed
        self.tenants: dict[str, Tenant] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.seed_info: dict[str, Any] = {}
        self.reset({})

    # -- lifecycle -----------------------------------------------------------------------------------------
    def reset(self, params: dict[str, Any]) -> dict[str, Any]:
        """Default settings, no tokens/faults/calls, both customers re-seeded relative to the clock.

        params: ``seed`` (int), ``empty`` (bool: customers with credentials but no data), ``second_tenant`` (bool:
        also the second demo tenant, ``northfield``), ``now`` (ISO-8601:
        set the clock first), ``clock`` (true: back to real time at speed 1 first). Without ``now``/``clock`` the
        clock is left alone (it may be shared with the Exact sandbox). Other keys are ignored."""
        if params.get("clock") is True:
            self.clock.reset()
        if params.get("now"):
            self.clock.set(params["now"])
        seed = int(params.get("seed", self.default_seed))
        now = self.clock.now()
        demo = seeding.new_tenant(seeding.DEMO, list(seeding.dc.BUSINESS_UNITS))
        acme = seeding.new_tenant(seeding.ACME, ["ACME-HQ"])
        info: dict[str, Any] = {"seed": seed, "now": fmt_ts(now)}
        tenants = {demo.key: demo, acme.key: acme}
        if params.get("second_tenant"):  # the second demo tenant (cluster runs), opt-in
            tenants[seeding.dc.SECOND_TENANT] = seeding.new_tenant(
                seeding.NORTHFIELD, list(seeding.dc.SECOND_BUSINESS_UNITS)
            )
        if not params.get("empty"):
            info["demo"] = seeding.seed_demo(demo, now, seed=seed)
            info["acme"] = seeding.seed_acme(acme, now)
            if seeding.dc.SECOND_TENANT in tenants:
                info[seeding.dc.SECOND_TENANT] = seeding.seed_second(tenants[seeding.dc.SECOND_TENANT], now)
        with self.lock:
            self.settings = self.default_settings.model_copy()
            self.tenants = tenants
            self.tokens.clear()
            self.seed_info = info
        self.faults.clear()
        self.calls.reset()
        return {"ok": True, **info}

    def seed(self, params: dict[str, Any]) -> dict[str, Any]:
        """Volume generator: ``{"invoices": 20000, "vendors": 500, "seed": 1, "days": 10, "tenant": "demo",
        "credit_memo_ratio": 0.1}``."""
        allowed = {"invoices", "vendors", "seed", "days", "tenant", "credit_memo_ratio"}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(f"unknown seed parameter(s): {', '.join(sorted(unknown))}")
        tenant = self.tenant(str(params.get("tenant", "demo")))
        try:
            invoices = int(params.get("invoices", 0))
            vendors = int(params.get("vendors", 0))
            seed = int(params.get("seed", 1))
            days = float(params.get("days", 10.0))
            ratio = float(params.get("credit_memo_ratio", 0.1))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid seed parameter: {exc}") from exc
        if days <= 0:
            raise ValueError("days must be > 0")
        with self.lock:
            result = seed_volume(
                tenant,
                self.clock.now(),
                invoices=invoices,
                vendors=vendors,
                seed=seed,
                days=days,
                credit_memo_ratio=ratio,
            )
            return {
                "ok": True,
                "tenant": tenant.key,
                **result,
                "total_invoices": len(tenant.invoices),
                "total_suppliers": len(tenant.suppliers),
            }

    # -- look-ups ------------------------------------------------------------------------------------------
    def tenant(self, key: str) -> Tenant:
        try:
            return self.tenants[key]
        except KeyError:
            raise ValueError(f"unknown tenant {key!r} (known: {', '.join(self.tenants)})") from None

    def tenant_by_client(self, client_id: str) -> Tenant | None:
        for t in self.tenants.values():
            if secrets.compare_digest(t.client_id, client_id):
                return t
        return None

    def tenant_by_identity(self, identity: str) -> Tenant | None:
        for t in self.tenants.values():
            if t.identity == identity:
                return t
        return None

    # -- tokens --------------------------------------------------------------------------------------------
    def issue_token(self, tenant: Tenant) -> tuple[str, TokenInfo]:
        now = self.clock.time()
        info = TokenInfo(tenant.key, tenant.client_id, now, now + self.settings.token_expires_in)
        header = {"alg": "RS256", "typ": "JWT", "kid": "sandbox"}
        payload = {
            "exp": int(info.expires_at),
            "iat": int(now),
            "jti": secrets.token_hex(8),
            "iss": "http://sandbox/auth/realms/J1p-integrations",
            "azp": tenant.client_id,
            "typ": "Bearer",
        }

        def b64(obj: Any) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

        token = f"{b64(header)}.{b64(payload)}.{secrets.token_urlsafe(32)}"
        with self.lock:
            if len(self.tokens) >= MAX_TOKENS:
                for k in [k for k, i in self.tokens.items() if i.expires_at <= now]:
                    del self.tokens[k]
                while len(self.tokens) >= MAX_TOKENS:
                    del self.tokens[next(iter(self.tokens))]
            self.tokens[token] = info
        return token, info

    def tenant_for_token(self, authorization: str | None) -> Tenant:
        if not authorization:
            raise J1PUnauthorized("Missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise J1PUnauthorized("Authorization header must be 'Bearer <token>'")
        with self.lock:
            info = self.tokens.get(token.strip())
            if info is None:
                raise J1PUnauthorized("Token is not active")
            if self.clock.time() >= info.expires_at:
                raise J1PUnauthorized("Token is not active (expired)")
            tenant = self.tenants.get(info.tenant)
        if tenant is None:
            raise J1PUnauthorized("Token is not active")
        return tenant

    # -- rate limit ----------------------------------------------------------------------------------------
    def check_rate(self, tenant: Tenant) -> None:
        limit = self.settings.rate_limit_per_minute
        if limit is None:
            return
        window = int(self.clock.time() // 60)
        with self.lock:
            if tenant.rate_window != window:
                tenant.rate_window = window
                tenant.rate_count = 0
            tenant.rate_count += 1
            if tenant.rate_count > limit:
                raise RateLimited()

    def retry_after_headers(self) -> dict[str, str]:
        ra = self.settings.retry_after
        return {} if ra is None else {"Retry-After": str(ra)}

    # -- J1P helpers ---------------------------------------------------------------------------------------
    def rc(self, code: int) -> int | str:
        return str(code) if self.settings.return_code_type == "string" else code

    def app_error(self, message: str, code: int = 2) -> JSONResponse:
        """J1P application error: HTTP 200 with ``returnCode`` != 0."""
        return JSONResponse({"returnCode": self.rc(code), "returnMessage": message})

    # -- views ---------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with self.lock:
            tenants = {}
            for t in self.tenants.values():
                tenants[t.key] = {
                    "client_id": t.client_id,
                    "identity": t.identity,
                    "business_units": t.business_units,
                    "counts": {
                        "suppliers": len(t.suppliers),
                        "invoices": len(t.invoices),
                        "purchase_orders": len(t.purchase_orders),
                        "purchase_orders_open": sum(1 for p in t.purchase_orders.values() if p.status == "Open"),
                        "supplier_sync_records": len(t.supplier_sync_log),
                    },
                    "purchase_orders": {k: p.view() for k, p in t.purchase_orders.items()},
                    "po_messages": list(t.po_log),
                    "suppliers_received": list(t.supplier_sync_log),
                    "suppliers_via_xml": [s.view() for s in t.suppliers.values() if s.source == "xml"],
                }
            return {
                "tenants": tenants,
                "tokens_active": sum(1 for i in self.tokens.values() if i.expires_at > self.clock.time()),
                "settings": self.settings.model_dump(),
                "clock": clock_view(self.clock),
                "seed": self.seed_info,
                "notes": {
                    "bad_data_invoice": (
                        f"supplierInvoiceNumber {seeding.BAD_DATA_SUPPLIER_INVOICE_NUMBER} (demo) splits to the "
                        "inactive cost centre CC900"
                    )
                },
            }

    def credentials(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {
                t.key: {
                    "client_id": t.client_id,
                    "client_secret": t.client_secret,
                    "identity": t.identity,
                    "shared_secret": t.shared_secret,
                    "business_units": list(t.business_units),
                }
                for t in self.tenants.values()
            }

    def get_settings(self) -> dict[str, Any]:
        with self.lock:
            return self.settings.model_dump()

    def patch_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.settings = self.settings.patch(changes)
            return self.settings.model_dump()
