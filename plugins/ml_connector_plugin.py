"""Airflow UI plugin: mounts ml-connector's FastAPI app at /ml-connector and adds the nav entries
"ml-connector status", "Mappings", "Ledger" and "Needs a person".

The root middleware makes the connection list's *Test* button work for connections without a port (see
``ml_connector.web.connection_test_fix``).

Thin on purpose: everything lives in ``ml_connector.web.app``. Building the app touches no database or network.

The app is built on its first request (or attribute access), not when the plugin loads: every Airflow process loads
the plugins folder — each task process does, for its template context — and only the api-server serves the app.
Importing and building it costs about 2 s of CPU (measured in bench/dags_test.py; docs/airflow-overhead.md).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from ml_connector.web.connection_test_fix import ConnectionTestPortZeroMiddleware


class LazyApp:
    """An ASGI app that builds ``ml_connector.web.app.create_app()`` when first called or inspected."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from ml_connector.web.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:  # routes, state, ... of the built app
        return getattr(self.app, name)


class MlConnectorPlugin(AirflowPlugin):
    name = "ml_connector"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": "/ml-connector", "name": "ml-connector"}]
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
