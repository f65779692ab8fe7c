"""PO push Airflow DAGs: one ``exact_po_push__<tenant>`` per tenant in the tenant file (Exact Online purchase orders
→ JAGGAER POs).

Thin on purpose: the DAGs are built by ``ml_connector.dagbuild.po_push`` from the tenant configuration; nothing here
touches the network or a database. A broken tenant file shows as this file's import error, listing every problem.
(The words "airflow" and "dag" in this file keep Airflow's safe-mode DAG discovery from skipping it.)
"""

from ml_connector.dagbuild.po_push import build_all

globals().update(build_all())
