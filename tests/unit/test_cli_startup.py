"""`mlc` commands that do not need Airflow do not import it (importing Airflow costs seconds).

Each command runs in a fresh interpreter, as `mlc` does; at exit the child prints the Airflow modules it loaded.
The tenant file's path comes from airflow.cfg (``[ml_connector] config_path``), the common production set-up,
which must be read without importing Airflow too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_connector.store import db

REPO = Path(__file__).resolve().parents[2]
TENANT_FILE = REPO / "include" / "config" / "tenants.yaml"

PROBE = """\
import atexit, sys
def _report():
    loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
    print("AIRFLOW_MODULES=" + ",".join(loaded[:5]) + ("..." if len(loaded) > 5 else ""), file=sys.stderr)
atexit.register(_report)
sys.argv = ["mlc", *sys.argv[1:]]
from ml_connector.cli import main
main()
"""


def _airflow_modules(stderr: str) -> str:
    """What the probe printed: the Airflow modules loaded (empty: none)."""
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("AIRFLOW_MODULES=")]
    return line.removeprefix("AIRFLOW_MODULES=")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text(f"[ml_connector]\nconfig_path = {TENANT_FILE}\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'connector.db'}"
    db.migrate(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLC_", "AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update({"AIRFLOW_HOME": str(home), "MLC_DB_URL": url, "PYTHONPATH": str(REPO / "include")})
    return env


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["config", "check"],
        ["config", "check", str(TENANT_FILE)],
        ["config", "--help"],
        ["mappings", "list", "--tenant", "demo"],
        ["ledger", "list", "--tenant", "demo", "--flow", "invoice_poll"],
        ["audit", "--tenant", "demo", "--flow", "invoice_poll", "I1"],
        ["keys", "generate"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_command_does_not_import_airflow(cli_env: dict[str, str], args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert _airflow_modules(result.stderr) == "", result.stderr
    if args[:2] == ["config", "check"]:
        assert result.returncode == 0 and "ok: tenant 'demo'" in result.stdout, result.stdout + result.stderr


def test_the_probe_sees_airflow_when_it_is_imported(cli_env: dict[str, str]) -> None:
    """The check above can fail: a command that does need Airflow (pools) shows up in the probe."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "pools", "show"], env=cli_env, capture_output=True, text=True, timeout=180
    )
    assert _airflow_modules(result.stderr).startswith("airflow"), result.stderr
