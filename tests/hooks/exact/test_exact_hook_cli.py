"""``mlc exact connect | authorize`` and ``mlc status`` end to end, from a shell, against the sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from exact_hook_support import CALLBACK, follow_consent

from ml_connector.store import db

MLC = str(Path(sys.executable).with_name("mlc"))


@pytest.fixture
def shell_env(tmp_path, exact_sandbox) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'connector.db'}"
    db.migrate(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "MLC_DB_URL": url,
            "AIRFLOW_CONN_EXACT_DEMO": json.dumps(
                {
                    "conn_type": "exact_online",
                    "host": exact_sandbox.url,
                    "login": "mlc-demo-client",
                    "password": "mlc-demo-secret",
                    "extra": {"redirect_uri": CALLBACK, "sandbox": True},
                }
            ),
        }
    )
    return env


def mlc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLC, *args], env=env, capture_output=True, text=True, timeout=60)


def test_connect_authorize_status_from_a_shell(shell_env, exact_sandbox) -> None:
    out = mlc(shell_env, "exact", "connect", "--tenant", "demo")
    assert out.returncode == 0, out.stderr
    [link] = [line for line in out.stdout.splitlines() if line.startswith(exact_sandbox.url)]
    assert "state=" in link and "redirect_uri=" in link

    landed = follow_consent(link)  # the browser, consenting
    out = mlc(shell_env, "exact", "authorize", "--tenant", "demo", "--redirect-url", landed)
    assert out.returncode == 0, out.stderr
    assert "connected as Fiona Adams <finance.admin@midlandsprecision.co.uk>" in out.stdout
    assert "division 111111: accessible" in out.stdout and "division 222222: accessible" in out.stdout

    out = mlc(shell_env, "status", "--json", "--skip-jaggaer")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    [demo] = report["tenants"]
    assert report["healthy"] and demo["exact"] == "ok" and demo["jaggaer"] == "not checked"
    assert demo["last_refreshed"] and demo["refresh_lapses_at"] > demo["last_refreshed"]
    assert demo["token_calls_today"] == 1


# --- the same commands in-process (typer's runner): cheaper than a shell, same code ---------------------------------
@pytest.fixture
def run(shell_env, monkeypatch):
    from typer.testing import CliRunner

    from ml_connector.cli import app

    for key, value in shell_env.items():
        if key.startswith(("MLC_", "AIRFLOW_CONN_")):
            monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def test_paste_flow_with_a_code(run, exact_sandbox) -> None:
    import requests

    out = run("exact", "connect", "--tenant", "demo", "--redirect-uri", "urn:mlc:paste")
    assert out.exit_code == 0, out.output
    [link] = [line for line in out.stdout.splitlines() if line.startswith("http")]
    page = requests.get(link, timeout=10).text  # Exact shows the code to copy
    code = re.search(r'id="code"[^>]*value="([^"]+)"', page).group(1)
    out = run("exact", "authorize", "--tenant", "demo", "--code", code)
    assert out.exit_code == 0, out.output
    assert "tenant demo is connected to Exact Online" in out.stdout


def test_a_consent_link_works_once(run, exact_sandbox) -> None:
    out = run("exact", "connect", "--tenant", "demo")
    [link] = [line for line in out.stdout.splitlines() if line.startswith("http")]
    landed = follow_consent(link)
    assert run("exact", "authorize", "--tenant", "demo", "--redirect-url", landed).exit_code == 0
    again = run("exact", "authorize", "--tenant", "demo", "--redirect-url", landed)
    assert again.exit_code == 1 and "already used" in again.output


def test_status_reports_a_broken_chain_and_exits_non_zero(run, shell_env, exact_sandbox) -> None:
    out = run("exact", "connect", "--tenant", "demo")
    [link] = [line for line in out.stdout.splitlines() if line.startswith("http")]
    assert run("exact", "authorize", "--tenant", "demo", "--redirect-url", follow_consent(link)).exit_code == 0
    exact_sandbox.advance(600)
    from ml_connector.exact.tokens import ExactApp, TokenChain

    chain = TokenChain(db.get_engine(shell_env["MLC_DB_URL"]), "demo", "exact_demo", ExactApp("", "", ""))
    stolen = chain._read().refresh_token
    assert exact_sandbox.refresh(stolen).status_code == 200  # someone else uses our refresh token
    out = run("status", "--skip-jaggaer")
    assert out.exit_code == 1
    assert "Exact (exact_demo): broken" in out.stdout and "Old refresh token used." in out.stdout
    out = run("status", "--skip-jaggaer", "--json", "--offline")
    assert out.exit_code == 1 and json.loads(out.stdout)["tenants"][0]["exact"] == "broken"


def test_cli_errors_are_plain(run) -> None:
    out = run("exact", "connect", "--tenant", "nobody")
    assert out.exit_code == 1 and "no tenant 'nobody'" in out.output
    out = run("exact", "authorize", "--tenant", "demo", "--code", "x")
    assert out.exit_code == 1 and "no consent in progress" in out.output
    out = run("exact", "authorize", "--tenant", "demo", "--redirect-url", "http://x/cb?error=access_denied")
    assert out.exit_code == 1 and "did not give consent" in out.output
    out = run("exact", "authorize", "--tenant", "demo")
    assert out.exit_code == 1 and "either --code or --redirect-url" in out.output
    out = run("status", "--skip-jaggaer")
    assert out.exit_code == 1 and "not connected" in out.stdout and "mlc exact connect --tenant demo" in out.stdout
