"""Writes on the Exact sandbox's REST API: the body check every POST/PUT goes through, validation errors in the
settings' language, the 201 answer, and accounts (POST, PUT)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi.responses import JSONResponse, Response

from sandbox.exact.entities import EntitySet
from sandbox.exact.messages import ACCOUNT_CODE_MAX, MESSAGES
from sandbox.exact.odata import BOOL, DATETIME, FLOAT, GUID, INT, STR, is_guid
from sandbox.exact.render import render, select_fields
from sandbox.exact.responses import Ctx, HTTPFail, atom_entry, parse_key
from sandbox.exact.state import ExactState
from sandbox.exact.store import Division

_INT_TEXT = re.compile(r"^\s*[-+]?\d{1,9}\s*$")


def type_ok(t: str, v: Any) -> bool:
    """Can Exact's OData reader take JSON value ``v`` for a property of type ``t``? (Business validation of the
    value comes later: e.g. ``"AmountFC": "lots"`` reads, then fails as "Invalid value: Amount".)"""
    if t == GUID:
        return is_guid(v)
    if t == STR:
        return isinstance(v, str)
    if t == INT:
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and bool(_INT_TEXT.match(v)))
    if t == FLOAT:
        return isinstance(v, int | float | str) and not isinstance(v, bool)
    if t == BOOL:
        return isinstance(v, bool)
    if t == DATETIME:
        return isinstance(v, str)
    return True


def validation(sb: ExactState, messages: list[str]) -> HTTPFail:
    return HTTPFail(sb.settings().validation_error_status, "\r\n".join(messages))


def msg(sb: ExactState, key: str, *args: Any) -> str:
    return MESSAGES[sb.settings().language][key].format(*args)


def created(
    sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, row: dict[str, Any], prefer: bool, obj: Any = None
) -> Response:
    if prefer or not sb.settings().post_minimal_without_prefer:
        fields, navs, deferred = select_fields(sb, spec, None, list(spec.navs), representation=True)
        out = render(sb, ctx, spec, div, row, fields, navs, deferred, obj if obj is not None else row)
    else:
        out = render(sb, ctx, spec, div, row, [spec.key])
    if not ctx.json:
        return atom_entry(ctx.base, out, status=201)
    return JSONResponse({"d": out}, status_code=201)


def check_props(sb: ExactState, spec: EntitySet, data: dict[str, Any], settable: frozenset[str]) -> dict[str, Any]:
    """The properties of a POST/PUT body to store. A property the entity does not have, or a value of the
    wrong JSON type, is a 400 as Exact's OData reader answers; one the reference shows as read-only is ignored
    or refused (``readonly_property_on_write``)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k == "__metadata":
            continue
        if k not in spec.schema and k not in spec.navs:
            raise HTTPFail(
                400,
                f"Error processing request stream. The property name '{k}' specified for type "
                f"'{spec.type_name}' is not valid.",
            )
        t = spec.schema.get(k)
        if t is not None and v is not None and not type_ok(t, v):
            raise HTTPFail(
                400,
                "Error processing request stream. Cannot convert a primitive value to the expected type "
                f"'{spec.ref.properties[k].edm}' ({k}). See the inner exception for more details.",
            )
        if k not in settable and k not in spec.navs:
            if sb.settings().readonly_property_on_write == "refuse":
                raise HTTPFail(400, f"Property '{k}' of type '{spec.type_name}' is read-only.")
            continue
        out[k] = v
    return out


def post_account(
    sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, data: dict[str, Any], prefer: bool
) -> Response:
    data = check_props(sb, spec, data, spec.writable)
    if not str(data.get("Name") or "").strip():
        raise validation(sb, [msg(sb, "mandatory_name")])
    code = data.get("Code")
    if code is None or not str(code).strip():
        codes = [int(a["Code"]) for a in div.accounts if a["Code"].strip().isdigit()]
        code = str(max(codes, default=0) + 1)
    if len(str(code).strip()) > ACCOUNT_CODE_MAX:
        raise validation(sb, [msg(sb, "code_too_long", str(code).strip())])
    padded = str(code).strip().rjust(ACCOUNT_CODE_MAX)
    if any(a["Code"] == padded for a in div.accounts.lookup("Code", padded)):
        raise validation(sb, [msg(sb, "duplicate_code", str(code).strip())])
    now = sb.store.now_ms()
    acct: dict[str, Any] = {}
    acct.update(
        {
            "IsSupplier": False,
            "IsSales": False,
            "IsPurchase": False,
            "Status": "C",
            "Type": "A",
            "Blocked": False,
            "Country": "GB",
            "PurchaseCurrency": "GBP",
        }
    )
    acct.update({k: v for k, v in data.items() if k in spec.schema})
    acct.update(
        {
            "ID": str(uuid.uuid4()),
            "Code": padded,
            "SearchCode": acct.get("SearchCode") or str(code).strip()[:10],
            "Division": div.code,
            "Created": now,
            "Modified": now,
        }
    )
    div.accounts.put(acct)
    return created(sb, ctx, spec, div, acct, prefer)


def put_account(sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, key: str, data: dict[str, Any]) -> Response:
    guid = parse_key(key)
    if div.accounts.get(guid) is None:
        raise HTTPFail(404, "Not found")
    data = check_props(sb, spec, data, spec.updatable)
    if "Name" in data and not str(data["Name"] or "").strip():
        raise validation(sb, [msg(sb, "mandatory_name")])
    now = sb.store.now_ms()

    def mutate(a: dict[str, Any]) -> None:
        for k, v in data.items():
            if k in spec.schema and k != "Code":
                a[k] = v
        a["Modified"] = now

    div.accounts.update(guid, mutate)
    return Response(status_code=204)
