"""A handle on a running Exact sandbox for tests, demos and benchmarks.

    with ExactSandboxHandle() as ex:
        tokens = ex.connect()                       # consent + code exchange, like the real flow
        api = ex.session(tokens["access_token"])    # requests.Session with Bearer + Accept: application/json
        r = api.get(ex.api_url(111111, "crm/Accounts"), params={"$filter": "IsSupplier eq true"})

Everything goes over HTTP (the admin API too), so a handle can also point at a sandbox in another process:
``ExactSandboxHandle(url="http://127.0.0.1:8701")``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests

from sandbox.common.server import ServerThread
from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS, ExactSettings


class ExactSandboxHandle:
    def __init__(self, settings: ExactSettings | dict[str, Any] | None = None, url: str | None = None) -> None:
        self._settings = settings
        self.url: str = url or ""
        self.server: ServerThread | None = None
        self.sandbox: Any = None  # the in-process ExactSandbox when this handle started the server
        self.admin = requests.Session()
        self.client_id = DEMO_CLIENT_ID
        self.client_secret = DEMO_CLIENT_SECRET
        self.redirect_uri = DEMO_REDIRECT_URIS[0]

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> str:
        if not self.url:
            from sandbox.exact.app import ExactSandbox

            self.sandbox = ExactSandbox(self._settings)
            self.server = ServerThread(self.sandbox.app)
            self.url = self.server.start()
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.admin.close()

    def __enter__(self) -> ExactSandboxHandle:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- admin -------------------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, **kw: Any) -> Any:
        r = self.admin.request(method, f"{self.url}/_admin/{path}", timeout=60, **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def reset(self, **params: Any) -> Any:
        return self._admin("POST", "reset", json=params)

    def seed(self, **params: Any) -> Any:
        return self._admin("POST", "seed", json=params)

    def state(self) -> Any:
        return self._admin("GET", "state")

    def settings(self, **patch: Any) -> Any:
        """Read (no arguments) or patch settings."""
        if not patch:
            return self._admin("GET", "settings")
        return self._admin("POST", "settings", json=patch)

    def advance(self, seconds: float) -> Any:
        return self._admin("POST", "clock", json={"advance": seconds})

    def clock(self, **body: Any) -> Any:
        return self._admin("POST", "clock", json=body) if body else self._admin("GET", "clock")

    def fault(self, **rule: Any) -> Any:
        return self._admin("POST", "faults", json=rule)

    def clear_faults(self) -> Any:
        return self._admin("DELETE", "faults")

    def calls(self) -> Any:
        return self._admin("GET", "calls")

    def clear_calls(self) -> Any:
        return self._admin("DELETE", "calls")

    def create_po(self, division: int = 111111, **body: Any) -> Any:
        return self._admin("POST", "purchase_orders", json={"division": division, **body})

    def modify_po(self, po_id: str, **body: Any) -> Any:
        return self._admin("PATCH", f"purchase_orders/{po_id}", json=body)

    def cancel_po(self, po_id: str) -> Any:
        return self._admin("POST", f"purchase_orders/{po_id}/cancel")

    def delete_po(self, po_id: str) -> Any:
        return self._admin("DELETE", f"purchase_orders/{po_id}")

    def purchase_entries(self, division: int | None = None) -> Any:
        return self._admin("GET", "purchase_entries", params={"division": division} if division else None)

    def edit_entry(self, entry_id: str, **body: Any) -> Any:
        """Edit a purchase entry as a person would in Exact (``line=1, AmountFC=…`` or header fields)."""
        return self._admin("PATCH", f"purchase_entries/{entry_id}", json=body)

    # ---- OAuth ---------------------------------------------------------------------------------------------
    def authorize(self, state: str = "st", redirect_uri: str | None = None) -> str:
        """Run ``GET /api/oauth2/auth`` (auto-consent) and return the code from the redirect."""
        r = requests.get(
            f"{self.url}/api/oauth2/auth",
            params={
                "client_id": self.client_id,
                "redirect_uri": redirect_uri or self.redirect_uri,
                "response_type": "code",
                "state": state,
                "force_login": "0",
            },
            allow_redirects=False,
            timeout=10,
        )
        if r.status_code != 302:
            raise RuntimeError(f"authorize failed: {r.status_code} {r.text[:200]}")
        return parse_qs(urlparse(r.headers["location"]).query)["code"][0]

    def token(self, **form: str) -> requests.Response:
        data = {"client_id": self.client_id, "client_secret": self.client_secret, **form}
        return requests.post(f"{self.url}/api/oauth2/token", data=data, timeout=10)

    def exchange(self, code: str, redirect_uri: str | None = None) -> requests.Response:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=redirect_uri or self.redirect_uri)

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)

    def connect(self) -> dict[str, Any]:
        r = self.exchange(self.authorize())
        r.raise_for_status()
        return r.json()

    # ---- API -------------------------------------------------------------------------------------------------
    def session(self, access_token: str) -> requests.Session:
        s = requests.Session()
        s.headers.update({"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        return s

    def api_url(self, division: int | str, path: str) -> str:
        return f"{self.url}/api/v1/{division}/{path}"
