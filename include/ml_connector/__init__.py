"""ml-connector: Exact Online <-> JAGGAER integration on Apache Airflow 3."""

__version__ = "0.1.0"
