"""The outbound URL policy: secrets go only to https hosts with public addresses, unless the connection is marked
as a sandbox (then http on loopback only), and never follow a redirect to another host.

A real HTTP listener on loopback records everything it receives; the Exact client secret, the JAGGAER client
secret and the XML SharedSecret must never show up in it unless the connection says ``"sandbox": true``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ml_connector.errors import ConfigError, RejectedError, TransientError
from ml_connector.net_policy import check_url, enforce, guard_redirects

EXACT_SECRET = "exact-client-secret-7f3a"
JAGGAER_SECRET = "jaggaer-client-secret-91c2"
XML_SECRET = "jaggaer-xml-secret-55d0"


class Recorder:
    """A loopback HTTP server that records each request (method, path, headers, body) and answers ``reply``."""

    def __init__(self, reply: Any = None) -> None:
        """``reply``: ``(status, headers, body)`` or a function of the request path returning one."""
        self.requests: list[dict[str, Any]] = []
        self.reply = reply or (400, {"Content-Type": "application/json"}, b'{"error": "invalid_grant"}')
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                reply = recorder.reply
                status, headers, payload = reply(self.path) if callable(reply) else reply
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> str:
        """Everything received, as one text (headers and bodies)."""
        return "\n".join(
            f"{r['method']} {r['path']} {json.dumps(r['headers'])} {r['body'].decode('latin-1')}" for r in self.requests
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def tenant_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tenant file whose tenant uses other connections (so the Test button probes the credentials alone)."""
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  other:\n    exact: {conn_id: exact_other, divisions: [1]}\n"
        "    jaggaer: {conn_id: jaggaer_other}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MLC_CONFIG_PATH", str(path))
    return path


def _exact_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, **extra: Any) -> str:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "exact_online",
                "host": host,
                "login": "probe-client",
                "password": EXACT_SECRET,
                "extra": {"redirect_uri": "urn:mlc:paste", **extra},
            }
        ),
    )
    return conn_id


def _exact_test_button(conn_id: str, sqlite_engine: Any) -> tuple[bool, str]:
    from ml_connector.exact.hook import ExactOnlineHook

    return ExactOnlineHook(conn_id, engine=sqlite_engine).test_connection()


# ---------------------------------------------------------------------------------------------------------- Exact


@pytest.mark.parametrize(
    "host_of",
    [
        pytest.param(lambda url: url, id="http-loopback"),
        pytest.param(lambda url: url.replace("http://", "https://"), id="https-loopback"),
        pytest.param(lambda url: url.replace("127.0.0.1", "localhost"), id="http-localhost"),
    ],
)
def test_exact_secret_never_reaches_loopback_without_the_sandbox_flag(
    listener: Recorder, tenant_file: Path, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch, host_of: Any
) -> None:
    from ml_connector.exact.connection import load_app

    conn_id = _exact_conn(monkeypatch, "exact_probe", host_of(listener.url))
    with pytest.raises(ConfigError) as refused:
        load_app(conn_id)
    assert "exact_probe" in str(refused.value) and "loopback" in str(refused.value)
    assert '"sandbox": true' in str(refused.value)  # says how to allow it for a real sandbox
    ok, message = _exact_test_button(conn_id, sqlite_engine)
    assert not ok and "refused" in message and "loopback" in message
    assert listener.requests == []
    assert EXACT_SECRET not in listener.received()


