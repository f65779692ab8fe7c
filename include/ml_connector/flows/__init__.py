"""The connector's flows: each stage a plain function the DAG tasks call (testable without Airflow).

``flows.runtime`` is what every flow shares: the run context built from Airflow's task context, the fail-fast
rules, outcome counting and the run report. ``flows.po_push`` and ``flows.invoice_poll`` hold the stages.
"""
