"""Alerts: every channel of the tenant, failures never raised, the token-failure text says how to reconnect."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import airflow.providers.http.hooks.http
import airflow.providers.smtp.hooks.smtp  # noqa: F401
import pytest
from fastapi import FastAPI, Request

from ml_connector import alerts
from ml_connector.config import TenantConfig, load_tenants
from ml_connector.errors import TokenChainBroken
from sandbox.common.server import ServerThread


@pytest.fixture
def receiver():
    """A local HTTP endpoint standing in for Slack and a generic webhook."""
    app = FastAPI()
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    @app.post("/{name}")
    async def hook(name: str, request: Request) -> dict[str, bool]:
        with lock:
            received.append({"name": name, "json": await request.json()})
        return {"ok": True}

    server = ServerThread(app)
    url = server.start()
    yield url, received
    server.stop()


def tenant_with(**alert_cfg: Any) -> TenantConfig:
    base = load_tenants()["demo"].model_dump()
    base["alerts"] = alert_cfg
    return TenantConfig.model_validate(base)


@pytest.fixture
def captured(monkeypatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setitem(alerts.CHANNELS, "log", lambda t, subject, body: sent.append((subject, body)))
    return sent


def test_every_channel_is_tried_and_failures_are_only_logged(receiver, monkeypatch, captured, caplog) -> None:
    url, received = receiver
    # Slack: the webhook's secret path in the password (encrypted by Airflow), the host without it
    slack = {"conn_type": "http", "host": url, "password": "slack"}
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SLACK", json.dumps(slack))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_HOOK", json.dumps({"conn_type": "http", "host": f"{url}/webhook"}))
    tenant = tenant_with(
        channels=["email", "slack", "webhook", "log"],
        email_to=["ap@example.com"],
        smtp_conn_id="no_such_smtp",
        slack_conn_id="alert_slack",
        webhook_conn_id="alert_hook",
    )
    alerts.send_alert(tenant, "Something happened", "details\nmore details")
    by_name = {r["name"]: r["json"] for r in received}
    assert by_name["slack"]["text"].startswith("*[ml-connector] Midlands Precision Engineering (sandbox): Something")
    assert by_name["webhook"] == {
        "tenant": "demo",
        "subject": "[ml-connector] Midlands Precision Engineering (sandbox): Something happened",
        "body": "details\nmore details",
    }
    assert captured and captured[0][1] == "details\nmore details"  # the log channel still ran after e-mail failed
    assert "alert over email failed" in caplog.text


def test_token_failure_alert_says_who_must_reconnect_and_how(captured, monkeypatch) -> None:
    monkeypatch.setenv("MLC_UI_BASE_URL", "https://airflow.example.com/")
    exc = TokenChainBroken("demo", "Exact refused the refresh token (Old refresh token used.); the chain is dead")
    alerts.token_failure_alert(tenant_with(channels=["log"]), exc)
    [(subject, body)] = captured
    assert exc.alerted  # type: ignore[attr-defined]
    assert "Exact Online must be reconnected (tenant demo)" in subject
    assert "Old refresh token used." in body
    assert "mlc exact connect --tenant demo" in body
    assert "https://airflow.example.com/ml-connector/exact/connect?tenant=demo" in body


SLACK_SECRET = "SUPERSECRETWEBHOOKTOKEN"


@pytest.mark.parametrize(
    "conn",
    [
        {"host": f"https://127.0.0.1:1/services/T0000/B0000/{SLACK_SECRET}"},  # the old way: the URL in the host
        {"host": "https://127.0.0.1:1/services", "password": f"T0000/B0000/{SLACK_SECRET}"},
        {"password": f"https://127.0.0.1:1/services/T0000/B0000/{SLACK_SECRET}"},
    ],
    ids=["url-in-host", "path-in-password", "url-in-password"],
)
def test_slack_webhook_url_never_reaches_a_log(conn, monkeypatch, caplog) -> None:
    """Review finding: the Slack webhook URL (its token is in the path) was logged in clear when delivery failed."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({"conn_type": "http", **conn}))
    tenant = tenant_with(channels=["slack"], slack_conn_id="slack_alerts")
    with caplog.at_level("DEBUG"):
        alerts.send_alert(tenant, "test", "body")
    assert "alert over slack failed: ConnectionError" in caplog.text
    assert SLACK_SECRET not in caplog.text
    assert ("unencrypted" in caplog.text) == ("password" not in conn)  # the old way is warned about


def test_slack_webhook_url_is_built_from_the_password_and_masked(receiver, monkeypatch) -> None:
    from airflow.sdk.log import _secrets_masker

    url, received = receiver
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS", json.dumps({"conn_type": "http", "host": url, "password": "/slackhook"})
    )
    assert alerts.slack_webhook_url("slack_alerts") == f"{url}/slackhook"
    assert "slackhook" not in _secrets_masker().redact(f"posting to {url}/slackhook")
    alerts.send_alert(tenant_with(channels=["slack"], slack_conn_id="slack_alerts"), "Hello", "body")
    assert [r["name"] for r in received] == ["slackhook"]


def test_jaggaer_credentials_alert_names_jaggaer_and_the_connection(captured) -> None:
    """Review finding: JAGGAER refusing its client id/secret was alerted as "Exact Online must be reconnected"."""
    exc = TokenChainBroken(
        "demo", "client id/secret refused by JAGGAER (invalid_client)", system="jaggaer", conn_id="jaggaer_demo"
    )
    alerts.token_failure_alert(tenant_with(channels=["log"]), exc)
    [(subject, body)] = captured
    assert exc.alerted  # type: ignore[attr-defined]
    assert "JAGGAER refused the credentials of connection jaggaer_demo (tenant demo)" in subject
    assert "Exact Online must be reconnected" not in subject and "mlc exact connect" not in body
    assert "invalid_client" in body and "'jaggaer_demo'" in body and "clear the failed task" in body


def _context(exc: BaseException) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="jaggaer_invoice_poll__demo", task_id="post", run_id="manual__1", try_number=2)
    return {"exception": exc, "ti": ti, "run_id": "manual__1"}


def test_failure_callback(captured) -> None:
    callback = alerts.failure_callback("demo")
    callback(_context(ValueError("boom")))
    [(subject, body)] = captured
    assert "jaggaer_invoice_poll__demo.post failed" in subject
    assert "ValueError: boom" in body and "manual__1" in body and "try 2" in body

    captured.clear()
    broken = TokenChainBroken("demo", "Exact refused the refresh token (invalid_grant)")
    callback(_context(broken))
    assert len(captured) == 1 and "must be reconnected" in captured[0][0]

    captured.clear()
    callback(_context(broken))  # that alert marked the exception: a second callback does not repeat it
    assert captured == []
    captured.clear()
    callback(_context(TokenChainBroken("demo", "not connected yet")))
    assert len(captured) == 1


def test_failure_callback_never_raises(monkeypatch) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("alert backend down")

    monkeypatch.setattr(alerts, "send_alert", explode)
    alerts.failure_callback("demo")(_context(ValueError("x")))
    alerts.failure_callback("no_such_tenant")(_context(ValueError("x")))
