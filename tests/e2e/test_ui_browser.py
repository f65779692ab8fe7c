"""The operator's day in a real browser: Playwright for Python driving Debian's chromium (``/usr/bin/chromium``,
installed by ``scripts/install_test_deps.sh``; Playwright's own browser download is never used) against the e2e
stack's real api-server, scheduler and dag-processor.

It logs in through Airflow's login page (reached by opening a console page logged out, and coming back to it),
connects Exact from ``localhost`` (the plugin's consent route, the sandbox's consent, the callback), runs the
invoice poll over the last days so the ledger has posted and held invoices, opens each console page, finds a record
by its JAGGAER invoice number and follows it to its task log, fixes a held invoice (maps its vendor in place: the
page checks the code in Exact) and requeues it, triggers both DAGs from Airflow's UI (the requeued invoice is
posted), clears a failed post task from the UI after an Exact fault is removed (the open invoices are posted), and
presses *Test* on each connection in Airflow's connection list (the hook's own message must come back). A screenshot
of each page is written to ``$MLC_TEST_ARTIFACTS/browser`` (default ``tests/artifacts/browser``, ignored by git).

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
from e2e_stack import ADMIN_USER, EXACT_DAG, JAGGAER_DAG, REPO, TENANT, AirflowStack

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


def login_if_asked(page: Any, s: AirflowStack) -> None:
    """Airflow's login form, when the browser was sent there (a host name it has no login cookie for)."""
    if "/auth/login" in page.url:
        page.fill("input[name=username]", ADMIN_USER)
        page.fill("input[name=password]", s.password)
        page.click("button[type=submit]")


def trigger_in_ui(page: Any, s: AirflowStack, dag_id: str, name: str) -> str:
    """Press *Trigger* on the DAG's page and confirm the dialog with its defaults; returns the new run's id."""
    s.wait_idle(dag_id, timeout=300)
    before = {r["dag_run_id"] for r in s.dag_runs(dag_id)}
    page.goto(f"{s.api_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Trigger Dag").first.wait_for()
    shot(page, name)
    dialog.get_by_role("button", name="Trigger").last.click()
    page.get_by_text("Dag Run Triggered").first.wait_for(timeout=60_000)

    def new_run() -> str | None:
        runs = s.dag_runs(dag_id)
        fresh = [r["dag_run_id"] for r in runs if r["dag_run_id"] not in before and r.get("run_type") == "manual"]
        return fresh[0] if fresh else None

    return s.wait_for(f"the UI-triggered run of {dag_id}", new_run, 60)


