"""Helpers shared by the Exact sandbox tests."""

from __future__ import annotations

from typing import Any

import requests

from sandbox.common import demo_company as demo
from sandbox.exact.testing import ExactSandboxHandle

MFG = 111111
SVC = 222222
#: A $select for calls whose fields do not matter: every division GET needs one (select_required_everywhere).
SEL = {"$select": "ID,Code"}


class Api:
    """An authorised session plus the handle, with short helpers."""

    def __init__(self, ex: ExactSandboxHandle, tokens: dict[str, Any]) -> None:
        self.ex = ex
        self.tokens = tokens
        self.http: requests.Session = ex.session(tokens["access_token"])

    def get(self, path: str, division: int = MFG, **params: Any) -> requests.Response:
        return self.http.get(self.ex.api_url(division, path), params=params or None, timeout=30)

    def post(self, path: str, body: Any, division: int = MFG, **headers: str) -> requests.Response:
        return self.http.post(self.ex.api_url(division, path), json=body, headers=headers or None, timeout=30)

    def follow(self, url: str) -> requests.Response:
        return self.http.get(url, timeout=30)


def results(r: Any) -> list[dict[str, Any]]:
    """The rows of a 200 OData list answer."""
    assert r.status_code == 200, r.text
    return r.json()["d"]["results"]


def error_text(r: Any) -> str:
    """The message of an Exact error body (asserting its shape)."""
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "" and "lang" in body["error"]["message"]
    return body["error"]["message"]["value"]


def small_entry(ref: str) -> dict:
    """A valid one-line purchase entry with YourRef ``ref``."""
    return {
        "Journal": "60",
        "Supplier": demo.SUPPLIERS[0].account_id(MFG),
        "EntryDate": "2026-11-20",
        "YourRef": ref,
        "PurchaseEntryLines": [{"GLAccount": demo.GL_ACCOUNTS[2].id(MFG), "AmountFC": 10.0}],
    }
