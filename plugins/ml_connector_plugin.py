"""Airflow UI plugin: mounts ml-connector's FastAPI app at /ml-connector and adds the nav entries
"ml-connector status", "Mappings", "Ledger" and "Needs a person".

The root middleware makes the connection list's *Test* button work for connections without a port (see
``ml_connector.web.connection_test_fix``).

Thin on purpose: everything lives in ``ml_connector.web.app``. Building the app touches no database or network.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ml_connector.web.app import create_app
from ml_connector.web.connection_test_fix import ConnectionTestPortZeroMiddleware


class MlConnectorPlugin(AirflowPlugin):
    name = "ml_connector"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/ml-connector", "name": "ml-connector"}]
    fastapi_root_middlewares = [
        {"middleware": ConnectionTestPortZeroMiddleware, "args": [], "kwargs": {}, "name": "ml-connector test button"}
    ]
    external_views = [
        {
            "name": "ml-connector status",
            "href": "ml-connector/ui/status",
            "destination": "nav",
            "category": "browse",
            "url_route": "ml-connector-status",
        },
        {
            "name": "Mappings",
            "href": "ml-connector/ui/mappings",
            "destination": "nav",
            "category": "browse",
            "url_route": "ml-connector-mappings",
        },
        {
            "name": "Ledger",
            "href": "ml-connector/ui/ledger",
            "destination": "nav",
            "category": "browse",
            "url_route": "ml-connector-ledger",
        },
        {
            "name": "Needs a person",
            "href": "ml-connector/ui/ledger/attention",
            "destination": "nav",
            "category": "browse",
            "url_route": "ml-connector-attention",
        },
        {
            "name": "Reconciliation",
            "href": "ml-connector/ui/reconcile",
            "destination": "nav",
            "category": "browse",
            "url_route": "ml-connector-reconcile",
        },
    ]
