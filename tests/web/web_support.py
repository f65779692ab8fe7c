"""Helpers for the web page tests (imported by name: this directory is on sys.path under pytest)."""

from __future__ import annotations

import re
from typing import Any

PAGE = "/ml-connector/ui/mappings"
GUID = "f9759f89-5178-5372-89ec-7d11fae93a97"  # an Exact sandbox supplier of division 111111
GUID_222222 = "00febfa3-aba0-5262-bf21-4316f69f48ce"  # an Exact sandbox supplier of division 222222 (code 1024)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def post(client: Any, path: str, data: dict[str, Any], **kw: Any) -> Any:
    """A form POST to ``PAGE + path`` with the client's CSRF token (``csrf=None``: without one)."""
    token = kw.pop("csrf", getattr(client, "csrf", None))
    body = {"tenant": "demo", **data}
    if token is not None:
        body["csrf_token"] = token
    return client.post(PAGE + path, data=body, **kw)
