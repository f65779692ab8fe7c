"""Validate: check each pending order the way JAGGAER will, before calling it; quarantine what fails.

An order is valid when it has a supplier, an order number and date, a currency the tenant allows, at least one
line, and every line has a description, a positive numeric quantity, a numeric price >= 0, a GL account and a cost
centre. GL account and cost centre come from the tenant's ``po_push.gl_rules`` (first match wins: the item's group,
then the line's cost centre, then the default); the cost centre is the line's own or the default.

A failing order is ``quarantined`` with a reason a person can act on (which line, which rule, where to fix it); the
others go on. A quarantined order comes back when its data changes in Exact or an admin requeues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_connector.errors import ConfigError
from ml_connector.flows.po_push import model
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry

if TYPE_CHECKING:
    from ml_connector.config.tenant import TenantConfig

FLOW = "po_push"


@dataclass(frozen=True)
class LineAccounting:
    gl_account: str | None
    cost_center: str | None
    problems: tuple[str, ...] = ()


def line_accounting(tenant: TenantConfig, line: dict[str, Any]) -> LineAccounting:
    """GL account and cost centre of one PO line by the tenant's rules (or the problems that prevent them)."""
    rules = tenant.po_push.gl_rules
    n = line.get("line_number")
    group = line.get("item_group")
    cost_center = line.get("cost_center")
    gl = None
    if group and group in rules.by_item_group:
        gl = rules.by_item_group[group]
    elif cost_center and cost_center in rules.by_cost_center:
        gl = rules.by_cost_center[cost_center]
    else:
        gl = rules.default_gl_account
    cc = cost_center or rules.default_cost_center
    problems: list[str] = []
    where = f"tenant {tenant.name} po_push.gl_rules"
    if not gl:
        found = []
        if rules.by_item_group:
            found.append(f"item group {group!r}" if group else "an item without item group")
        found.append(f"cost centre {cost_center!r}" if cost_center else "no cost centre on the line")
        problems.append(f"line {n}: no GL account for {' or '.join(found)} and no default_gl_account in {where}")
    if not cc:
        problems.append(f"line {n}: no cost centre on the line and no default_cost_center in {where}")
    return LineAccounting(gl, cc, tuple(problems))


def po_number(tenant: TenantConfig, payload: dict[str, Any]) -> str:
    """JAGGAER's PONumber for an order (``po_push.po_number_format``; ``{division}``, ``{order_number}``,
    ``{tenant}`` available). A bad format is a ``ConfigError``."""
    fmt = tenant.po_push.po_number_format
    try:
        return fmt.format(
            division=payload.get("division"), order_number=payload.get("order_number"), tenant=tenant.name
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"tenant {tenant.name} po_push.po_number_format {fmt!r} cannot be filled ({exc!r}); use {{division}}, "
            "{order_number} and {tenant}"
        ) from None


def check_order(tenant: TenantConfig, payload: dict[str, Any]) -> list[str]:
    """Every problem that would make JAGGAER refuse this order (empty when it is fine)."""
    problems: list[str] = []
    if payload.get("order_number") is None:
        problems.append("the order has no OrderNumber")
    if model.is_cancelled(payload):
        return problems  # a cancel carries no lines: nothing else to check
    if not payload.get("supplier_id"):
        problems.append("the order has no supplier")
    if not model.parse_day(payload.get("order_date")):
        problems.append(f"the order date {payload.get('order_date')!r} is missing or not a date")
    currency = (payload.get("currency") or "").strip().upper()
    allowed = [c.upper() for c in tenant.po_push.currencies]
    if not currency:
        problems.append("the order has no currency")
    elif currency not in allowed:
        problems.append(
            f"currency {currency!r} is not in tenant {tenant.name} po_push.currencies ({', '.join(allowed)})"
        )
    lines = payload.get("lines") or []
    if not lines:
        problems.append("the order has no lines (JAGGAER needs at least one)")
    seen: set[Any] = set()
    for line in lines:
        n = line.get("line_number")
        if n is None or n in seen:
            problems.append(f"line {n}: missing or repeated line number")
        seen.add(n)
        if not line.get("description"):
            problems.append(f"line {n}: no description (item code or text)")
        qty = model.as_decimal(line.get("quantity"))
        if qty is None:
            problems.append(f"line {n}: quantity {line.get('quantity')!r} is not a number")
        elif qty <= 0:
            problems.append(f"line {n}: quantity {line.get('quantity')} must be positive")
        price = model.as_decimal(line.get("unit_price"))
        if price is None:
            problems.append(f"line {n}: unit price {line.get('unit_price')!r} is not a number")
        elif price < 0:
            problems.append(f"line {n}: unit price {line.get('unit_price')} is negative")
        problems.extend(line_accounting(tenant, line).problems)
    return problems


def quarantine_reason(payload: dict[str, Any], problems: list[str]) -> str:
    return f"order {model.order_ref(payload)}: " + "; ".join(problems)


def validate(ctx: FlowContext) -> Outcomes:
    """Quarantine the division's pending orders that JAGGAER would refuse; count the rest as valid."""
    if ctx.division is None:
        raise ValueError("validate needs a division")
    outcomes = Outcomes()
    if ctx.dry_run:
        return outcomes
    from ml_connector.flows.po_push.batches import chunks, load_chunk, open_ids

    # per chunk of orders: read, check, quarantine what fails (memory stays flat however long the backlog)
    for ids in chunks(open_ids(ctx, ("pending",), ctx.division)):
        with session_scope(ctx.engine) as session:
            rows = load_chunk(session, ctx, ("pending",), ids)
            verdicts: list[tuple[LedgerEntry, list[str], dict[str, Any]]] = []
            for entry, payload in rows:
                problems = check_order(ctx.tenant, payload)
                if not problems:
                    po_number(ctx.tenant, payload)  # a broken format fails the task here, before anything is posted
                    outcomes.add("valid")
                    continue
                verdicts.append((entry, problems, payload))
            for entry, problems, payload in verdicts:
                reason = quarantine_reason(payload, problems)
                ledger.transition(session, entry, "quarantined", reason=reason, run_id=ctx.run_id)
                outcomes.add("quarantined", entry.source_ref, detail=reason)
    return outcomes
