"""Checks across fields of one tenant (divisions, business-unit routing, PO numbers).

They work on the raw mapping from the file as well as on a validated model, and skip what they cannot read, so the
loader reports them together with the field-level errors of the same tenant: one run of ``mlc config check``
shows every problem (pydantic runs a model's after-validators only when every field is valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ml_connector.config.common import DailyShare
from ml_connector.config.po_push import po_number_fields

Loc = tuple[str | int, ...]

_INTS: TypeAdapter[list[int]] = TypeAdapter(list[int])
_INT: TypeAdapter[int] = TypeAdapter(int)
_SHARE: TypeAdapter[float] = TypeAdapter(DailyShare)
DEFAULT_SHARES = {"invoice_poll": 0.7, "po_push": 0.9}  # as in InvoicePollConfig / PoPushConfig
DEFAULT_PO_NUMBER_FORMAT = "{division}-{order_number}"


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _ints(value: Any) -> list[int] | None:
    try:
        return _INTS.validate_python(value)
    except ValidationError:
        return None


def _int(value: Any) -> int | None:
    try:
        return _INT.validate_python(value)
    except ValidationError:
        return None


def cross_field_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """``(location, message)`` of every cross-field problem readable in ``data`` (a tenant's mapping)."""
    divisions = _ints(_section(data, "exact").get("divisions"))
    if not divisions:
        return []  # the field error about exact.divisions says it; nothing to check against
    known = sorted(set(divisions))
    problems: list[tuple[Loc, str]] = []
    units = _section(data, "jaggaer").get("business_units")
    for bu, raw in units.items() if isinstance(units, Mapping) else ():
        division = _int(raw)
        if division is not None and division not in known:
            problems.append(
                (
                    ("jaggaer", "business_units", bu),
                    f"jaggaer.business_units[{bu!r}] routes to division {division}, which is not in exact.divisions "
                    f"{known}",
                )
            )
    po_push = _section(data, "po_push")
    po_divisions = _ints(po_push.get("divisions", [])) or []
    for division in po_divisions:
        if division not in known:
            problems.append(
                (("po_push", "divisions"), f"po_push.divisions has {division}, which is not in exact.divisions {known}")
            )
    fmt = po_push.get("po_number_format", DEFAULT_PO_NUMBER_FORMAT)
    pushed = list(dict.fromkeys(po_divisions or divisions))
    master = (
        _int(po_push.get("supplier_master_division")) if po_push.get("supplier_master_division") is not None else None
    )
    if master is not None and master not in pushed:
        problems.append(
            (
                ("po_push", "supplier_master_division"),
                f"po_push.supplier_master_division is {master}, which is not one of the PO divisions {pushed}",
            )
        )
    currencies = _section(_section(data, "invoice_poll"), "currencies_by_division")
    for raw in currencies:
        division = _int(raw)
        if division is not None and division not in known:
            problems.append(
                (
                    ("invoice_poll", "currencies_by_division", raw),
                    f"division {division} is not in exact.divisions {known}: list only the tenant's divisions",
                )
            )
    problems += _share_problems(data)
    if isinstance(fmt, str) and len(pushed) > 1:
        try:
            names = po_number_fields(fmt)
        except ValueError:
            names = {"division"}  # not a valid format at all: the field error says so
        if "division" not in names:
            # Order numbers repeat across divisions: without {division} two orders would share one PONumber and
            # the second would overwrite the first's PO in JAGGAER.
            problems.append(
                (
                    ("po_push", "po_number_format"),
                    f"{fmt!r} has no {{division}}, but the tenant pushes POs from {len(pushed)} divisions "
                    f"{pushed}, whose order numbers repeat; use e.g. '{{division}}-{{order_number}}'",
                )
            )
    return problems


def _share_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """The invoice poll stops at ``limit x (1 - its share)`` calls left, the PO push at ``limit x (1 - its share)``:
    a PO push share not above the invoice poll's would leave the PO push nothing once the invoice poll has run."""
    shares: dict[str, float] = {}
    for flow, default in DEFAULT_SHARES.items():
        section = _section(data, flow)
        if section.get("enabled") is False:
            return []
        try:
            shares[flow] = _SHARE.validate_python(section.get("exact_daily_share", default))
        except ValidationError:
            return []  # the field error says it
    if shares["invoice_poll"] < shares["po_push"]:
        return []
    return [
        (
            ("invoice_poll", "exact_daily_share"),
            f"invoice_poll.exact_daily_share ({shares['invoice_poll']:g}) must be below po_push.exact_daily_share "
            f"({shares['po_push']:g}): the invoice poll may use Exact's daily calls down to what the PO push keeps, "
            "which would leave the PO push nothing on a day with a backlog of invoices (e.g. 0.7 and 0.9)",
        )
    ]
