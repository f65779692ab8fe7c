"""The reconciliation in a real deployment and a real browser (Playwright for Python driving Debian's chromium, as
``test_ui_browser.py``; the session's ``airflow_stack`` is reused, no second stack starts).

A UI-shaped run of the invoice poll runs each division's ``reconcile`` task, which saves a reconciliation in the
connector database. The browser opens the Reconciliation page logged out (Airflow's login page, and back), sees the
saved reconciliations, reconciles a division now, downloads the XLSX and reads it back with openpyxl and pandas.
Screenshots go to ``$MLC_TEST_ARTIFACTS/browser`` (default ``tests/artifacts/browser``) as ``reconcile-*.png``.
"""

from __future__ import annotations

import io
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
LABELS = {
    "matched",
    "amount or date differs",
    "in JAGGAER only",
    "in Exact only",
    "posted by us but no longer in Exact",
}


@pytest.fixture(scope="module")
def page(airflow_stack: AirflowStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_test_deps.sh (apt-get install -y chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        context.set_default_timeout(60_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"reconcile-{name}.png"), full_page=True)


def test_reconciliation_page_reconcile_now_and_xlsx_download(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any], page: Any
) -> None:
    import openpyxl
    import pandas as pd

    s = airflow_stack
    today = datetime.now(UTC).date()
    conf = {"date_from": (today - timedelta(days=10)).isoformat(), "date_to": today.isoformat()}
    s.wait_for_dags([JAGGAER_DAG])
    s.wait_idle(JAGGAER_DAG, timeout=300)
    run_id = s.trigger(JAGGAER_DAG, conf, note="reconciliation browser test")
    s.wait_run(JAGGAER_DAG, run_id, timeout=300)
    tasks = {t["task_id"]: t["state"] for t in s.task_instances(JAGGAER_DAG, run_id)}
    reconcile_tasks = {k: v for k, v in tasks.items() if k.endswith(".reconcile")}
    assert reconcile_tasks and set(reconcile_tasks.values()) == {"success"}, tasks
    saved = s.sql(
        "SELECT id, division, off, counts FROM mlc_reconciliation WHERE tenant = :t AND trigger = :r ORDER BY id",
        t=TENANT,
        r=run_id,
    )
    assert {r["division"] for r in saved} == {111111, 222222}, saved

    # logged out: the page sends the browser to Airflow's login page, and back after logging in
    url = f"{s.api_url}/ml-connector/ui/reconcile?tenant={TENANT}"
    page.goto(url)
    page.wait_for_url(re.compile(r"/auth/login\?next="))
    page.fill("input[name=username]", ADMIN_USER)
    page.fill("input[name=password]", s.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ml-connector/ui/reconcile\?tenant=demo$"))
    assert page.locator("#saved").is_visible() and page.locator("#shown").is_visible()
    assert run_id in page.locator("#saved").inner_text()
    shot(page, "01-saved")

    # reconcile division 111111 now, over the last 31 days
    page.select_option("#run select[name=division]", "111111")
    page.click("#run button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/reconcile\?tenant=demo&id=\d+&msg="))
    flash = page.locator("#flash").inner_text()
    assert flash.startswith("Reconciled: tenant demo, Exact division 111111"), flash
    rec_id = int(re.search(r"[?&]id=(\d+)", page.url).group(1))  # type: ignore[union-attr]
    counts = {
        key: int(page.locator(f"#count-{key}").inner_text())
        for key in ("matched", "amount_or_date_differs", "jaggaer_only", "exact_only", "posted_not_in_exact")
    }
    assert counts["matched"] >= 1, counts  # the demo run posted invoices of this division
    shot(page, "02-reconciled")

    # the XLSX download, read back
    with page.expect_download() as download:
        page.click("#xlsx")
    assert download.value.suggested_filename.startswith(f"mlc-reconciliation-{TENANT}-111111-")
    content = Path(download.value.path()).read_bytes()
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["Summary", "Reconciliation"]
    rows = pd.read_excel(io.BytesIO(content), sheet_name="Reconciliation")
    assert len(rows) == sum(counts.values()) and set(rows["category"]) <= LABELS
    assert (rows["category"] == "matched").sum() == counts["matched"]
    summary = dict(pd.read_excel(io.BytesIO(content), sheet_name="Summary").values.tolist())
    assert summary["tenant"] == TENANT and int(summary["division"]) == 111111
    stored = s.sql("SELECT exact_calls FROM mlc_reconciliation WHERE id = :i", i=rec_id)
    assert stored and 1 <= stored[0]["exact_calls"] <= 2, stored  # one bulk page (and at most a token refresh)
    (ARTIFACTS / "reconcile.xlsx").write_bytes(content)

    # the ledger console links to the page
    page.goto(f"{s.api_url}/ml-connector/ui/ledger?tenant={TENANT}")
    page.get_by_role("link", name="Reconciliation").click()
    page.wait_for_url(re.compile(r"/ml-connector/ui/reconcile\?tenant=demo"))
    shot(page, "03-tab")
