"""Invoice poll Airflow DAGs: one ``jaggaer_invoice_poll__<tenant>`` per tenant in the tenant file (approved JAGGAER
invoices → Exact Online purchase entries).

Thin on purpose: the DAGs are built by ``ml_connector.dagbuild.invoice_poll`` from the tenant configuration; nothing
here touches the network or a database. A broken tenant file shows as this file's import error, listing every
problem. (The words "airflow" and "dag" in this file keep Airflow's safe-mode DAG discovery from skipping it.)
"""

from ml_connector.dagbuild.invoice_poll import build_all

globals().update(build_all())
