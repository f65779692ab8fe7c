"""Airflow UI plugin: mounts ml-connector's FastAPI app at /ml-connector and adds the nav entries
"ml-connector status" and "Mappings".

Thin on purpose: everything lives in ``ml_connector.web.app``. Building the app touches no database or network.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ml_connector.web.app import create_app


class MlConnectorPlugin(AirflowPlugin):
    name = "ml_connector"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/ml-connector", "name": "ml-connector"}]
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
    ]
