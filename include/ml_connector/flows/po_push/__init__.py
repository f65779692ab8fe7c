"""PO push: Exact Online purchase orders become JAGGAER purchase orders, each exactly once.

Stages (plain functions of a per-division ``FlowContext``; the DAG runs them in this order per division):

``extract``      read changed orders from Exact, stage them in the ledger (``extract.py``)
``map_vendors``  make sure each order's supplier exists in JAGGAER (``vendors.py``)
``validate``     quarantine what JAGGAER would refuse (``validate.py``)
``post``         one ``POXMLImport`` per order, exactly once (``post.py``)
``report``       ``flows.runtime.report`` over the stages' counts

A dry run (``params.dry_run``) does all of it read-only in ``extract`` (``preview.py``) and logs the XML it would send.
"""

from ml_connector.flows.po_push.extract import extract
from ml_connector.flows.po_push.post import post
from ml_connector.flows.po_push.validate import validate
from ml_connector.flows.po_push.vendors import map_vendors

FLOW = "po_push"
STAGES = ("extract", "map_vendors", "validate", "post")

__all__ = ["FLOW", "STAGES", "extract", "map_vendors", "post", "validate"]
