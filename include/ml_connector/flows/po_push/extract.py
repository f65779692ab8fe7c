"""Extract: read the purchase orders that changed in one Exact division and stage them in the ledger.

Three ways to read, chosen by the run (``FlowContext``):

- **ids** (manual param, order numbers): ``purchaseorder/PurchaseOrders`` filtered on ``OrderNumber`` (20 per call)
  with the lines expanded. The cursor does not move.
- **window** (manual run with dates, backfill): ``purchaseorder/PurchaseOrders`` by ``Modified`` in
  ``[start, end)`` with ``$expand=PurchaseOrderLines``, every ``__next`` followed (the expanded lines' too). The
  cursor does not move.
- **cursor** (scheduled and plain manual runs): ``sync/PurchaseOrder/PurchaseOrders`` with
  ``Timestamp gt {cursor}L`` (1,000 rows a page), folded into orders, plus ``sync/Deleted`` (``EntityType`` 22)
  for orders deleted in Exact. Both cursors are written in the same transaction as the last staged orders, so a
  crash before that commit re-reads (and re-stages identically: no change) instead of skipping.

Staging uses ``ledger.stage(..., repost_changed=True)``: a posted order whose data changed becomes pending again
and goes to JAGGAER as an update; a cancelled (``OrderStatus`` 40) or deleted order is staged as such and the post
stage cancels it in JAGGAER if it was sent before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ml_connector.errors import ConfigError, RateBudgetExhausted
from ml_connector.exact import odata
from ml_connector.flows import budget_plan
from ml_connector.flows.po_push import model
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.cursors import get_cursor, set_cursor
from ml_connector.store.db import session_scope

FLOW = "po_push"
CHUNK = 500  # orders staged per transaction
CURSOR_START = 1


def cursor_scope(division: int) -> str:
    return str(int(division))


def deleted_cursor_scope(division: int) -> str:
    return f"{int(division)}:deleted"


def order_numbers(ctx: FlowContext) -> list[int]:
    """The ``ids`` param as Exact order numbers (``ConfigError`` naming a bad one)."""
    numbers: list[int] = []
    bad: list[str] = []
    for raw in ctx.params.ids:
        try:
            numbers.append(int(raw))
        except ValueError:
            bad.append(raw)
    if bad:
        raise ConfigError(f"param ids: {', '.join(repr(b) for b in bad)} are not Exact order numbers (integers)")
    return numbers


# --------------------------------------------------------------------------------------------------- reading
class ItemGroups:
    """Item GUID → item group code, read from Exact only when the tenant's GL rules use item groups."""

    def __init__(self, ctx: FlowContext, division: int) -> None:
        self.ctx = ctx
        self.division = division
        self.enabled = bool(ctx.tenant.po_push.gl_rules.by_item_group)
        self.cache: dict[str, str | None] = {}

    def enrich(self, orders: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        wanted = sorted(
            {ln["item_id"] for o in orders for ln in o.get("lines", []) if ln.get("item_id")} - set(self.cache)
        )
        if wanted:
            hook = self.ctx.exact_hook()
            for flt in model.batched_or_filters("ID", [odata.guid(i) for i in wanted]):
                for row in hook.iter_collection(self.division, model.ITEMS_PATH, select=model.ITEM_SELECT, filter=flt):
                    item_id = str(row.get("ID") or "").lower()
                    self.cache[item_id] = (row.get("ItemGroupCode") or "").strip() or None
            for item_id in wanted:
                self.cache.setdefault(item_id, None)
        for order in orders:
            for line in order.get("lines", []):
                if line.get("item_id"):
                    line["item_group"] = self.cache.get(line["item_id"])


def read_expanded(ctx: FlowContext, division: int, flt: str) -> Iterator[dict[str, Any]]:
    """Orders from ``purchaseorder/PurchaseOrders`` with their lines (every ``__next`` followed)."""
    hook = ctx.exact_hook()
    rows = hook.iter_collection(
        division, model.ORDERS_PATH, select=model.EXPANDED_SELECT, filter=flt, expand=model.LINES_NAV
    )
    for row in rows:
        lines = list(hook.iter_expanded(row, model.LINES_NAV))
        yield model.order_from_expanded(row, lines, division)


def read_by_ids(ctx: FlowContext, division: int, order_ids: list[str]) -> Iterator[dict[str, Any]]:
    for flt in model.batched_or_filters("PurchaseOrderID", [odata.guid(i) for i in order_ids]):
        yield from read_expanded(ctx, division, flt)


def read_by_numbers(ctx: FlowContext, division: int, numbers: list[int]) -> Iterator[dict[str, Any]]:
    for flt in model.batched_or_filters("OrderNumber", [str(n) for n in numbers]):
        yield from read_expanded(ctx, division, flt)


def read_window(ctx: FlowContext, division: int) -> Iterator[dict[str, Any]]:
    assert ctx.window is not None
    start, end = ctx.window
    flt = f"Modified ge {odata.datetime_literal(start)} and Modified lt {odata.datetime_literal(end)}"
    yield from read_expanded(ctx, division, flt)


class SyncRead:
    """The cursor read: orders as they complete, then what was left incomplete (re-read by id)."""

    def __init__(self, ctx: FlowContext, division: int, cursor: int) -> None:
        self.ctx = ctx
        self.division = division
        self.cursor = cursor
        self.folder = model.OrderFolder(division)

    def orders(self) -> Iterator[dict[str, Any]]:
        hook = self.ctx.exact_hook()
        rows = hook.iter_collection(
            self.division,
            model.SYNC_PATH,
            select=model.SYNC_SELECT,
            filter=f"Timestamp gt {odata.int64(self.cursor)}",
        )
        for row in rows:
            yield from self.folder.add(row)
        done, incomplete = self.folder.flush()
        yield from done
        if incomplete:
            self.ctx.logger.info(
                "%d order(s) came incomplete from the sync endpoint; reading them by id", len(incomplete)
            )
            yield from read_by_ids(self.ctx, self.division, incomplete)

    @property
    def new_cursor(self) -> int:
        top = self.folder.max_timestamp
        return max(self.cursor, top) if top is not None else self.cursor


def read_deleted(ctx: FlowContext, division: int, cursor: int) -> tuple[list[str], int]:
    """Ids of purchase orders deleted since ``cursor`` and the new cursor."""
    hook = ctx.exact_hook()
    ids: list[str] = []
    top = cursor
    flt = f"Timestamp gt {odata.int64(cursor)} and EntityType eq {model.ENTITY_TYPE_PURCHASE_ORDER}"
    for row in hook.iter_collection(division, model.DELETED_PATH, select=model.DELETED_SELECT, filter=flt):
        ts = row.get("Timestamp")
        if ts is not None:
            top = max(top, int(ts))
        if row.get("EntityType") not in (None, model.ENTITY_TYPE_PURCHASE_ORDER):
            continue
        key = str(row.get("EntityKey") or "").lower().strip("{}")
        if key:
            ids.append(key)
    return ids, top


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    yield chunk


def _stage(ctx: FlowContext, division: int, orders: list[dict[str, Any]], outcomes: Outcomes, session: Any) -> None:
    for payload in orders:
        if not payload.get("id"):
            outcomes.add("skipped", detail="an order row without PurchaseOrderID was ignored")
            continue
        result = ledger.stage(
            session,
            tenant=ctx.tenant.name,
            flow=FLOW,
            source_id=payload["id"],
            payload=payload,
            source_ref=model.order_ref(payload),
            division=division,
            run_id=ctx.run_id,
            repost_changed=True,
        )
        outcomes.add("extracted")
        outcomes.add(
            {"new": "staged_new", "changed": "staged_changed"}.get(result, "unchanged"), model.order_ref(payload)
        )


# --------------------------------------------------------------------------------------------------- stage
def extract(ctx: FlowContext) -> Outcomes:
    """Read and stage one division's changed orders (``ctx.division``). A dry run goes to
    :func:`preview.preview` instead (the package's :func:`extract` chooses).

    When the PO push's share of the division's daily Exact calls is spent (``RateBudgetExhausted``: refused before
    sending), the stage ends normally with ``budget_paused``: the cursors did not move (they are written only with
    the last chunk), so the next run after the reset reads what this one did not."""
    if ctx.division is None:
        raise ValueError("extract needs a division (FlowContext.for_division)")
    if ctx.dry_run:
        raise ValueError("a dry run's extract is preview.preview: call ml_connector.flows.po_push.extract")
    outcomes = Outcomes()
    try:
        return _extract(ctx, outcomes)
    except RateBudgetExhausted as spent:
        budget_plan.po_paused(ctx, "extract", spent, outcomes)
        return outcomes


def _extract(ctx: FlowContext, outcomes: Outcomes) -> Outcomes:
    division = ctx.division
    assert division is not None
    items = ItemGroups(ctx, division)
    tenant = ctx.tenant.name

    if ctx.params.ids or ctx.window is not None:
        source = read_by_numbers(ctx, division, order_numbers(ctx)) if ctx.params.ids else read_window(ctx, division)
        for chunk in _chunks(source, CHUNK):
            items.enrich(chunk)
            with session_scope(ctx.engine) as session:
                _stage(ctx, division, chunk, outcomes, session)
        ctx.logger.info("division %s: %d order(s) read (%s); cursor unchanged", division, outcomes["extracted"],
                        "by order number" if ctx.params.ids else "by Modified window")  # fmt: skip
        return outcomes

    with session_scope(ctx.engine) as session:
        cursor = int(get_cursor(session, tenant, FLOW, cursor_scope(division)) or CURSOR_START)
        del_cursor = int(get_cursor(session, tenant, FLOW, deleted_cursor_scope(division)) or CURSOR_START)
    read = SyncRead(ctx, division, cursor)
    pending: list[dict[str, Any]] = []
    for order in read.orders():
        pending.append(order)
        if len(pending) >= CHUNK:
            items.enrich(pending)
            with session_scope(ctx.engine) as session:
                _stage(ctx, division, pending, outcomes, session)
            pending = []
    items.enrich(pending)
    deleted_ids, new_del_cursor = read_deleted(ctx, division, del_cursor)

    # The last chunk, the deletions and both cursors commit together: the cursors never pass unstaged rows.
    with session_scope(ctx.engine) as session:
        _stage(ctx, division, pending, outcomes, session)
        for order_id in deleted_ids:
            entry = ledger.get_entry(session, tenant, FLOW, order_id)
            if entry is None:
                continue  # never seen: nothing to cancel
            previous = ledger.staged_payload(session, entry)
            if previous.get("deleted"):
                continue
            ledger.stage(
                session,
                tenant=tenant,
                flow=FLOW,
                source_id=order_id,
                payload=model.deleted_payload(previous),
                source_ref=entry.source_ref,
                division=division,
                run_id=ctx.run_id,
                repost_changed=True,
            )
            outcomes.add("deleted_in_exact", entry.source_ref)
        set_cursor(session, tenant, FLOW, cursor_scope(division), str(read.new_cursor))
        set_cursor(session, tenant, FLOW, deleted_cursor_scope(division), str(new_del_cursor))
    ctx.logger.info(
        "division %s: %d sync row(s) since Timestamp %s, %d order(s); cursor now %s; %d deletion(s)",
        division,
        read.folder.rows,
        cursor,
        outcomes["extracted"],
        read.new_cursor,
        len(deleted_ids),
    )
    return outcomes
