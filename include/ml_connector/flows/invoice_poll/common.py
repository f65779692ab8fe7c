"""Names and small helpers the invoice-poll stages share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ml_connector.flows.runtime import FLOW_INVOICE_POLL

if TYPE_CHECKING:
    from ml_connector.flows.runtime import FlowContext

FLOW = FLOW_INVOICE_POLL
#: Ledger flow of suppliers created in Exact for unmatched vendors (policy ``create``): exactly once as well.
VENDOR_FLOW = "invoice_poll_vendor"

# Quarantine reasons start with one of these, so a run knows which ones it may look at again by itself.
ROUTE_PREFIX = "routing: "  # unknown business unit: retried when the tenant file or a code map routes it
CHECK_PREFIX = "validation: "  # our own checks: re-checked every run (a fixed mapping heals it)
EXACT_PREFIX = "Exact refused: "  # Exact's answer: never retried blindly (only when the invoice changes)
DATA_PREFIX = "data: "  # the invoice cannot be read: retried when it changes in JAGGAER

INVOICE_ENDPOINT = "purchaseentry/PurchaseEntries"
ACCOUNTS_ENDPOINT = "crm/Accounts"


def id_filter(ctx: FlowContext) -> list[str] | None:
    """The ``ids`` param as ledger source ids (``None``: every record)."""
    return list(ctx.params.ids) if ctx.params.ids else None


def divisions_of(ctx: FlowContext) -> list[int]:
    """Every division invoices of this tenant can be routed to, in a stable order."""
    out: list[int] = []
    for division in [*ctx.tenant.exact.divisions, *ctx.tenant.jaggaer.business_units.values()]:
        if division not in out:
            out.append(int(division))
    return out


def short(values: Iterable[str], limit: int = 10) -> str:
    items = list(values)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
