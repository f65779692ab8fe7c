"""J1P (JAGGAER One public API) JSON: the ``returnCode`` envelope, 1-based paging, the ``lastUpdate`` filter in
either style, and helpers that turn invoice JSON into Python values (``Decimal`` money, ``bool`` flags, aware
datetimes). Pure functions: no HTTP here (the hook does that).

See docs/jaggaer-client.md. Everything about J1P that is a guess (docs/sandbox-jaggaer.md, "What is a guess") is a
parameter here.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ml_connector.errors import RejectedError

log = logging.getLogger(__name__)

FilterStyle = Literal["fiql", "params"]
FILTER_STYLES: tuple[str, ...] = ("fiql", "params")

INVOICE_LIST_KEYS: tuple[str, str] = ("jiinvoiceList", "jiinvoice")

#: Codes that mean success. ``1`` is "success with warnings" (logged); anything else is a refusal.
OK_RETURN_CODES: tuple[str, ...] = ("0",)
DEFAULT_WARNING_RETURN_CODES: tuple[str, ...] = ("1",)


# ---------------------------------------------------------------------------------------------------------------
# envelope


def _code_text(value: Any) -> str | None:
    """``0``, ``"0"``, ``0.0``, ``" 0 "`` → ``"0"``; ``None`` stays ``None``; other text is kept as is."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float | Decimal):
        try:
            as_int = int(value)
        except (ValueError, OverflowError):
            return str(value)
        return str(as_int) if as_int == value else str(value)
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if number.is_finite() and number == number.to_integral_value():
        return str(int(number))
    return text


def check_envelope(
    body: Any,
    *,
    what: str = "J1P",
    http_status: int | None = 200,
    warning_codes: Sequence[str | int] = DEFAULT_WARNING_RETURN_CODES,
) -> Any:
    """Return ``body`` when its ``returnCode`` means success; raise ``RejectedError(returnMessage)`` otherwise.

    - ``returnCode`` may be a number or a string: ``0``/``"0"`` are success;
    - codes in ``warning_codes`` (default ``1``) are success with warnings: logged with ``returnMessage``;
    - a body without ``returnCode`` (e.g. an invoice detail) is accepted as is.
    """
    if not isinstance(body, Mapping) or "returnCode" not in body:
        return body
    code = _code_text(body.get("returnCode"))
    message = str(body.get("returnMessage") or "").strip()
    if code in OK_RETURN_CODES:
        return body
    if code in {_code_text(c) for c in warning_codes}:
        log.warning("%s: returnCode %s (success with warnings): %s", what, code, message or "-")
        return body
    raise RejectedError(
        f"{what}: returnCode {code}: {message or 'no returnMessage'}",
        status=http_status,
        body=message[:2000] or None,
    )


def describe_unreadable(content: bytes, content_type: str = "") -> str:
    """What a J1P answer that is not JSON holds, for an error a person can act on: an HTML page (JAGGAER's
    maintenance page comes with HTTP 200), JSON that breaks off (a truncated answer), or an empty body."""
    text = content.decode("utf-8", "replace").strip()
    ctype = content_type or "no content type"
    if not text:
        return f"an empty body ({ctype})"
    if text.startswith("<") or "html" in ctype.lower():
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        named = f" titled {title.group(1).strip()[:80]!r}" if title else ""
        return f"an HTML page{named} ({ctype}; a maintenance page?)"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        opened = text.count("{") + text.count("[") > text.count("}") + text.count("]")
        if opened or exc.pos >= len(text) - 1 or exc.msg.startswith("Unterminated"):
            return (
                f"JSON that breaks off after {len(content)} bytes (truncated: {exc.msg}, character {exc.pos}; {ctype})"
            )
        return f"malformed JSON ({exc.msg} at character {exc.pos} of {len(text)}; {ctype})"
    except ValueError as exc:  # pragma: no cover - json raises JSONDecodeError
        return f"malformed JSON ({exc}; {ctype})"
    return f"a body that cannot be read ({ctype})"  # pragma: no cover - the caller failed to parse it


# ---------------------------------------------------------------------------------------------------------------
# paging


def _as_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None


