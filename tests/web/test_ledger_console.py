"""The ledger console of the UI plugin, the login redirect, and the connection Test fixes.

Through the real app mounted at /ml-connector with Airflow's real authentication (JWTs signed by the simple auth
manager, sent as the UI's ``_token`` cookie) on a migrated SQLite connector store holding records of both flows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import csrf_of

from ml_connector.connector_db_hook import check_database
from ml_connector.console import queries
from ml_connector.csvsafe import csv_lines
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, LedgerEntry
from ml_connector.web.connection_test_fix import ConnectionTestPortZeroMiddleware, drop_port_zero

LEDGER = "/ml-connector/ui/ledger"
HTML = {"Accept": "text/html,application/xhtml+xml"}
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
HELD_REASON = (
    "JAGGAER vendor 'Grainger Ltd' (id 59005) has no Exact supplier in division 222222: "
    "mlc mappings set vendor --tenant demo --division 222222 --jaggaer-id 59005 --exact-code <code>"
)


@pytest.fixture
def records(store: Any) -> dict[str, int]:
    """An invoice posted (with its audit trail), one held, one refused by Exact, 60 PO records for paging."""
    ids: dict[str, int] = {}
    with session_scope(store) as s:
        posted = LedgerEntry(
            tenant="demo", flow="invoice_poll", source_id="2428071", source_ref="I00071", division=111111,
            state="posted", target_id="a1b2c3d4-0000-0000-0000-000000000001", target_ref="26700071", attempts=1,
            first_seen_at=NOW, updated_at=NOW, posted_at=NOW, last_run_id="manual__2026-12-03",
        )  # fmt: skip
        held = LedgerEntry(
            tenant="demo", flow="invoice_poll", source_id="2428072", source_ref="I00072", division=222222,
            state="held", reason=HELD_REASON, attempts=0, first_seen_at=NOW, updated_at=NOW,
        )  # fmt: skip
        refused = LedgerEntry(
            tenant="demo", flow="invoice_poll", source_id="2428073", source_ref="I00073", division=111111,
            state="failed", reason="refused by Exact Online (HTTP 400): Journal 90 does not exist", attempts=1,
            first_seen_at=NOW, updated_at=NOW - timedelta(days=5),
        )  # fmt: skip
        s.add_all([posted, held, refused])
        for n in range(60):
            po = LedgerEntry(
                tenant="demo", flow="po_push", source_id=f"guid-{n:03d}", source_ref=str(1000 + n),
                division=111111 if n % 2 else 222222, state="posted", target_ref=f"PO-{1000 + n}", attempts=1,
                first_seen_at=NOW, updated_at=NOW - timedelta(minutes=n),
            )  # fmt: skip
            s.add(po)
        s.flush()
        ids.update(posted=posted.id, held=held.id, refused=refused.id)
        s.add_all(
            [
                AuditLog(
                    at=NOW - timedelta(seconds=5), tenant="demo", flow="invoice_poll", action="exact:post_entry",
                    division=111111, source_id="2428071", source_ref="I00071", method="POST", http_status=201,
                    target_id="a1b2c3d4-0000-0000-0000-000000000001", target_ref="26700071", outcome="posted",
                    message="created", run_id="manual__2026-12-03", attempt=1,
                ),
                AuditLog(
                    at=NOW, tenant="demo", flow="invoice_poll", action="state:posted", division=111111,
                    source_id="2428071", source_ref="I00071", outcome="posted",
                    message="=HYPERLINK(\"http://evil.example\")", run_id="manual__2026-12-03", attempt=1,
                ),
            ]
        )  # fmt: skip
    return ids


def _get(client: TestClient, path: str = "", **params: Any) -> Any:
    return client.get(LEDGER + path, params={"tenant": "demo", **params})


def _state(engine: Any, entry_id: int) -> str:
    with session_scope(engine) as s:
        return s.get(LedgerEntry, entry_id).state


# --------------------------------------------------------------------------------------------- login redirect
@pytest.mark.parametrize("path", ["", "/attention", "/audit", "/record/1", "/../mappings", "/../status"])
def test_logged_out_browser_goes_to_the_login_page_and_back(browser: Any, store: Any, path: str) -> None:
    page = browser(None).get(LEDGER + path, params={"tenant": "demo"}, headers=HTML)
    assert page.status_code == 303, (path, page.status_code, page.text[:200])
    target = urlsplit(page.headers["location"])
    assert target.path.endswith("/login"), page.headers["location"]
    back = parse_qs(target.query)["next"][0]
    assert urlsplit(back).path == urlsplit(str(page.url)).path and "tenant=demo" in back


def test_api_clients_still_get_401_and_expired_tokens_are_sent_to_login(browser: Any, store: Any) -> None:
    assert browser(None).get(LEDGER, params={"tenant": "demo"}).status_code == 401
    forged = browser(None)
    forged.cookies.set("_token", "not-a-jwt", domain="airflow.test", path="/")
    assert forged.get(LEDGER, headers=HTML).status_code == 303
    assert forged.post(LEDGER + "/requeue", data={}, headers=HTML).status_code == 403  # never for a POST


# --------------------------------------------------------------------------------------------- records
def test_search_finds_a_record_by_invoice_number_id_and_entry_number(browser: Any, records: dict[str, int]) -> None:
    viewer = browser("viewer")
    for q in ("I00071", "i00071", "2428071", "26700071", "111111/2428071"):
        page = _get(viewer, q=q)
        assert page.status_code == 200, page.text[:300]
        assert "1 record(s)" in page.text and f"/record/{records['posted']}" in page.text, q
    po = _get(viewer, q="PO-1007")
    assert "1 record(s)" in po.text and ">1007<" in po.text
    none = _get(viewer, q="I99999")
    assert "0 record(s)" in none.text and "Nothing matches" in none.text
    found = viewer.get(LEDGER + "/find", params={"tenant": "demo", "q": "I00071"})
    assert found.status_code == 303 and found.headers["location"].endswith(f"/record/{records['posted']}?tenant=demo")


def test_filters_and_server_side_paging(browser: Any, records: dict[str, int]) -> None:
    viewer = browser("viewer")
    first = _get(viewer, flow="po_push", size=25)
    assert "60 record(s), page 1 of 3" in first.text
    assert first.text.count("<tr>") == 26  # header + 25 rows
    third = _get(viewer, flow="po_push", size=25, page=3)
    assert third.text.count("<tr>") == 11 and 'id="next"' not in third.text
    assert "30 record(s)" in _get(viewer, flow="po_push", division="111111").text
    held = _get(viewer, state="held")
    assert "1 record(s)" in held.text and "I00072" in held.text and "mlc mappings set vendor" in held.text
    old = _get(viewer, flow="invoice_poll", date_to=(NOW - timedelta(days=2)).date().isoformat())
    assert "1 record(s)" in old.text and "I00073" in old.text
    bad = _get(viewer, date_from="yesterday")
    assert "is not a date" in bad.text


def test_record_page_shows_the_history_with_status_target_and_run(browser: Any, records: dict[str, int]) -> None:
    page = browser("viewer").get(f"{LEDGER}/record/{records['posted']}", params={"tenant": "demo"})
    assert page.status_code == 200, page.text[:500]
    history = page.text[page.text.index('id="history"') :]
    assert history.count("<tr>") == 3
    assert ">201<" in history and "26700071" in history and "manual__2026-12-03" in history
    assert "exact:post_entry" in history and "&#34;http://evil.example&#34;" in history  # escaped, not markup
    assert 'id="resolve"' not in page.text  # a viewer sees no actions
    assert browser("viewer").get(f"{LEDGER}/record/999999").status_code == 404


# --------------------------------------------------------------------------------------------- actions
def _editor(browser: Any, page: str = "") -> TestClient:
    client = browser("op")
    opened = _get(client, page)
    assert opened.status_code == 200
    client.csrf = csrf_of(opened.text)  # type: ignore[attr-defined]
    return client


def test_requeue_a_held_invoice_from_needs_a_person(browser: Any, store: Any, records: dict[str, int]) -> None:
    op = _editor(browser, "/attention")
    page = _get(op, "/attention")
    assert 'id="cause-vendor"' in page.text and 'id="cause-refused"' in page.text
    assert "I00072" in page.text and "I00073" in page.text and "I00071" not in page.text
    assert 'name="jaggaer_supplier_id" value="59005"' in page.text  # the vendor fix in place
    form = {"tenant": "demo", "flow": "invoice_poll", "source_id": "2428072", "back": LEDGER + "/attention?tenant=demo"}
    assert browser("viewer").post(LEDGER + "/requeue", data={**form, "csrf_token": op.csrf}).status_code == 403
    assert op.post(LEDGER + "/requeue", data=form).status_code == 403  # no CSRF token
    done = op.post(LEDGER + "/requeue", data={**form, "csrf_token": op.csrf})
    assert done.status_code == 303 and done.headers["location"].startswith(LEDGER + "/attention?tenant=demo&msg=")
    assert _state(store, records["held"]) == "pending"
    assert "Requeued 1 invoice_poll record(s)" in op.get(done.headers["location"]).text
    evil = op.post(LEDGER + "/requeue", data={**form, "back": "https://evil.example/x", "csrf_token": op.csrf})
    assert evil.headers["location"].startswith(LEDGER + "?")


def test_mark_resolved_by_hand_needs_a_note_and_is_audited(browser: Any, store: Any, records: dict[str, int]) -> None:
    op = _editor(browser)
    form = {"tenant": "demo", "entry_id": str(records["refused"]), "csrf_token": op.csrf}
    refused = op.post(LEDGER + "/resolve", data={**form, "note": "  "})
    assert "a+note+is+required" in refused.headers["location"] and _state(store, records["refused"]) == "failed"
    ok = op.post(LEDGER + "/resolve", data={**form, "note": "keyed in Exact by hand as 26700099"})
    assert ok.status_code == 303 and _state(store, records["refused"]) == "skipped"
    with session_scope(store) as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.source_id == "2428073").order_by(AuditLog.id)))
        notes = [(r.flow, r.action, r.message) for r in rows]
    assert ("console:invoice_poll", "console:resolved") in {(f, a) for f, a, _ in notes}
    assert all("op-user (op)" in m and "26700099" in m for _f, _a, m in notes), notes
    again = op.post(LEDGER + "/resolve", data={**form, "note": "twice"})
    assert "only+held%2C+quarantined+or+failed" in again.headers["location"]
    posted = op.post(LEDGER + "/resolve", data={**form, "entry_id": str(records["posted"]), "note": "x"})
    assert _state(store, records["posted"]) == "posted" and "Not+resolved" in posted.headers["location"]
    history = op.get(f"{LEDGER}/record/{records['refused']}", params={"tenant": "demo"}).text
    assert "console:resolved" in history and "keyed in Exact by hand" in history


# --------------------------------------------------------------------------------------------- audit export
def test_audit_export_is_csv_with_formulas_escaped(browser: Any, records: dict[str, int]) -> None:
    viewer = browser("viewer")
    assert 'id="audit-export"' in _get(viewer, "/audit").text
    day = NOW.date().isoformat()
    r = _get(viewer, "/audit.csv", date_from=day, date_to=day)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == ["exact:post_entry", "state:posted"]
    assert rows[0]["http_status"] == "201" and rows[0]["source_ref"] == "I00071"
    assert rows[1]["message"] == '\'=HYPERLINK("http://evil.example")'
    assert _get(viewer, "/audit.csv", date_from=day, date_to="2026-01-01").status_code == 400
    empty = _get(viewer, "/audit.csv", date_from="2020-01-01", date_to="2020-01-02")
    assert empty.text.strip() == ",".join(queries.AUDIT_COLUMNS)


def test_csv_download_escapes_only_text_that_would_run() -> None:
    text = "".join(csv_lines(["message", "amount"], [["=HYPERLINK(1)", -5], ["@A1", 1.5], ["plain", None]]))
    assert text.splitlines() == ["message,amount", "'=HYPERLINK(1),-5", "'@A1,1.5", "plain,"]


# --------------------------------------------------------------------------------------------- Test button
def test_ui_test_body_port_zero_is_dropped_and_nothing_else() -> None:
    ui_body = {"connection_id": "exact_demo", "conn_type": "exact_online", "host": "http://h", "port": 0}
    assert "port" not in json.loads(drop_port_zero(json.dumps(ui_body).encode()))
    for keep in ({**ui_body, "port": 8701}, {**ui_body, "port": None}, {**ui_body, "port": False}):
        assert json.loads(drop_port_zero(json.dumps(keep).encode())) == keep
    assert drop_port_zero(b"not json") == b"not json"


def test_middleware_rewrites_only_the_connection_test_route() -> None:
    app = FastAPI()

    @app.post("/api/v2/connections/test")
    async def test_route(request: Request) -> dict[str, Any]:
        return {"body": await request.json(), "length": request.headers["content-length"]}

    @app.post("/api/v2/connections")
    async def other(request: Request) -> dict[str, Any]:
        return {"body": await request.json()}

    app.add_middleware(ConnectionTestPortZeroMiddleware)
    client = TestClient(app)
    sent = {"connection_id": "c", "conn_type": "jaggaer", "password": "***", "port": 0}
    seen = client.post("/api/v2/connections/test", json=sent).json()
    assert seen["body"] == {k: v for k, v in sent.items() if k != "port"}
    assert int(seen["length"]) == len(json.dumps(seen["body"]).encode())
    assert client.post("/api/v2/connections", json=sent).json()["body"] == sent


def test_connector_db_hook_message(store: Any, tmp_path: Any) -> None:
    ok, message = check_database(store.url.render_as_string(hide_password=False))
    assert ok and "newest revision" in message, message
    ok, message = check_database(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not ok and "mlc db upgrade" in message
    (tmp_path / "empty.db").write_bytes(b"")
    ok, message = check_database(f"sqlite:///{tmp_path / 'empty.db'}")
    assert not ok and "no connector tables" in message, message


def test_console_lists_nav_entries() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "plugins" / "ml_connector_plugin.py").read_text()
    assert re.search(r'"href": "ml-connector/ui/ledger"', text) and "fastapi_root_middlewares" in text


def test_resolve_source_id_takes_the_invoice_number_or_id(records: dict[str, int], store: Any) -> None:
    assert queries.resolve_source_id(store, "demo", "invoice_poll", "I00071") == ("2428071", "")
    assert queries.resolve_source_id(store, "demo", "invoice_poll", "2428071") == ("2428071", "")
    assert queries.resolve_source_id(store, "demo", "invoice_poll", "26700071") == ("2428071", "")
    missing, hint = queries.resolve_source_id(store, "demo", "invoice_poll", "I00999")
    assert missing is None and "I00999" in hint


def test_consent_callback_without_a_login_cookie_goes_through_the_login_page(browser: Any, store: Any) -> None:
    """Consent started on 127.0.0.1 while the redirect URI says localhost: no cookie on the callback's host; the
    browser logs in there and comes back to the callback with its code and state intact."""
    r = browser(None).get("/ml-connector/exact/callback", params={"code": "c0de", "state": "st4te"}, headers=HTML)
    assert r.status_code == 303, r.text[:200]
    back = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
    assert urlsplit(back).path == "/ml-connector/exact/callback"
    assert parse_qs(urlsplit(back).query) == {"code": ["c0de"], "state": ["st4te"]}
