"""Create the project-local Airflow home once (idempotent).

Writes ``$AIRFLOW_HOME/airflow.cfg`` with the repo's dags/plugins folders, examples off, the Test button on,
and two Fernet keys generated once and kept: Airflow's (connections, variables) and the connector's (tokens,
mapping columns). Writes the demo connections file (paths are machine-specific, so it is generated, not
committed). Never overwrites an existing airflow.cfg: the keys in it protect data already stored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]


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
fernet_key = {Fernet.generate_key().decode()}

[database]
sql_alchemy_conn = sqlite:///{home / "airflow.db"}

[logging]
base_log_folder = {home / "logs"}

[api]
base_url = http://localhost:8080

[ml_connector]
# Comma-separated, newest first. To rotate: put a new key (mlc keys generate) in front, run mlc keys rotate.
fernet_keys = {Fernet.generate_key().decode()}
config_path = {REPO / "include" / "config" / "tenants.yaml"}
""",
            encoding="utf-8",
        )
        cfg.chmod(0o600)
        print(f"Airflow home {home}: created airflow.cfg with new Fernet keys")

    connections = {
        "ml_connector_db": {"conn_type": "sqlite", "host": str(home / "ml_connector.db")},
        "exact_demo": {
            "conn_type": "exact_online",
            "host": "http://127.0.0.1:8701",
            "login": "mlc-demo-client",
            "password": "mlc-demo-secret",
            # sandbox: the demo talks to the local sandboxes over http on loopback (ml_connector.net_policy)
            "extra": json.dumps({"redirect_uri": "http://127.0.0.1:8080/ml-connector/exact/callback", "sandbox": True}),
        },
        "jaggaer_demo": {
            "conn_type": "jaggaer",
            "host": "http://127.0.0.1:8702",
            "login": "mlc-demo",
            "password": "mlc-demo-secret",
            "extra": json.dumps(
                {
                    "token_url": "http://127.0.0.1:8702/auth/realms/J1p-integrations/protocol/openid-connect/token",
                    "xml_url": "http://127.0.0.1:8702/apps/Router",
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
