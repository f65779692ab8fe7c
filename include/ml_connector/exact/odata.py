"""OData v2 conventions of the Exact Online REST API (docs/sandbox-exact.md, "OData conventions").

- Literals for ``$filter``: ``guid'…'``, ``datetime'…'``, ``123L`` (Int64), strings in single quotes with ``'``
  doubled, ``true``/``false``, ``null``.
- Dates in responses are ``"/Date(1382667872203)/"`` (ms since the epoch, optionally with a ``+hhmm`` offset);
  they become timezone-aware UTC datetimes. On POST we write ISO-8601.
- Envelopes: ``{"d": {"results": [...], "__next": url}}``, ``{"d": [...]}`` and ``{"d": {...}}`` are all tolerated.
- Error bodies: ``{"error": {"code": "", "message": {"lang": "", "value": "..."}}}``.
- Supplier ``Code`` is an 18-character right-aligned string (``pad_code``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

CODE_WIDTH = 18

_DATE_RE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Int64(int):
    """An int that is written as an OData Int64 literal (``123L``), e.g. the sync endpoints' ``Timestamp``."""


class Guid(str):
    """A string written as ``guid'…'``."""


# --- literals ---------------------------------------------------------------------------------------------------
def string(value: str) -> str:
    """``'it''s'``: single quotes, embedded quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def guid(value: str | uuid.UUID) -> str:
    text = str(value).strip().strip("{}")
    if not _GUID_RE.match(text):
        raise ValueError(f"not a GUID: {value!r}")
    return f"guid'{text.lower()}'"


def int64(value: int) -> str:
    return f"{int(value)}L"


def datetime_literal(value: datetime | date) -> str:
    """``datetime'2024-01-01T00:00:00'`` (UTC; aware datetimes are converted, naive ones are taken as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond // 1000:03d}"
    else:
        text = f"{value.isoformat()}T00:00:00"
    return f"datetime'{text}'"


def literal(value: Any) -> str:
    """The OData literal for a Python value (used when building ``$filter``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return int64(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, uuid.UUID | Guid):
        return guid(value)
    if isinstance(value, datetime | date):
        return datetime_literal(value)
    if isinstance(value, str):
        return string(value)
    raise TypeError(f"no OData literal for {type(value).__name__}")


def eq(field: str, value: Any) -> str:
    return f"{field} eq {literal(value)}"


# --- dates ------------------------------------------------------------------------------------------------------
def parse_date(value: Any) -> datetime | None:
    """``"/Date(ms)/"`` (or ``"/Date(ms+0100)/"``, or an ISO-8601 string) -> aware UTC datetime.

    The ms count is the UTC instant; an offset suffix only says in which zone it was meant, so it is ignored
    (that is the OData v2 JSON "verbose" reading). ``None`` stays ``None``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError(f"not an OData date: {value!r}")
    match = _DATE_RE.match(value.strip())
    if match:
        ms = int(match.group(1))
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an OData date: {value!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_date(value: datetime) -> str:
    """An aware datetime as Exact writes it: ``/Date(ms)/`` (used by tests and the sandbox's mirror image)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    ms = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return f"/Date({ms})/"


def iso(value: datetime | date) -> str:
    """ISO-8601 for POST bodies: ``2024-01-31T10:00:00Z`` (UTC, ms when present) or ``2024-01-31`` for a date."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond // 1000:03d}"
        return text + "Z"
    return value.isoformat()


# --- codes ------------------------------------------------------------------------------------------------------
def pad_code(code: str | int) -> str:
    """Exact account codes are 18 characters, right-aligned with spaces: ``8`` -> ``'                 8'``."""
    text = str(code).strip()
    if not text:
        raise ValueError("empty code")
    if len(text) > CODE_WIDTH:
        raise ValueError(f"code {text!r} is longer than {CODE_WIDTH} characters")
    return text.rjust(CODE_WIDTH)


# --- envelopes --------------------------------------------------------------------------------------------------
def results(payload: Any) -> list[dict[str, Any]]:
    """The rows of a response, whatever the envelope: ``{"d":{"results":[...]}}``, ``{"d":[...]}``, ``{"d":{...}}``."""
    if isinstance(payload, dict) and "d" in payload:
        d = payload["d"]
        if isinstance(d, list):
            return d
        if isinstance(d, dict):
            inner = d.get("results")
            if isinstance(inner, list):
                return inner
            return [d]
        if d is None:
            return []
    if isinstance(payload, list):
        return payload
    raise ValueError(f"not an OData v2 JSON payload: {str(payload)[:200]!r}")


def entity(payload: Any) -> dict[str, Any]:
    """The single entity of ``{"d": {...}}`` (POST result, GET by key)."""
    rows = results(payload)
    if not rows:
        raise ValueError("empty OData payload where one entity was expected")
    return rows[0]


def next_link(payload: Any) -> str | None:
    if isinstance(payload, dict):
        d = payload.get("d", payload)
        if isinstance(d, dict):
            link = d.get("__next")
            return str(link) if link else None
    return None


# --- errors -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ODataError:
    code: str
    message: str
    lang: str | None = None


def parse_error(body: str | bytes | dict[str, Any] | None) -> ODataError | None:
    """Exact's error body, or ``None`` when the body is not one (empty, HTML, another shape)."""
    if body is None:
        return None
    data: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    err = data["error"]
    msg = err.get("message")
    if isinstance(msg, dict):
        value = msg.get("value")
        lang = msg.get("lang")
    else:
        value, lang = msg, None
    return ODataError(code=str(err.get("code") or ""), message=str(value or "").strip(), lang=lang)


def parse_oauth_error(body: str | bytes | None) -> tuple[str, str]:
    """``(error, error_description)`` of an OAuth error body (``("", "")`` when there is none)."""
    if not body:
        return "", ""
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error")
    if isinstance(error, dict):  # an OData-style error from the token endpoint
        parsed = parse_error(data)
        return (parsed.code if parsed else ""), (parsed.message if parsed else "")
    return str(error or ""), str(data.get("error_description") or "")


def looks_like_html(content_type: str, body: bytes | str) -> bool:
    """Exact sometimes answers 200 with an HTML maintenance page."""
    if "html" in (content_type or "").lower():
        return True
    head = (body[:200].decode("utf-8", "replace") if isinstance(body, bytes) else body[:200]).lstrip().lower()
    return head.startswith("<!doctype html") or head.startswith("<html")
