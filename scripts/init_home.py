"""Create the project-local Airflow home once (idempotent).

Writes ``$AIRFLOW_HOME/airflow.cfg`` with the repo's dags/plugins folders, examples off, the Test button on,
and every secret Airflow 3.3 needs, generated once and kept (``.airflow/`` is git-ignored, never committed):

- ``[core] fernet_key`` (Airflow's: connections, variables) and ``[ml_connector] fernet_keys`` (the connector's:
  tokens, mapping columns);
- ``[api_auth] jwt_secret``: signs the tokens the scheduler gives each task for the Execution API. Without it every
  component invents its own random key, the api-server rejects each task's token ("Signature verification
  failed", HTTP 403) and no task ever runs;
- ``[api] secret_key``: Airflow's session signing key (and the mappings/console pages' CSRF key).

Never overwrites an existing airflow.cfg (the keys in it protect data already stored), but adds a secret that
an older home lacks. Writes the demo connections file each time (paths and ports are machine-specific, so it is
generated, not committed). Ports follow ``MLC_EXACT_PORT`` / ``MLC_JAGGAER_PORT`` (defaults 8701 / 8702), which
``scripts/up.sh`` also uses; the Exact redirect URI is the URL the README tells people to open,
http://localhost:8080 (the sandbox accepts it and 127.0.0.1:8080).
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
UI_URL = "http://localhost:8080"

# (section, key, generator): secrets every Airflow 3.3 component of one deployment must share.
SECRETS: list[tuple[str, str, Callable[[], str]]] = [
    ("core", "fernet_key", lambda: Fernet.generate_key().decode()),
    ("api", "secret_key", lambda: secrets.token_urlsafe(32)),
    ("api_auth", "jwt_secret", lambda: secrets.token_urlsafe(48)),
    ("ml_connector", "fernet_keys", lambda: Fernet.generate_key().decode()),
]


def add_missing_secrets(cfg: Path) -> list[str]:
    """Add each secret of :data:`SECRETS` that ``cfg`` lacks (or has empty), keeping every other line as it is.

    Returns ``section.key`` of what was added."""
    text = cfg.read_text(encoding="utf-8")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    lines = text.splitlines()
    added: list[str] = []
    for section, key, generate in SECRETS:
        if parser.has_section(section) and parser.get(section, key, fallback="").strip():
            continue
        entry = f"{key} = {generate()}"
        header = next((i for i, line in enumerate(lines) if line.strip() == f"[{section}]"), None)
        if header is None:
            lines += ["", f"[{section}]", entry]
        else:
            # drop an empty "key =" line of that section, then put the value right under the header
            end = next((i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
            lines = [
                line
                for i, line in enumerate(lines)
                if not (header < i < end and line.split("=")[0].strip() == key and "=" in line)
            ]
            lines.insert(header + 1, entry)
        added.append(f"{section}.{key}")
    if added:
        cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg.chmod(0o600)
    return added


def main() -> int:
    home = Path(os.environ.get("AIRFLOW_HOME", REPO / ".airflow")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "airflow.cfg"
    if cfg.exists():
        print(f"Airflow home {home}: kept (airflow.cfg exists)")
    else:
        cfg.write_text(
            f"""[core]
dags_folder = {REPO / "dags"}
plugins_folder = {REPO / "plugins"}
executor = LocalExecutor
load_examples = False
test_connection = Enabled
dags_are_paused_at_creation = False

[database]
sql_alchemy_conn = sqlite:///{home / "airflow.db"}

[logging]
base_log_folder = {home / "logs"}

[api]
base_url = {UI_URL}

[api_auth]

[ml_connector]
# fernet_keys: comma-separated, newest first. To rotate: put a new key (mlc keys generate) in front, run
# mlc keys rotate.
config_path = {REPO / "include" / "config" / "tenants.yaml"}
""",
            encoding="utf-8",
        )
        cfg.chmod(0o600)
        print(f"Airflow home {home}: created airflow.cfg")
    added = add_missing_secrets(cfg)
    if added:
        print(f"Airflow home {home}: generated {', '.join(added)} (kept in airflow.cfg from now on)")

    exact_url = f"http://127.0.0.1:{int(os.environ.get('MLC_EXACT_PORT', '8701'))}"
    jaggaer_url = f"http://127.0.0.1:{int(os.environ.get('MLC_JAGGAER_PORT', '8702'))}"

    connections = {
        "ml_connector_db": {"conn_type": "sqlite", "host": str(home / "ml_connector.db")},
        "exact_demo": {
            "conn_type": "exact_online",
            "host": exact_url,
            "login": "mlc-demo-client",
            "password": "mlc-demo-secret",
            # sandbox: the demo talks to the local sandboxes over http on loopback (ml_connector.net_policy);
            # webhook_secret: the Exact sandbox's demo app signs its webhook notifications with it (make demo)
            "extra": json.dumps(
                {
                    "redirect_uri": f"{UI_URL}/ml-connector/exact/callback",
                    "sandbox": True,
                    "webhook_secret": "mlc-demo-webhook-secret",
                }
            ),
        },
        "jaggaer_demo": {
            "conn_type": "jaggaer",
            "host": jaggaer_url,
            "login": "mlc-demo",
            "password": "mlc-demo-secret",
            "extra": json.dumps(
                {
                    "token_url": f"{jaggaer_url}/auth/realms/J1p-integrations/protocol/openid-connect/token",
                    "xml_url": f"{jaggaer_url}/apps/Router",
                    "xml_identity": "MLCDEMO",
                    "xml_shared_secret": "mlc-demo-xml-secret",
                    "sandbox": True,
                }
            ),
        },
    }
    path = home / "connections.demo.json"
    path.write_text(json.dumps(connections, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