def test_exact_secret_reaches_a_sandbox_on_loopback(
    listener: Recorder, tenant_file: Path, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The positive control: marked as a sandbox, the same connection does send (so the test above can fail)."""
    conn_id = _exact_conn(monkeypatch, "exact_probe", listener.url, sandbox=True)
    ok, message = _exact_test_button(conn_id, sqlite_engine)
    assert ok, message
    assert [r["path"] for r in listener.requests] == ["/api/oauth2/token"]
    assert EXACT_SECRET in listener.received()


def test_sandbox_flag_does_not_open_http_to_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_connector.exact.connection import load_app

    for host in ("http://10.1.2.3", "http://169.254.169.254", "https://192.168.0.10"):
        conn_id = _exact_conn(monkeypatch, "exact_probe", host, sandbox=True)
        with pytest.raises(ConfigError, match="not a public address"):
            load_app(conn_id)


def test_exact_host_without_scheme_is_https(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_connector.exact.connection import app_from_connection, get_connection

    conn_id = _exact_conn(monkeypatch, "exact_probe", "203.0.113.9")  # TEST-NET-3: not global either
    with pytest.raises(ConfigError, match=r"'https://203\.0\.113\.9' refused"):
        app_from_connection(get_connection(conn_id))


def test_exact_credentials_do_not_follow_a_redirect_to_another_host(
    tenant_file: Path, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 307 re-sends the POST body (client secret included) to the new location: refused before that happens."""
    elsewhere = Recorder()
    first = Recorder(reply=(307, {"Location": f"{elsewhere.url}/api/oauth2/token"}, b""))
    try:
        conn_id = _exact_conn(monkeypatch, "exact_probe", first.url, sandbox=True)
        from ml_connector.exact.client import ExactClient
        from ml_connector.exact.connection import load_app

        client = ExactClient(load_app(conn_id), "-", conn_id, engine=sqlite_engine)
        with pytest.raises(RejectedError, match="redirected to another host"):
            client.check_client_credentials()
        assert len(first.requests) == 1  # the configured host got the request, as it should
        assert elsewhere.requests == [] and EXACT_SECRET not in elsewhere.received()
        ok, message = _exact_test_button(conn_id, sqlite_engine)
        assert not ok and "redirected to another host" in message and elsewhere.requests == []
    finally:
        first.close()
        elsewhere.close()


def test_same_host_redirect_is_followed_and_another_host_refused() -> None:
    import requests

    other = Recorder(reply=(200, {"Content-Type": "text/plain"}, b"other"))

    def route(path: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/moved":
            return 302, {"Location": "/final"}, b""
        if path == "/away":
            return 302, {"Location": f"{other.url}/steal"}, b""
        return 200, {"Content-Type": "text/plain"}, b"final"

    ours = Recorder(reply=route)
    try:
        session = guard_redirects(requests.Session())
        response = session.get(f"{ours.url}/moved", timeout=5, headers={"Authorization": "Bearer t0k3n"})
        assert response.status_code == 200 and response.text == "final"
        with pytest.raises(RejectedError, match="redirected to another host"):
            session.get(f"{ours.url}/away", timeout=5, headers={"Authorization": "Bearer t0k3n"})
        assert other.requests == []
    finally:
        ours.close()
        other.close()


def test_a_write_refused_for_its_redirect_is_audited_and_nothing_reaches_the_other_host() -> None:
    import requests

    from ml_connector.http import AuditContext, AuditEvent, send

    class Sink:
        def __init__(self) -> None:
            self.events: list[AuditEvent] = []

        def record(self, event: AuditEvent) -> None:
            self.events.append(event)

    elsewhere = Recorder()
    first = Recorder(reply=(308, {"Location": f"{elsewhere.url}/collect"}, b""))
    sink = Sink()
    try:
        with pytest.raises(RejectedError, match=r"HTTP 308: .*redirected to another host"):
            send(
                requests.Session(),
                "POST",
                f"{first.url}/api/v1/1/purchaseentry/PurchaseEntries",
                write=True,
                audit=sink,
                audit_ctx=AuditContext(tenant="demo", flow="invoice_poll", action="post", source_id="I1"),
                json={"secret": EXACT_SECRET},
            )
        assert [(e.outcome, e.status) for e in sink.events] == [("rejected", 308)]
        assert EXACT_SECRET not in repr(sink.events)
        assert elsewhere.requests == []
    finally:
        first.close()
        elsewhere.close()


# -------------------------------------------------------------------------------------------------------- JAGGAER


def _jaggaer_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, **extra: Any) -> str:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "jaggaer",
                "host": host,
                "login": "probe",
                "password": JAGGAER_SECRET,
                "extra": {"xml_identity": "PROBE", "xml_shared_secret": XML_SECRET, **extra},
            }
        ),
    )
    return conn_id


def _jaggaer_test_button(conn_id: str) -> tuple[bool, str]:
    from ml_connector.jaggaer.hook import JaggaerHook

    return JaggaerHook(conn_id).test_connection()