def list_items(body: Mapping[str, Any], keys: Sequence[str] = INVOICE_LIST_KEYS) -> list[Any]:
    """The records under ``keys`` (``jiinvoiceList.jiinvoice``). A missing or null key means no records; a single
    object where a list was expected (XML-to-JSON converters do that) becomes a one-item list."""
    node: Any = body
    for key in keys:
        if not isinstance(node, Mapping):
            return []
        node = node.get(key)
        if node is None:
            return []
    if isinstance(node, list):
        return node
    if isinstance(node, Mapping):
        return [node]
    return []


def paginate(
    fetch: Callable[[int], Mapping[str, Any]],
    keys: Sequence[str] = INVOICE_LIST_KEYS,
    *,
    id_of: Callable[[Any], Any] | None = None,
    max_pages: int = 100_000,
) -> Iterator[Any]:
    """Yield every record of a J1P list, page by page. ``fetch(start)`` returns one checked envelope.

    ``start`` is 1-based and advances by ``returnedRecords`` (or by the records actually found, when the server
    does not say); paging stops when ``start - 1 >= totRecords`` or a page returns no records. The page size is
    whatever the server chooses.

    Offset paging over a live, filtered list skips records: when an invoice leaves the ``lastUpdate`` window
    between two page calls, every later record moves one place forward and the first of the next page would
    never be served. With ``id_of``, a drop of ``totRecords`` between pages moves the next ``start`` back by that
    drop (repeats are dropped by id), so a list that does not change costs no extra call.
    """
    seen: set[Any] = set()
    start, previous_total = 1, None
    for _ in range(max_pages):
        body = fetch(start)
        items = list_items(body, keys)
        returned = _as_int(body.get("returnedRecords"))
        if returned is None:
            returned = len(items)
        total = _as_int(body.get("totRecords"))
        if returned > 0 and not items:
            raise RejectedError(
                f"J1P list page at start={start} says returnedRecords={returned} but holds no records "
                f"(expected under {'.'.join(keys)})"
            )
        shrink = 0
        if id_of is None:
            yield from items
        else:
            if previous_total is not None and total is not None and total < previous_total:
                shrink = previous_total - total
                log.info(
                    "J1P list shrank while paging (%s -> %s records): re-reading %d", previous_total, total, shrink
                )
            previous_total = total
            for item in items:
                key = id_of(item)
                if key not in seen:
                    seen.add(key)
                    yield item
        if shrink:
            # the records that moved into the places before this page were never served: read from there again
            start = max(1, start - shrink)
            continue
        if returned <= 0 or not items:
            return
        start += returned
        if total is not None and start - 1 >= total:
            return
    raise RejectedError(f"J1P paging did not end after {max_pages} pages (server ignores 'start'?)")


# ---------------------------------------------------------------------------------------------------------------
# filters


def format_instant(value: datetime) -> str:
    """``2026-11-22T00:00:00.000Z``: UTC with milliseconds. Naive datetimes are refused (ambiguous)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got naive {value!r}")
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def last_update_filter(
    updated_from: datetime,
    updated_to: datetime,
    style: FilterStyle = "fiql",
    *,
    field: str = "lastUpdate",
    from_param: str = "lastUpdateFrom",
    to_param: str = "lastUpdateTo",
) -> dict[str, str]:
    """Query parameters selecting ``updated_from <= lastUpdate < updated_to``.

    ``fiql``: ``flt=lastUpdate=ge=…;lastUpdate=lt=…``; ``params``: ``{from_param: …, to_param: …}`` (the parameter
    names are a [guess] and come from the connection).
    """
    lo, hi = format_instant(updated_from), format_instant(updated_to)
    if updated_to < updated_from:
        raise ValueError(f"window ends before it starts: {updated_from} .. {updated_to}")
    if style == "fiql":
        return {"flt": f"{field}=ge={lo};{field}=lt={hi}"}
    if style == "params":
        return {from_param: lo, to_param: hi}
    raise ValueError(f"unknown filter style {style!r} (one of {', '.join(FILTER_STYLES)})")


# ---------------------------------------------------------------------------------------------------------------
# value conversion


def to_decimal(value: Any) -> Decimal | None:
    """J1P number (int, float, Decimal, numeric string, ``{"value": …}``) → ``Decimal``; ``None``/"" → ``None``.

    Floats go through ``str`` so ``620.13`` stays ``Decimal("620.13")``. Raises ``ValueError`` for non-numbers.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        return to_decimal(value.get("value"))
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        result = Decimal(str(value))
    else:
        text = str(value).strip().replace(",", "")
        if not text:
            return None
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}