def free_exact_code(s: AirflowStack, division: int) -> str:
    """An Exact supplier code of ``division`` that no JAGGAER vendor is linked to yet."""
    linked = s.sql(
        "SELECT exact_code, exact_account_id FROM mlc_vendor_map WHERE tenant = :t AND division = :d",
        t=TENANT,
        d=division,
    )
    taken = {r["exact_code"] for r in linked} | {r["exact_account_id"] for r in linked}
    for row in s.exact.sandbox.store.divisions[division].accounts:
        code = str(row.get("Code") or "").strip()
        if row.get("IsSupplier") and code and code not in taken and str(row.get("ID")) not in taken:
            return code
    raise AssertionError(f"every Exact supplier of division {division} is linked already")


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

    # 1b. connect Exact from http://localhost (as the README says to browse): log in there, the plugin's Connect
    # route, the sandbox's consent, and the callback stores a new token chain
    local = s.api_url.replace("127.0.0.1", "localhost")
    page.goto(f"{local}/ml-connector/exact/connect?tenant={TENANT}")
    login_if_asked(page, s)
    page.wait_for_url(re.compile(r"/ml-connector/exact/callback\?"))
    login_if_asked(page, s)  # the callback host (the connection's redirect URI) may ask for its own login
    page.get_by_text(f"Tokens stored for tenant {TENANT}").wait_for()
    shot(page, "02b-exact-connected")
    chains = s.exact.state()["oauth"]["chains"]
    assert sum(not c["dead"] for c in chains) >= 1, chains

    # 2. find a record by its JAGGAER invoice number, open it, follow its history to the task log
    invoice = posted[0]
    page.goto(console)
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

    # 3. needs a person: a held invoice is there with its fix; map its vendor in place (the page asks Exact whether
    # the code exists: an unknown one is refused), then requeue it
    page.goto(f"{s.api_url}/ml-connector/ui/ledger/attention?tenant={TENANT}")
    assert page.locator("#cause-vendor, #cause-code, #cause-refused, #cause-other").count() >= 1
    shot(page, "06-needs-a-person")
    fixable = [
        r
        for r in held
        if page.locator("tr", has=page.locator(f"button[name=requeue][value='{r['id']}']"))
        .locator("form.fix input[name=jaggaer_supplier_id]")
        .count()
    ]
    assert fixable, "a held invoice should offer its vendor mapping in place"
    target = fixable[0]
    row = page.locator("tr", has=page.locator(f"button[name=requeue][value='{target['id']}']"))
    fix = row.locator("form.fix").first
    division = int(fix.locator("input[name=division]").get_attribute("value") or 0)
    fix.locator("input[name=exact_code]").fill("9999")
    fix.locator("button[type=submit]").click()
    assert "Exact has no supplier with code '9999'" in page.content()
    shot(page, "06b-unknown-exact-code-refused")
    page.goto(f"{s.api_url}/ml-connector/ui/ledger/attention?tenant={TENANT}")
    row = page.locator("tr", has=page.locator(f"button[name=requeue][value='{target['id']}']"))
    row.locator("form.fix input[name=exact_code]").first.fill(free_exact_code(s, division))
    row.locator("form.fix button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/ui/mappings\?.*msg="))
    assert "Saved vendor link" in page.content()
    shot(page, "06c-vendor-mapped")
    page.goto(f"{s.api_url}/ml-connector/ui/ledger/attention?tenant={TENANT}")
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

    # 5. trigger both DAGs from Airflow's UI: both runs succeed, and the fixed invoice is posted
    poll_run = trigger_in_ui(page, s, JAGGAER_DAG, "09a-trigger-invoice-poll")
    assert s.wait_run(JAGGAER_DAG, poll_run, timeout=300) == "success", s.run_summary(JAGGAER_DAG, poll_run)
    state = s.sql("SELECT state FROM mlc_ledger WHERE id = :i", i=target["id"])[0]["state"]
    assert state == "posted", state
    push_run = trigger_in_ui(page, s, EXACT_DAG, "09b-trigger-po-push")
    assert s.wait_run(EXACT_DAG, push_run, timeout=300) == "success", s.run_summary(EXACT_DAG, push_run)

    # 6. Exact refuses the division (403 on the look-up before posting): the post task trips its error stop and
    # the run is red with the new invoices still open; the fault removed, *Clear Dag Run → only failed* in the UI
    # posts them (the error stop counts the current try only)
    today = datetime.now(UTC)
    new_numbers = []
    for n in range(2):
        made = s.jaggaer_admin(
            "POST",
            "invoices",
            json={
                "last_update": today.isoformat(),
                "invoice_date": today.date().isoformat(),
                "business_unit": "UK-MFG",
                "supplier_number": "1001",
                "supplier_invoice_number": f"UI-CLEAR-{today:%H%M%S}-{n}",
                "lines": [{"unit_price": "10.00"}],
            },
        )
        new_numbers.append(made["summary"]["invoiceNumber"])
    s.exact.fault(
        method="GET",
        path="PurchaseEntries",
        action="status",
        status=403,
        headers={"Reason": "DivisionBlocked"},
        count=None,
    )
    try:
        s.wait_idle(JAGGAER_DAG, timeout=300)
        red = s.trigger(JAGGAER_DAG, {"date_from": today.date().isoformat()}, note="browser test: Exact refusing")
        assert s.wait_run(JAGGAER_DAG, red, timeout=300) == "failed", s.run_summary(JAGGAER_DAG, red)
    finally:
        s.exact.clear_faults()
    open_rows = s.sql(
        "SELECT source_ref, state FROM mlc_ledger WHERE tenant = :t AND flow = 'invoice_poll' AND source_ref IN "
        "(:a, :b)",
        t=TENANT,
        a=new_numbers[0],
        b=new_numbers[1],
    )
    assert {r["state"] for r in open_rows} == {"pending"}, open_rows
    page.goto(f"{s.api_url}/dags/{JAGGAER_DAG}/runs/{red}")
    # the run's *Clear Dag Run* button (labelled with its shortcut, shift+c, while shortcuts are on)
    page.get_by_role("button", name=re.compile(r"^(Clear Dag Run|Press shift\+c to clear)$")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Clear only failed tasks").first.click()
    shot(page, "10-clear-only-failed")
    dialog.get_by_role("button", name="Confirm").click()
    assert s.wait_run(JAGGAER_DAG, red, timeout=240, states={"success"}) == "success", s.run_summary(JAGGAER_DAG, red)
    posted_now = s.sql(
        "SELECT state FROM mlc_ledger WHERE tenant = :t AND flow = 'invoice_poll' AND source_ref IN (:a, :b)",
        t=TENANT,
        a=new_numbers[0],
        b=new_numbers[1],
    )
    assert [r["state"] for r in posted_now] == ["posted", "posted"], posted_now
    page.goto(f"{s.api_url}/dags/{JAGGAER_DAG}/runs/{red}")
    shot(page, "11-cleared-run-green")

    # 7. Test on each connection in Airflow's connection list: the hook's own message in the toast
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
        shot(page, f"12-test-{conn_id}")
    page.goto(f"{s.api_url}/ml-connector/ui/status")
    shot(page, "13-status")
    page.goto(f"{s.api_url}/ml-connector/ui/mappings?tenant={TENANT}")
    shot(page, "14-mappings")
    (ARTIFACTS / "ledger.json").write_text(json.dumps(ledger, default=str, indent=1), encoding="utf-8")
