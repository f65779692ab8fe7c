"""Exact's webhook signature: ``HashCode`` = upper-case hex HMAC-SHA256 of the raw ``Content`` JSON text (as sent,
between ``"Content":`` and ``,"HashCode"``), keyed with the app's webhook secret (docs/po-push.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

# The whole body: {"Content": <raw text>, "HashCode": "<hex>"}; the greedy group takes the Content text up to the
# last ,"HashCode" so the bytes signed are exactly the bytes sent.
_BODY = re.compile(
    r'^\s*\{\s*"Content"\s*:\s*(?P<content>\{.*\})\s*,\s*"HashCode"\s*:\s*"(?P<hash>[^"]*)"\s*\}\s*$', re.S
)


class BadSignature(ValueError):
    """The body is not a notification, or its HashCode does not verify."""


@dataclass(frozen=True)
class Notification:
    hash_code: str
    content: dict[str, Any]

    @property
    def division(self) -> int | None:
        value = self.content.get("Division")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None


def hash_code(content_text: str | bytes, secret: str) -> str:
    data = content_text.encode() if isinstance(content_text, str) else content_text
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest().upper()


def verify(raw: bytes, secret: str) -> Notification:
    """The notification in ``raw`` when its HashCode verifies with ``secret``; ``BadSignature`` otherwise."""
    if not secret:
        raise BadSignature("no webhook secret configured")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("body is not UTF-8") from None
    m = _BODY.match(text)
    if m is None:
        raise BadSignature('body is not {"Content": {...}, "HashCode": "..."}')
    given = m.group("hash").upper()
    expected = hash_code(m.group("content"), secret)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignature("HashCode does not match")
    try:
        content = json.loads(m.group("content"))
    except ValueError:
        raise BadSignature("Content is not JSON") from None
    if not isinstance(content, dict):
        raise BadSignature("Content is not an object")
    return Notification(hash_code=expected, content=content)
