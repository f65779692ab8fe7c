"""The operator's day in a real browser: Playwright for Python driving Debian's chromium (``/usr/bin/chromium``,
installed by ``scripts/install_test_deps.sh``; Playwright's own browser download is never used) against the e2e
stack's real api-server, scheduler and dag-processor.

It logs in through Airflow's login page (reached by opening a console page logged out, and coming back to it),
runs the invoice poll over the last days so the ledger has posted and held invoices, opens each console page,
finds a record by its JAGGAER invoice number and follows it to its task log, requeues a held invoice, and presses
*Test* on each connection in Airflow's connection list (the hook's own message must come back). A screenshot of each
page is written to ``$MLC_TEST_ARTIFACTS/browser`` (default ``tests/artifacts/browser``, ignored by git).

The API-level test first sends the exact body the UI's *Test* button sends (port 0, masked password), which is what
failed before the plugin's middleware.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import ADMIN_USER, JAGGAER_DAG, REPO, TENANT, AirflowStack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

CHROMIUM = os.environ.get("MLC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MLC_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "browser"
CONNECTIONS = ("exact_demo", "jaggaer_demo", "ml_connector_db")
EXPECTED = {
    "exact_demo": re.compile(rf"tenant {TENANT}: connected as .*111111, 222222 accessible"),
    "jaggaer_demo": re.compile(r"XML Identity/SharedSecret accepted"),
    "ml_connector_db": re.compile(r"Connection successfully tested", re.I),  # the postgres provider's hook
}


def ui_test_body(conn: dict[str, Any]) -> dict[str, Any]:
    """What Airflow 3.3.2's connection list sends on *Test*: ``Number(port)`` (0 for none), masked secrets."""
    return {
        "conn_type": conn["conn_type"],
        "connection_id": conn["connection_id"],
        "description": conn.get("description") or "",
        "extra": conn.get("extra") or "{}",
        "host": conn.get("host") or "",
        "login": conn.get("login") or "",
        "password": conn.get("password") or "",
        "port": int(conn.get("port") or 0),
        "schema": conn.get("schema") or "",
    }


def test_ui_shaped_test_request_gets_the_hooks_message(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any]
) -> None:
    s = airflow_stack
    for conn_id in CONNECTIONS:
        stored = s.api_json("GET", f"/api/v2/connections/{conn_id}")
        body = ui_test_body(stored)
        if conn_id != "ml_connector_db":
            assert body["port"] == 0 and body["password"] == "***", body  # what used to fail
        r = s.api("POST", "/api/v2/connections/test", json=body)
        assert r.status_code == 200, f"{conn_id}: HTTP {r.status_code} {r.text[:300]}"
        result = r.json()
        assert result["status"] is True and EXPECTED[conn_id].search(result["message"]), (conn_id, result)
    # a different host with the masked password is still refused by Airflow (its rule is kept)
    other = {**ui_test_body(s.api_json("GET", "/api/v2/connections/jaggaer_demo")), "host": "http://127.0.0.1:9"}
    assert s.api("POST", "/api/v2/connections/test", json=other).status_code == 400


# --------------------------------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def page(airflow_stack: AirflowStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_test_deps.sh (apt-get install -y chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def run_invoice_poll(s: AirflowStack) -> str:
    today = datetime.now(UTC).date()
    conf = {"date_from": (today - timedelta(days=10)).isoformat(), "date_to": today.isoformat()}
    s.wait_for_dags([JAGGAER_DAG])
    s.wait_idle(JAGGAER_DAG, timeout=300)
    run_id = s.trigger(JAGGAER_DAG, conf, note="browser test")
    s.wait_run(JAGGAER_DAG, run_id, timeout=300)
    return run_id


