"""Where runtime settings come from.

Every setting is read from the environment first (``MLC_*``), then from Airflow's configuration section
``[ml_connector]`` (so ``AIRFLOW__ML_CONNECTOR__FERNET_KEYS`` and airflow.cfg both work), then a default.
Nothing here touches the network or a database.
"""

from __future__ import annotations

import os
from pathlib import Path

from ml_connector.errors import ConfigError

DB_CONN_ID = "ml_connector_db"


def get_setting(name: str, default: str | None = None) -> str | None:
    """Read ``MLC_<NAME>`` or ``[ml_connector] <name>`` (case-insensitive name)."""
    env = os.environ.get(f"MLC_{name.upper()}")
    if env:
        return env
    try:
        from airflow.configuration import conf

        value = conf.get("ml_connector", name.lower(), fallback=None)
    except Exception:  # Airflow not configured (plain unit tests, the CLI outside a home)
        value = None
    return value or default


def fernet_keys() -> list[str]:
    """The connector's Fernet keys, newest first (comma-separated for rotation)."""
    raw = get_setting("fernet_keys")
    if not raw:
        raise ConfigError(
            "No encryption key: set [ml_connector] fernet_keys in airflow.cfg or MLC_FERNET_KEYS "
            "(generate one with: mlc keys generate)"
        )
    return [k.strip() for k in raw.split(",") if k.strip()]


def config_path() -> Path:
    """The tenant configuration file (YAML)."""
    default = Path(__file__).resolve().parents[1] / "config" / "tenants.yaml"
    return Path(get_setting("config_path") or default)
