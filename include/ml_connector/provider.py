"""Airflow provider entry point: the ``exact_online`` and ``jaggaer`` connection types and their form fields,
and a hook for ``sqlite`` connections (the embedded connector database, ``ml_connector_db``): Airflow 3.3 ships no
SQLite provider, so without it that connection's *Test* button has no hook to call.

Airflow 3.3's UI reads the declarative ``ui-field-behaviour`` / ``conn-fields`` here (the old
``get_connection_form_widgets`` classmethods are ignored without the FAB provider).
"""

from __future__ import annotations

from typing import Any

from ml_connector import __version__

#: The form field that marks a connection as a local sandbox (``ml_connector.net_policy``).
_SANDBOX_FIELD = {
    "label": "Sandbox (local test server)",
    "description": (
        "Only for the bundled sandbox servers: allows http on loopback (127.0.0.1). Leave off for Exact Online and "
        "JAGGAER themselves: then every URL must be https to a public host, and credentials go nowhere else."
    ),
    "schema": {"type": ["boolean", "null"], "default": False},
}

_EXACT = {
    "connection-type": "exact_online",
    "hook-class-name": "ml_connector.exact.hook.ExactOnlineHook",
    "hook-name": "Exact Online",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "Region host", "login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "host": "https://start.exactonline.co.uk (.nl, .be, .de, .com, .es, .fr)",
            "login": "the app's client id from the Exact App Center",
            "password": "the app's client secret",
        },
    },
    "conn-fields": {
        "redirect_uri": {
            "label": "Redirect URI",
            "description": "Exactly as registered for the app, e.g. https://airflow.example.com/ml-connector/exact/callback",
            "schema": {"type": ["string", "null"], "format": "uri"},
        },
        "webhook_secret": {
            "label": "Webhook secret",
            "description": (
                "The app's webhook secret from Exact's App Center: the receiver accepts only notifications signed "
                "with it (mlc exact webhooks subscribe). Empty: webhooks off, the schedule alone pushes POs."
            ),
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "sandbox": _SANDBOX_FIELD,
    },
}

_JAGGAER = {
    "connection-type": "jaggaer",
    "hook-class-name": "ml_connector.jaggaer.hook.JaggaerHook",
    "hook-name": "JAGGAER",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "J1P API base URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "host": "https://prep-reg02.api.jaggaer.com",
            "login": "OAuth client id (client credentials)",
            "password": "OAuth client secret",
        },
    },
    "conn-fields": {
        "token_url": {
            "label": "Token URL",
            "description": (
                "Keycloak token endpoint; default: {host}/auth/realms/J1p-integrations/protocol/openid-connect/token"
            ),
            "schema": {"type": ["string", "null"], "format": "uri"},
        },
        "xml_url": {
            "label": "eProcurement XML base URL",
            "description": (
                "eProcurement host or its Router base: https://integrations.sciquest.com or "
                "https://integrations.sciquest.com/apps/Router (both work); default: {host}/apps/Router"
            ),
            "schema": {"type": ["string", "null"], "format": "uri"},
        },
        "xml_identity": {
            "label": "XML Identity",
            "description": "Identity in the message header of POXMLImport / TSMSupplierXMLImport",
            "schema": {"type": ["string", "null"]},
        },
        "xml_shared_secret": {
            "label": "XML SharedSecret",
            "description": "SharedSecret in the message header",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "filter_style": {
            "label": "J1P invoice filter style",
            "description": (
                "fiql (default): flt=lastUpdate=ge=...;lastUpdate=lt=... ; params: separate query parameters "
                "(names in extra date_from_param / date_to_param, default lastUpdateFrom / lastUpdateTo)"
            ),
            "schema": {"type": ["string", "null"]},
        },
        "sandbox": _SANDBOX_FIELD,
    },
}


_SQLITE = {
    "connection-type": "sqlite",
    "hook-class-name": "ml_connector.connector_db_hook.ConnectorDbHook",
    "hook-name": "SQLite (ml-connector database)",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login", "password"],
        "relabeling": {"host": "Database file path"},
        "placeholders": {"host": "/path/to/.airflow/ml_connector.db"},
    },
    "conn-fields": {
        "sqlalchemy_url": {
            "label": "SQLAlchemy URL",
            "description": "Optional: a full database URL, used instead of the file path when set",
            "schema": {"type": ["string", "null"]},
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "ml-connector",
        "name": "ml-connector",
        "description": "Exact Online and JAGGAER connections for the ml-connector integration",
        "versions": [__version__],
        "connection-types": [_EXACT, _JAGGAER, _SQLITE],
    }
