"""GET on the Exact sandbox's REST API: one entity by key (and its collections), and collections with
``$filter``, ``$orderby``, ``$top`` and ``$skiptoken`` paging."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse, Response

from sandbox.common import demo_company as demo
from sandbox.exact.entities import EntitySet, po_line_row
from sandbox.exact.ledger_lines import transaction_lines
from sandbox.exact.odata import ODataError, compile_filter, conjuncts, filter_fields, simple_comparison
from sandbox.exact.render import (
    envelope,
    full_row,
    key_literal,
    nav_children,
    nav_ref,
    nav_spec,
    next_link,
    plain_fields,
    query_options,
    render,
    select_fields,
)
from sandbox.exact.responses import Ctx, HTTPFail, atom_entry, atom_feed, no_property, parse_key, query_option
from sandbox.exact.state import ExactState
from sandbox.exact.store import Division
from sandbox.exact.sync import sync_collection


def get_by_key(sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, key: str, nav: str | None) -> Response:
    guid = parse_key(key)
    if spec.table is None:
        raise HTTPFail(404, "Not found")
    obj = spec.table(div).get(guid)
    if obj is None:
        raise HTTPFail(404, "Not found")
    ast, select, expand, _ = query_options(sb, ctx, spec)
    if nav is not None:
        if nav not in spec.navs:
            raise HTTPFail(404, f"Resource not found for the segment '{nav}'.")
        target = nav_spec(sb, spec, nav)
        if target is None:  # a collection the sandbox holds no data for: always empty
            schema, type_name = nav_ref(sb, spec, nav)
            plain_fields(sb, schema, select, type_name)
            return JSONResponse({"d": {"results": []}}) if ctx.json else atom_feed(ctx.base, nav, [])
        fields = plain_fields(sb, target.schema, select, target.type_name)
        children = nav_children(sb, div, spec, nav, obj)
        if ast is not None:
            pred = compile_filter(ast, target.schema, type_name=target.type_name)
            children = [c for c in children if pred(c)]
        tok = query_option(ctx, "$skiptoken")
        start = 0
        if tok:
            last = parse_key(tok)
            ids = [c["ID"] for c in children]
            start = ids.index(last) + 1 if last in ids else len(ids)
        size = sb.settings().expand_page_size
        page = children[start : start + size]
        results = [render(sb, ctx, target, div, c, fields) for c in page]
        nxt = None
        if start + size < len(children):
            nxt = next_link(sb, ctx, spec, f"guid'{page[-1]['ID']}'", None, f"({key})/{nav}")
        return envelope(sb, ctx, target, results, nxt)
    fields, navs, deferred = select_fields(sb, spec, select, expand)
    row = render(sb, ctx, spec, div, full_row(sb, spec, div, obj), fields, navs, deferred, obj)
    if not ctx.json:
        return atom_entry(ctx.base, row)
    return JSONResponse({"d": row})


def collection(sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division) -> Response:
    if spec.kind == "sync":
        return sync_collection(sb, ctx, spec, div)
    ast, select, expand, top = query_options(sb, ctx, spec)
    fields, navs, deferred = select_fields(sb, spec, select, expand)
    if spec.required_filter is not None:
        allowed = spec.required_filter | (
            {"Modified"} if spec.name == "crm/Accounts" and sb.settings().accounts_filter_on_modified else set()
        )
        if ast is None or not filter_fields(ast) & allowed:
            raise HTTPFail(400, "A required filter is missing.")
    size = sb.settings().sync_page_size if spec.kind == "bulk" else sb.settings().page_size
    limit = size if top is None else min(size, top)
    tok = query_option(ctx, "$skiptoken")
    after = parse_key(tok) if tok else None
    orderby = query_option(ctx, "$orderby")
    if spec.table is not None:
        table = spec.table(div)
        getters = spec.getters_for(div) if spec.getters_for is not None else spec.getters
        pred = compile_filter(ast, spec.schema, getters, spec.type_name) if ast is not None else None
        if orderby:
            candidates = table.query(ast, None, None, len(table))[0] if ast is not None else list(table)
            objs, more, _after_pos = ordered(sb, spec, div, candidates, pred, orderby, after, limit, getters)
        else:
            objs, more = table.query(ast, pred, after, limit) if limit > 0 else ([], False)
        rows = [(full_row(sb, spec, div, o), o) for o in objs]
    else:
        all_rows = virtual_rows(sb, ctx, spec, div, ast)
        pred = compile_filter(ast, spec.schema, type_name=spec.type_name) if ast is not None else None
        if orderby:
            objs, more, _ = ordered(sb, spec, div, all_rows, pred, orderby, after, limit, None)
        else:
            all_rows.sort(key=lambda r: str(r[spec.key]).lower())
            keys = [str(r[spec.key]).lower() for r in all_rows]
            start = bisect_right(keys, after.lower()) if after else 0
            objs = []
            more = False
            for r in all_rows[start:]:
                if pred is None or pred(r):
                    if len(objs) == limit:
                        more = True
                        break
                    objs.append(r)
        rows = [(o, o) for o in objs]
    results = [render(sb, ctx, spec, div, row, fields, navs, deferred, obj) for row, obj in rows]
    nxt = None
    top_left = None if top is None else top - len(results)
    if more and results and (top_left is None or top_left > 0):
        nxt = next_link(sb, ctx, spec, key_literal(sb, spec, rows[-1][0][spec.key]), top_left)
    return envelope(sb, ctx, spec, results, nxt)


def ordered(
    sb: ExactState,
    spec: EntitySet,
    div: Division,
    objs: list[Any],
    pred: Callable[[Any], bool] | None,
    orderby: str,
    after: str | None,
    limit: int,
    getters: dict[str, Callable[[Any], Any]] | None,
) -> tuple[list[Any], bool, int]:
    """Sort the matches by ``$orderby`` (ties in key order) and cut the page after ``after``. Sort keys come from
    the getters: no API row is built for an object that is not on the page."""
    keys: list[tuple[str, bool]] = []
    for part in orderby.split(","):
        bits = part.strip().split()
        if not bits or len(bits) > 2 or (len(bits) > 1 and bits[1] not in ("asc", "desc")):
            raise ODataError(f"Invalid $orderby '{orderby}'.")
        if bits[0] not in spec.schema:
            raise ODataError(no_property(bits[0], spec.type_name))
        keys.append((bits[0], len(bits) > 1 and bits[1] == "desc"))

    def getter(field: str) -> Callable[[Any], Any]:
        if getters is not None and field in getters:
            return getters[field]
        if spec.full is not None:
            return lambda o, _f=field: full_row(sb, spec, div, o).get(_f)
        return lambda o, _f=field: o.get(_f)

    def sort_key(g: Callable[[Any], Any]) -> Callable[[Any], tuple[bool, Any]]:
        def key(o: Any) -> tuple[bool, Any]:
            v = g(o)
            return (v is None, v.lower() if isinstance(v, str) else v)  # case-insensitive collation

        return key

    matched = [o for o in objs if pred is None or pred(o)]
    key_of = getter(spec.key)
    for field, desc in reversed(keys):
        matched.sort(key=sort_key(getter(field)), reverse=desc)
    start = 0
    if after:
        wanted = after.lower()
        start = len(matched)
        for i, o in enumerate(matched):
            if str(key_of(o)).lower() == wanted:
                start = i + 1
                break
    page = matched[start : start + limit]
    return page, start + limit < len(matched), start


def virtual_rows(sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, ast: Any) -> list[dict[str, Any]]:
    if spec.name in ("system/Divisions", "system/AllDivisions", "hrm/Divisions"):
        out = []
        main = next(iter(demo.DIVISIONS))
        for code, d in sb.store.divisions.items():
            info = demo.DIVISIONS.get(code, {})
            # the union of the three endpoints' names for the same facts; rendering keeps each one's own
            out.append(
                {
                    "Code": code,
                    "Description": d.name,
                    "Hid": code // 1000,
                    "HID": code // 1000,
                    "Country": "GB",
                    "Currency": "GBP",
                    "VATNumber": info.get("vat_number"),
                    "ChamberOfCommerceNumber": info.get("chamber_of_commerce"),
                    "City": info.get("city"),
                    "Main": code == main,
                    "IsMainDivision": code == main,
                    "Current": code == sb.settings().current_division,
                    "Status": 1,
                    "BlockingStatus": 0,
                    "Customer": demo.guid("customer", None, "mpe"),
                    "CustomerCode": "                 1",
                    "CustomerName": demo.COMPANY_NAME,
                }
            )
        if spec.name != "system/AllDivisions":  # the divisions the app was granted
            out = [r for r in out if r["Code"] in ctx.chain.divisions]
        return out
    if spec.name == "purchaseorder/PurchaseOrderLines":
        po_ids = eq_values(ast, "PurchaseOrderID")
        if not po_ids:
            raise HTTPFail(400, "A required filter is missing.")
        rows = []
        for pid in po_ids:
            po = div.purchase_orders.get(pid)
            if po is not None:
                rows.extend(po_line_row(div, po, ln) for ln in po.lines)
        return rows
    if spec.name == "purchaseentry/PurchaseEntryLines":
        return [ln for e in div.purchase_entries for ln in e["_lines"]]
    if spec.name == "bulk/Financial/TransactionLines":
        return transaction_lines(div)
    if spec.name == "webhooks/WebhookSubscriptions":
        return [sub.row("") for sub in sb.webhooks.of(ctx.chain.client_id, div.code)]
    return []


def eq_values(ast: Any, field: str) -> list[str]:
    out: list[str] = []
    if ast is None:
        return out
    for term in conjuncts(ast):
        sc = simple_comparison(term)
        if sc and sc[0] == field and sc[1] == "eq" and isinstance(sc[2], str):
            out.append(sc[2])
    return out
