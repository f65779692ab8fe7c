# The ml-connector Airflow image: Airflow 3.3.2 + pinned dependencies + the connector package.
FROM apache/airflow:3.3.2-python3.11

USER airflow
COPY --chown=airflow:0 requirements.txt /opt/ml-connector/requirements.txt
RUN pip install --no-cache-dir -r /opt/ml-connector/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/ml-connector/
COPY --chown=airflow:0 include /opt/ml-connector/include
RUN pip install --no-cache-dir --no-deps -e /opt/ml-connector

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 include/config /opt/ml-connector/config
