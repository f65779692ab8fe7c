"""Process entry points for the rotated-pair tests (imported by name in the worker processes)."""

from __future__ import annotations

import traceback
from typing import Any


def rival_refresh(db_url: str, base_url: str, secret: str, anchors: dict[str, float], ready: Any, go: Any, out: Any):
    """Another worker of the same tenant: on ``go``, ask the chain for an access token; report what happened."""
    from exact_hook_workers import _client

    client = _client(db_url, base_url, anchors, secret)
    ready.set()
    go.wait(120)
    result: dict[str, Any] = {"token": None, "error": None}
    try:
        result["token"] = bool(client.tokens.get_access_token())
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    except BaseException:  # pragma: no cover - reported, not swallowed
        result["error"] = traceback.format_exc()
    result["token_calls"] = client.tokens.token_calls
    out.put(result)
