"""Exact Online: OAuth token chain, OData helpers, rate budget, REST client and the Airflow hook.

``ml_connector.exact.hook`` imports Airflow; the other modules do not (the CLI and tests use them without it).
"""
