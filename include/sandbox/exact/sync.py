"""The Exact sandbox's sync endpoints (``sync/...``): Timestamp paging over purchase-order rows and deletions."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import Response

from sandbox.exact.entities import SYNC_ORDER_FIELDS, EntitySet, po_getters, sync_getters, sync_head, sync_po_row
from sandbox.exact.odata import BoolOp, ODataError, compile_filter, conjuncts, filter_fields, simple_comparison
from sandbox.exact.render import envelope, next_link, query_options, render, select_fields
from sandbox.exact.responses import Ctx, query_option
from sandbox.exact.state import ExactState
from sandbox.exact.store import DAY_MS, PO, Division

_TS_RE = re.compile(r"^\s*(\d+)L?\s*$")


def sync_collection(sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division) -> Response:
    ast, select, expand, top = query_options(sb, ctx, spec)
    if expand:
        raise ODataError("$expand is not supported on sync endpoints.")
    fields, _, _ = select_fields(sb, spec, select, [])
    start = 0
    for term in conjuncts(ast) if ast is not None else []:
        sc = simple_comparison(term)
        if sc and sc[0] == "Timestamp" and isinstance(sc[2], int):
            if sc[1] == "gt":
                start = max(start, sc[2])
            elif sc[1] == "ge":
                start = max(start, sc[2] - 1)
    tok = query_option(ctx, "$skiptoken")
    if tok:
        m = _TS_RE.match(tok)
        if m is None:
            raise ODataError(f"Invalid $skiptoken '{tok}'.")
        start = max(start, int(m.group(1)))
    size = sb.settings().sync_page_size
    limit = size if top is None else min(size, top)
    if spec.name == "sync/Deleted":
        rows, more = sync_deleted(sb, spec, div, start, ast, limit)
    else:
        rows, more = sync_po_rows(sb, spec, div, start, ast, limit)
    results = [render(sb, ctx, spec, div, r, fields) for r in rows]
    nxt = None
    top_left = None if top is None else top - len(results)
    if more and rows and (top_left is None or top_left > 0):
        nxt = next_link(sb, ctx, spec, f"{rows[-1]['Timestamp']}L", top_left)
    return envelope(sb, ctx, spec, results, nxt)


def sync_deleted(
    sb: ExactState, spec: EntitySet, div: Division, start: int, ast: Any, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    pred = compile_filter(ast, spec.schema, type_name=spec.type_name) if ast is not None else None
    days = sb.settings().deleted_retention_days
    oldest = None if days is None else sb.store.now_ms() - int(days * DAY_MS)
    rows: list[dict[str, Any]] = []
    for row in sb.store.deleted_after(div, start):
        if oldest is not None and row["DeletedDate"] < oldest:
            continue  # Exact keeps deletions about two months
        if pred is None or pred(row):
            if len(rows) == limit:
                return rows, True
            rows.append(row)
    return rows, False


def sync_po_rows(
    sb: ExactState, spec: EntitySet, div: Division, start: int, ast: Any, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` sync rows after Timestamp ``start`` matching ``ast``, and whether more exist.

    The filter runs on ``(order, row)`` pairs through getters, before anything is rendered; terms that only
    name order-level fields (``OrderStatus``, ``Supplier``, ``Modified``...) are decided once per order. Only
    the rows of the page are built."""
    terms = conjuncts(ast) if ast is not None else []
    order_terms = [t for t in terms if (f := filter_fields(t)) and f <= SYNC_ORDER_FIELDS]
    row_terms = [t for t in terms if not any(t is o for o in order_terms)]
    order_pred = (
        compile_filter(all_of(order_terms), spec.schema, po_getters(div), spec.type_name) if order_terms else None
    )
    row_pred = compile_filter(all_of(row_terms), spec.schema, sync_getters(div), spec.type_name) if row_terms else None
    pairs: list[tuple[PO, int]] = []
    more = False
    for po, first in div.sync.orders_after(start):
        if order_pred is not None and not order_pred(po):
            continue
        for li in range(first, po.row_count):
            if row_pred is None or row_pred((po, li)):
                if len(pairs) == limit:
                    more = True
                    break
                pairs.append((po, li))
        if more:
            break
    rows: list[dict[str, Any]] = []
    last: PO | None = None
    head: dict[str, Any] = {}
    for po, li in pairs:
        if po is not last:
            head = sync_head(div, po)
            last = po
        rows.append(sync_po_row(div, po, li, head))
    return rows, more


def all_of(terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else BoolOp("and", tuple(terms))
