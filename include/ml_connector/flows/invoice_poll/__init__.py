"""Invoice poll: approved JAGGAER invoices → Exact Online purchase entries, each exactly once.

Stages (plain functions taking a ``FlowContext``; the DAG in ``dagbuild.invoice_poll`` calls them):

1. :func:`extract` — invoices updated in the run window (+ overlap), approved, routed to a division, staged;
2. :func:`map_vendors` — per division: JAGGAER vendor → Exact supplier (vendor map, match, policy);
3. :func:`validate` — per division: mappings and Exact master data checked, failures quarantined;
4. :func:`post` — per division: ``purchaseentry/PurchaseEntries``, exactly once;
5. :func:`report_run` — counts, held invoices with their fix, alert, red run on failure.

See ``docs/invoice-poll.md``.
"""

from ml_connector.flows.invoice_poll import dry_run
from ml_connector.flows.invoice_poll import extract as reading
from ml_connector.flows.invoice_poll.common import FLOW, VENDOR_FLOW
from ml_connector.flows.invoice_poll.post import post
from ml_connector.flows.invoice_poll.report import report_run
from ml_connector.flows.invoice_poll.validate import validate
from ml_connector.flows.invoice_poll.vendors import map_vendors
from ml_connector.flows.runtime import FlowContext, Outcomes

__all__ = ["FLOW", "VENDOR_FLOW", "extract", "map_vendors", "post", "report_run", "validate"]


def extract(ctx: FlowContext) -> Outcomes:
    """The extract stage the DAG runs: the JAGGAER read (``extract.py``), or in a dry run the read-only preview of
    the whole flow (``dry_run.py``). Chosen here so neither module imports the other."""
    return dry_run.preview(ctx) if ctx.dry_run else reading.extract(ctx)
