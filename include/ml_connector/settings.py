"""Where runtime settings come from.

Every setting is read from the environment first (``MLC_*``), then from Airflow's configuration section
``[ml_connector]`` (so ``AIRFLOW__ML_CONNECTOR__FERNET_KEYS`` and airflow.cfg both work), then a default.
Nothing here touches the network or a database.
"""

from __future__ import annotations

import configparser
import functools
import os
from pathlib import Path

from ml_connector.errors import ConfigError

DB_CONN_ID = "ml_connector_db"


def _airflow_cfg_path() -> Path:
    """Where Airflow reads airflow.cfg from (``AIRFLOW_CONFIG``, else ``$AIRFLOW_HOME/airflow.cfg``)."""
    if os.environ.get("AIRFLOW_CONFIG"):
        return Path(os.environ["AIRFLOW_CONFIG"]).expanduser()
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "airflow.cfg"


def _from_airflow_cfg(name: str) -> tuple[bool, str | None]:
    """``(settled, value)`` from ``AIRFLOW__ML_CONNECTOR__<NAME>`` or the ``[ml_connector]`` section of airflow.cfg,
    read without importing Airflow (several seconds: ``mlc config check`` must stay fast). ``settled`` is False
    when only Airflow itself can tell (a ``<name>_cmd`` / ``<name>_secret`` variant, an unreadable file)."""
    key = name.lower()
    env = os.environ.get(f"AIRFLOW__ML_CONNECTOR__{name.upper()}")
    if env:
        return True, env
    if any(os.environ.get(f"AIRFLOW__ML_CONNECTOR__{name.upper()}_{v}") for v in ("CMD", "SECRET")):
        return False, None
    path = _airflow_cfg_path()
    try:
        stat = path.stat()
    except OSError:
        return True, None  # no airflow.cfg: Airflow would use its defaults, and it has none for [ml_connector]
    section = _ml_connector_section(str(path), stat.st_mtime_ns, stat.st_size)
    if section is None:
        return False, None
    if f"{key}_cmd" in section or f"{key}_secret" in section:
        return False, None
    return True, section.get(key)


@functools.lru_cache(maxsize=4)
def _ml_connector_section(path: str, mtime_ns: int, size: int) -> dict[str, str] | None:
    """The ``[ml_connector]`` options of an airflow.cfg (cached per file version); ``None`` when unreadable."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
        if not parser.has_section("ml_connector"):
            return {}
        return {option: parser.get("ml_connector", option) for option in parser.options("ml_connector")}
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None


def get_setting(name: str, default: str | None = None) -> str | None:
    """Read ``MLC_<NAME>`` or ``[ml_connector] <name>`` (case-insensitive name)."""
    env = os.environ.get(f"MLC_{name.upper()}")
    if env:
        return env
    settled, value = _from_airflow_cfg(name)
    if not settled:
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
