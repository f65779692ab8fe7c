"""Alert channels as Airflow Notifiers: a refusal by Slack or by the generic webhook is logged with its HTTP status
(never the URL), the other channels still run, and an alert text with Jinja markers is sent as written."""

from __future__ import annotations

import json
import threading
from typing import Any

# Airflow configures its logging on first import: import the providers before caplog is set up
import airflow.providers.http.notifications.http
import airflow.providers.slack.notifications.slack_webhook  # noqa: F401
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ml_connector import alerts
from ml_connector.config import TenantConfig, load_tenants
from sandbox.common.server import ServerThread

SECRET = "T0000/B0000/NOTIFIERSECRETPATH"


@pytest.fixture
def endpoint():
    """Slack and a generic webhook on loopback: ``/ok/...`` accepts, ``/refuse/...`` answers 403."""
    app = FastAPI()
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    @app.post("/{mode}/{rest:path}")
    async def hook(mode: str, rest: str, request: Request) -> Any:
        with lock:
            received.append({"mode": mode, "path": rest, "json": await request.json()})
        if mode == "refuse":
            return PlainTextResponse("invalid_token", status_code=403)
        return JSONResponse({"ok": True}) if "webhook" in rest else PlainTextResponse("ok")

    server = ServerThread(app)
    url = server.start()
    yield url, received
    server.stop()


def _tenant(**alert_cfg: Any) -> TenantConfig:
    base = load_tenants()["demo"].model_dump()
    base["alerts"] = alert_cfg
    return TenantConfig.model_validate(base)


def test_a_refusal_is_logged_with_its_status_and_the_other_channels_still_run(endpoint, monkeypatch, caplog) -> None:
    url, received = endpoint
    monkeypatch.setenv(
        "AIRFLOW_CONN_REFUSING_SLACK", json.dumps({"conn_type": "http", "host": f"{url}/refuse", "password": SECRET})
    )
    monkeypatch.setenv("AIRFLOW_CONN_REFUSING_HOOK", json.dumps({"conn_type": "http", "host": f"{url}/refuse/webhook"}))
    sent: list[str] = []
    monkeypatch.setitem(alerts.CHANNELS, "log", lambda t, subject, body: sent.append(subject))
    tenant = _tenant(
        channels=["slack", "webhook", "log"], slack_conn_id="refusing_slack", webhook_conn_id="refusing_hook"
    )
    with caplog.at_level("DEBUG"):
        alerts.send_alert(tenant, "Refused", "body")
    assert [r["path"] for r in received] == [SECRET, "webhook"]  # both were really sent
    assert "alert over slack failed: AirflowException (HTTP 403)" in caplog.text
    assert "alert over webhook failed: AirflowException" in caplog.text
    assert SECRET not in caplog.text and "NOTIFIERSECRETPATH" not in caplog.text
    assert sent == ["[ml-connector] Midlands Precision Engineering (sandbox): Refused"]


def test_alert_text_is_sent_as_written_not_rendered_as_a_template(endpoint, monkeypatch) -> None:
    url, received = endpoint
    monkeypatch.setenv(
        "AIRFLOW_CONN_OK_SLACK", json.dumps({"conn_type": "http", "host": f"{url}/ok", "password": SECRET})
    )
    monkeypatch.setenv("AIRFLOW_CONN_OK_HOOK", json.dumps({"conn_type": "http", "host": f"{url}/ok/webhook"}))
    tenant = _tenant(channels=["slack", "webhook"], slack_conn_id="ok_slack", webhook_conn_id="ok_hook")
    body = "KeyError: '{{ ds }}' in {% raw %}"
    alerts.send_alert(tenant, "Template-looking text", body)
    by_path = {r["path"]: r["json"] for r in received}
    assert by_path[SECRET]["text"].endswith(f"```{body}```")
    assert by_path["webhook"]["body"] == body