def test_operator_day_in_the_browser(airflow_stack: AirflowStack, exact_connected: dict[str, Any], page: Any) -> None:
    s = airflow_stack
    run_invoice_poll(s)
    ledger = s.sql(
        "SELECT id, source_id, source_ref, state, last_run_id FROM mlc_ledger WHERE tenant = :t AND flow = "
        "'invoice_poll' ORDER BY id",
        t=TENANT,
    )
    posted = [r for r in ledger if r["state"] == "posted" and r["source_ref"]]
    held = [r for r in ledger if r["state"] == "held"]
    assert posted and held, f"the demo seed should give posted and held invoices: {[r['state'] for r in ledger]}"
    console = f"{s.api_url}/ml-connector/ui/ledger?tenant={TENANT}"

    # 1. logged out: a console page sends the browser to Airflow's login page, and back after logging in
    page.goto(console)
    page.wait_for_url(re.compile(r"/auth/login\?next="))
    shot(page, "01-login")
    page.fill("input[name=username]", ADMIN_USER)
    page.fill("input[name=password]", s.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ml-connector/ui/ledger\?tenant=demo$"))
    assert page.locator("#total").is_visible()
    shot(page, "02-records")

    # 2. find a record by its JAGGAER invoice number, open it, follow its history to the task log
    invoice = posted[0]
    page.fill("input[name=q]", invoice["source_ref"])
    page.click("form.filters button[type=submit]")
    assert page.locator("#total").inner_text().startswith("1 record(s)")
    shot(page, "03-search")
    page.locator("#records a.rec").first.click()
    page.wait_for_url(re.compile(r"/ui/ledger/record/\d+"))
    assert page.locator("#state").inner_text() == "posted"
    history = page.locator("#history").inner_text()
    assert invoice["source_ref"] in page.content() and "state:posted" in history, history
    shot(page, "04-record")
    log_link = page.locator("#history a.log").last
    href = log_link.get_attribute("href") or ""
    assert re.search(r"/dags/jaggaer_invoice_poll__demo/runs/.+/tasks/division_\d+\.post\?try_number=\d+$", href), href
    page.goto(f"{s.api_url}{href}")
    page.wait_for_url(re.compile(r"/tasks/division_\d+\.post"))
    page.get_by_text("Done. Returned value was", exact=False).first.wait_for(timeout=90_000)
    shot(page, "05-task-log")

    # 3. needs a person: the held invoice is there with its fix, and a requeue puts it back to pending
    target = held[0]
    page.goto(f"{s.api_url}/ml-connector/ui/ledger/attention?tenant={TENANT}")
    assert page.locator("#cause-vendor, #cause-code, #cause-refused, #cause-other").count() >= 1
    shot(page, "06-needs-a-person")
    row = page.locator("tr", has=page.locator(f"button[name=requeue][value='{target['id']}']"))
    row.locator("button[name=requeue]").click()
    page.wait_for_url(re.compile(r"/ui/ledger/attention\?.*msg="))
    assert "Requeued 1 invoice_poll record(s)" in page.locator("#flash").inner_text()
    state = s.sql("SELECT state FROM mlc_ledger WHERE id = :i", i=target["id"])[0]["state"]
    assert state == "pending", state
    shot(page, "07-requeued")

    # 4. the audit export page and its CSV
    page.goto(f"{s.api_url}/ml-connector/ui/ledger/audit?tenant={TENANT}")
    shot(page, "08-audit-export")
    with page.expect_download() as download:
        page.click("#audit-export button[type=submit]")
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    assert csv_text.startswith("at,tenant,flow,division,action") and invoice["source_ref"] in csv_text

    # 5. Test on each connection in Airflow's connection list: the hook's own message in the toast
    page.goto(f"{s.api_url}/connections")
    for conn_id in CONNECTIONS:
        row = page.locator("tr", has_text=conn_id).first
        row.wait_for()
        # the previous button's tooltip covers this row's button until the pointer leaves it
        page.mouse.move(5, 5)
        page.wait_for_function(
            "!document.querySelector('[data-scope=tooltip][data-part=content][data-state=open]')", timeout=10_000
        )
        row.get_by_role("button", name="Test Connection").click()
        toast = page.locator("[data-scope=toast][data-part=root]", has_text=EXPECTED[conn_id]).first
        toast.wait_for(timeout=90_000)
        text = toast.inner_text()
        assert "Failed" not in text and "Bad Request" not in text, (conn_id, text)
        shot(page, f"09-test-{conn_id}")
    page.goto(f"{s.api_url}/ml-connector/ui/status")
    shot(page, "10-status")
    (ARTIFACTS / "ledger.json").write_text(json.dumps(ledger, default=str, indent=1), encoding="utf-8")
