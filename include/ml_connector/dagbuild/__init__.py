"""Build Airflow DAG objects from the tenant configuration.

``dags/*.py`` stay thin: they load the tenant file, call a builder here per tenant and put the DAGs in their
globals. Builders do no network or database I/O (DAG files are parsed often and must parse in well under a second).
``dagbuild.common`` holds what every flow's DAG shares: default args, pools, params, the report task.
"""
