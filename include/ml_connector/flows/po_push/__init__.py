"""PO push: Exact Online purchase orders become JAGGAER purchase orders, each exactly once.

Stages (plain functions of a per-division ``FlowContext``; the DAG runs them in this order per division):

``extract``      read changed orders from Exact, stage them in the ledger (``extract.py``)
``map_vendors``  make sure each order's supplier exists in JAGGAER (``vendors.py``)
``validate``     quarantine what JAGGAER would refuse (``validate.py``)
``post``         one ``POXMLImport`` per order, exactly once (``post.py``)
``report``       ``flows.runtime.report`` over the stages' counts

A dry run (``params.dry_run``) does all of it read-only in ``extract`` (``preview.py``) and logs the XML it would send.
"""

from ml_connector.flows.po_push import extract as reading
from ml_connector.flows.po_push import preview
from ml_connector.flows.po_push.post import post
from ml_connector.flows.po_push.validate import validate
from ml_connector.flows.po_push.vendors import map_vendors
from ml_connector.flows.runtime import FlowContext, Outcomes

FLOW = "po_push"
STAGES = ("extract", "map_vendors", "validate", "post")

__all__ = ["FLOW", "STAGES", "extract", "map_vendors", "post", "validate"]


def extract(ctx: FlowContext) -> Outcomes:
    """The extract stage the DAG runs for ``ctx.division``: the Exact read (``extract.py``), or in a dry run the
    read-only preview of the whole flow (``preview.py``). Chosen here so neither module imports the other."""
    return preview.preview(ctx) if ctx.dry_run else reading.extract(ctx)
