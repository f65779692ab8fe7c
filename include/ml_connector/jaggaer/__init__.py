"""JAGGAER: ``JaggaerHook`` (``hook``), J1P JSON helpers (``j1p``), eProcurement XML builders/parsers (``xml``).

Importing this package imports neither Airflow nor the network; ``ml_connector.jaggaer.hook`` imports Airflow.
"""