def to_bool(value: Any) -> bool | None:
    """``"true"``/``"false"`` (any case), ``true``/``false``, ``1``/``0``, ``"yes"``/``"no"`` → ``bool``;
    ``None`` → ``None``. Raises ``ValueError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 instant (``…Z``, ``+00:00``, ``+0000``; naive means UTC) or epoch milliseconds → aware UTC
    ``datetime``. ``None``/"" → ``None``; raises ``ValueError`` for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        seconds = float(value) / 1000 if abs(float(value)) > 1e11 else float(value)
        return datetime.fromtimestamp(seconds, tz=UTC)
    else:
        text = str(value).strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_date(value: Any) -> date | None:
    """A J1P date (``2026-11-22T00:00:00.000Z``, ``2026-11-22``) → ``date`` (the UTC calendar day)."""
    if value is None or value == "":
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip())
    dt = parse_datetime(value)
    return dt.date() if dt is not None else None


HEADER_MONEY = (
    "taxCharge1",
    "taxCharge2",
    "shippingCharge",
    "handlingCharge",
    "discountAmount",
    "termDiscountAmount",
    "earlyPaymentDiscount",
)
HEADER_BOOLS = ("nonPOInvoice", "containsNonPOLines")
HEADER_DATES = ("invoiceDate", "dueDate", "accountingDate", "invoiceCreateDate")
HEADER_INSTANTS = ("lastUpdate",)
LINE_MONEY = (
    "quantity",
    "unitPrice",
    "extendedPrice",
    "taxCharge1",
    "taxCharge2",
    "shippingCharge",
    "handlingCharge",
    "discountAmount",
    "earlyPaymentDiscount",
)
LINE_BOOLS = ("taxable", "capitalExpense")


def _convert(out: dict[str, Any], keys: Sequence[str], fn: Callable[[Any], Any]) -> None:
    for key in keys:
        if key in out:
            try:
                out[key] = fn(out[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None


def normalize_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an invoice header with money as ``Decimal`` (``total`` → ``{"currency", "value": Decimal}``),
    ``nonPOInvoice``/``containsNonPOLines`` as ``bool``, dates as ``date`` and ``lastUpdate`` as aware ``datetime``.
    Raises ``ValueError`` naming the field that cannot be read."""
    out = dict(header)
    _convert(out, HEADER_MONEY, to_decimal)
    _convert(out, HEADER_BOOLS, to_bool)
    _convert(out, HEADER_DATES, parse_date)
    _convert(out, HEADER_INSTANTS, parse_datetime)
    total = out.get("total")
    if isinstance(total, Mapping):
        try:
            out["total"] = {**total, "value": to_decimal(total.get("value"))}
        except ValueError as exc:
            raise ValueError(f"total: {exc}") from None
    elif total is not None:
        _convert(out, ("total",), to_decimal)
    for key in ("invoiceId",):
        if key in out and out[key] is not None:
            as_int = _as_int(out[key])
            if as_int is not None:
                out[key] = as_int
    return out


def normalize_line(line: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an invoice line with amounts/quantity as ``Decimal`` and flags as ``bool``."""
    out = dict(line)
    _convert(out, LINE_MONEY, to_decimal)
    _convert(out, LINE_BOOLS, to_bool)
    return out


def invoice_lines(detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines of an invoice detail (``lineList.invoiceLine``; missing → ``[]``)."""
    return list(list_items(detail, ("lineList", "invoiceLine")))


def normalize_invoice(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``{"header": normalize_header(...), "lines": [normalize_line(...), ...]}`` from an invoice detail."""
    header = detail.get("header") or {}
    return {
        "header": normalize_header(header),
        "lines": [normalize_line(line) for line in invoice_lines(detail)],
    }


def custom_field_values(obj: Mapping[str, Any]) -> dict[str, str | None]:
    """``customFieldValueSetList.customFieldValueSet[]`` → ``{name: first value}`` (``None`` when empty)."""
    out: dict[str, str | None] = {}
    for cf in list_items(obj, ("customFieldValueSetList", "customFieldValueSet")):
        if not isinstance(cf, Mapping):
            continue
        name = cf.get("name") or cf.get("internalName") or cf.get("label")
        if not name:
            continue
        values = list_items(cf, ("customFieldValueList", "customFieldValue"))
        value = values[0].get("value") if values and isinstance(values[0], Mapping) else None
        out[str(name)] = None if value is None else str(value)
    return out