def test_jaggaer_secrets_never_reach_loopback_without_the_sandbox_flag(
    listener: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = _jaggaer_conn(monkeypatch, "jaggaer_probe", listener.url)
    ok, message = _jaggaer_test_button(conn_id)
    assert not ok and "refused" in message
    for field in ("host", "token_url", "xml_url"):
        assert f"'jaggaer_probe': {field}:" in message
    assert listener.requests == []


@pytest.mark.parametrize("field", ["token_url", "xml_url"])
def test_jaggaer_sandbox_urls_must_stay_on_loopback(
    listener: Recorder, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    """A sandbox J1P host does not let the token or the SharedSecret go to the cloud metadata address."""
    from ml_connector.jaggaer.hook import JaggaerHook

    conn_id = _jaggaer_conn(
        monkeypatch, "jaggaer_probe", listener.url, sandbox=True, **{field: "http://169.254.169.254"}
    )
    with pytest.raises(ConfigError, match=rf"{field}: 'http://169\.254\.169\.254.*link-local \(cloud metadata\)"):
        JaggaerHook(conn_id).config  # noqa: B018 - loading the config is the check
    assert listener.requests == []


def test_jaggaer_sandbox_on_loopback_works(listener: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive control: the listener does get the client secret when the connection is a sandbox."""
    from ml_connector.jaggaer.hook import JaggaerHook

    conn_id = _jaggaer_conn(monkeypatch, "jaggaer_probe", listener.url, sandbox=True)
    ok, _ = JaggaerHook(conn_id).test_connection()
    assert not ok  # the recorder is no JAGGAER: its 400 is no token
    assert JAGGAER_SECRET in listener.received()


@pytest.mark.parametrize(
    ("xml_url", "expected"),
    [
        ("https://integrations.example.com", "https://integrations.example.com/apps/Router"),
        ("https://integrations.example.com/", "https://integrations.example.com/apps/Router"),
        ("https://integrations.example.com/apps/Router", "https://integrations.example.com/apps/Router"),
        ("https://integrations.example.com/apps/Router/", "https://integrations.example.com/apps/Router"),
        ("integrations.example.com", "https://integrations.example.com/apps/Router"),
        ("", "https://j1p.example.com/apps/Router"),
        (None, "https://j1p.example.com/apps/Router"),
    ],
)
def test_xml_url_takes_the_host_or_the_router_form(xml_url: str | None, expected: str) -> None:
    from ml_connector.jaggaer.connection import xml_router_url

    assert xml_router_url(xml_url, "https://j1p.example.com") == expected


# ---------------------------------------------------------------------------------------------------- the function


@pytest.mark.parametrize(
    ("url", "sandbox", "fragment"),
    [
        ("http://example.com", False, "plain http"),
        ("https://169.254.169.254/latest/meta-data", False, "cloud metadata"),
        ("https://10.0.0.5", False, "private"),
        ("https://172.16.3.4", False, "private"),
        ("https://[::1]:8443", False, "loopback"),
        ("https://[fe80::1]", False, "link-local"),
        ("https://0.0.0.0", False, "unspecified"),
        ("https://100.64.0.1", False, "not public"),
        ("ftp://example.com", False, "not an http(s) URL"),
        ("https://user:pw@example.com", False, "credentials in the URL"),
        ("http://10.0.0.5", True, "loopback hosts only"),
    ],
)
def test_refused(url: str, sandbox: bool, fragment: str) -> None:
    check = check_url(url, what="connection 'x': host", sandbox=sandbox, resolver=lambda h: ["93.184.215.14"])
    assert not check.ok
    assert fragment in check.problems[0] and check.problems[0].startswith("connection 'x': host")
    with pytest.raises(ConfigError):
        enforce([check])


def test_allowed() -> None:
    public = lambda h: ["93.184.215.14"]  # noqa: E731
    assert check_url("https://start.exactonline.nl", what="x", resolver=public).ok
    assert check_url("http://127.0.0.1:8701", what="x", sandbox=True).ok
    assert check_url("https://localhost:8701", what="x", sandbox=True).ok


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    """DNS can point a harmless-looking name at the metadata service or the LAN."""
    check = check_url("https://erp.example.com", what="x", resolver=lambda h: ["93.184.215.14", "169.254.169.254"])
    assert not check.ok and "169.254.169.254" in check.problems[0]


def test_an_unresolvable_host_is_refused_as_transient() -> None:
    def nowhere(host: str) -> list[str]:
        raise OSError(-2, "Name or service not known")

    check = check_url("https://start.exactonline.invalid", what="x", resolver=nowhere)
    assert not check.ok and check.unresolved and "does not resolve" in check.problems[0]
    with pytest.raises(TransientError, match="does not resolve"):
        enforce([check])


# ------------------------------------------------------------------------------------------------------ status


def test_status_says_sandbox(
    listener: Recorder, tenant_file: Path, sqlite_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_connector.config import load_tenants
    from ml_connector.status import collect

    _exact_conn(monkeypatch, "exact_other", listener.url, sandbox=True)
    _jaggaer_conn(monkeypatch, "jaggaer_other", listener.url, sandbox=True)
    (health,) = collect(load_tenants(), sqlite_engine, live=False, check_jaggaer=False)
    assert health.exact_sandbox and health.jaggaer_sandbox
    assert health.exact_detail.startswith("sandbox connection") and health.as_dict()["exact_sandbox"] is True
    _exact_conn(monkeypatch, "exact_other", listener.url)  # the same without the flag: refused, not "sandbox"
    (health,) = collect(load_tenants(), sqlite_engine, live=False, check_jaggaer=False)
    assert not health.exact_sandbox and health.exact == "failed" and "refused" in health.exact_detail
    assert listener.requests == []
