"""The reconciliation page of the console: who sees and runs what, the page, and the CSV and XLSX downloads (the
real plugin app, Airflow's real authentication, a migrated SQLite store; *Reconcile now* against both sandboxes)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from web_support import csrf_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows" / "invoice_poll"))

PAGE = "/ml-connector/ui/reconcile"
HTML = {"Accept": "text/html"}
FORMULA = '=HYPERLINK("http://evil.test","x")'


def _rows() -> list[dict[str, Any]]:
    base = {"division": 111111, "currency": "GBP", "supplier": "Brammer Steel Stockholders Ltd"}
    return [
        {**base, "category": "amount_or_date_differs", "jaggaer_invoice_number": "I00071",
         "jaggaer_invoice_id": "2428071", "your_ref": "EDIT-1", "jaggaer_date": date(2026, 12, 1),
         "exact_date": date(2026, 12, 1), "jaggaer_amount": "24.00", "exact_amount": "30.00",
         "exact_entry_number": 26600001, "exact_entry_id": "a" * 8, "ledger_state": "posted",
         "note": "amount: JAGGAER 24.00, Exact 30.00"},
        {**base, "category": "exact_only", "your_ref": FORMULA, "exact_date": date(2026, 12, 1),
         "exact_amount": "48.00", "exact_entry_number": 26600002, "note": "keyed by hand in Exact"},
        {**base, "category": "matched", "jaggaer_invoice_number": "I00072", "jaggaer_invoice_id": "2428072",
         "your_ref": "OK-1", "jaggaer_date": date(2026, 12, 1), "exact_date": date(2026, 12, 1),
         "jaggaer_amount": "12.00", "exact_amount": "12.00", "exact_entry_number": 26600003, "ledger_state": "posted",
         "note": ""},
    ]  # fmt: skip


@pytest.fixture
def saved(store: Any) -> int:
    from ml_connector.reconcile.store import save

    return save(
        store,
        tenant="demo",
        division=111111,
        date_from=date(2026, 12, 1),
        date_to=date(2026, 12, 1),
        trigger="scheduled__2026-12-02T02:00:00+00:00",
        counts={
            "matched": 1,
            "amount_or_date_differs": 1,
            "jaggaer_only": 0,
            "exact_only": 1,
            "posted_not_in_exact": 0,
        },
        off=2,
        exact_calls=1,
        jaggaer_calls=2,
        rows=_rows(),
    )


def test_viewer_sees_the_newest_reconciliation_with_counts_rows_and_downloads(browser: Any, saved: int) -> None:
    page = browser("viewer").get(PAGE, params={"tenant": "demo"})
    assert page.status_code == 200, page.text
    text = page.text
    assert f'id="shown">Reconciliation {saved}: division 111111' in text
    assert 'id="count-exact_only">1<' in text and 'id="count-amount_or_date_differs">1<' in text
    assert "2 row(s) need a look" in text and "keyed by hand in Exact" in text
    assert "=HYPERLINK(&#34;http://evil.test&#34;" in text  # escaped, never markup
    assert f'href="{PAGE}/{saved}.xlsx"' in text and f'href="{PAGE}/{saved}.csv"' in text
    assert 'id="run"' not in text and "read only" in text  # viewers cannot reconcile
    assert ">Reconciliation</a>" in text  # the console's tab


def test_csv_download_has_every_row_with_formulas_escaped(browser: Any, saved: int) -> None:
    import csv

    got = browser("viewer").get(f"{PAGE}/{saved}.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert "mlc-reconciliation-demo-111111-2026-12-01-2026-12-01.csv" in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [r["category"] for r in rows] == ["amount or date differs", "in Exact only", "matched"]
    assert rows[1]["your_ref"] == "'" + FORMULA and rows[0]["exact_amount"] == "30.0"


def test_xlsx_download_reads_back_with_openpyxl_and_pandas(browser: Any, saved: int) -> None:
    import openpyxl
    import pandas as pd

    got = browser("viewer").get(f"{PAGE}/{saved}.xlsx")
    assert got.status_code == 200 and "spreadsheetml" in got.headers["content-type"]
    book = openpyxl.load_workbook(io.BytesIO(got.content))
    assert book.sheetnames == ["Summary", "Reconciliation"]
    sheet = book["Reconciliation"]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)  # no formula ran
    frame = pd.read_excel(io.BytesIO(got.content), sheet_name="Reconciliation")
    assert list(frame["category"]) == ["amount or date differs", "in Exact only", "matched"]
    assert frame.loc[0, "exact_amount"] == 30.0 and frame.loc[1, "your_ref"] == "'" + FORMULA
    summary = dict(pd.read_excel(io.BytesIO(got.content), sheet_name="Summary").values.tolist())
    assert summary["in Exact only"] == 1 and summary["tenant"] == "demo" and summary["Exact calls"] == 1


def test_unknown_reconciliation_and_format_are_404(browser: Any, saved: int) -> None:
    viewer = browser("viewer")
    assert viewer.get(f"{PAGE}/{saved + 99}.csv").status_code == 404
    assert viewer.get(f"{PAGE}/{saved}.pdf").status_code == 404
    page = viewer.get(PAGE, params={"tenant": "demo", "id": saved + 99})
    assert page.status_code == 404 and f"no reconciliation {saved + 99}" in page.text
    assert viewer.get(PAGE, params={"tenant": "nope"}).status_code == 404


def test_logged_out_browser_goes_to_login_and_api_clients_get_401(browser: Any, store: Any) -> None:
    anonymous = browser(None)
    page = anonymous.get(PAGE, params={"tenant": "demo"}, headers=HTML)
    assert page.status_code == 303 and urlsplit(page.headers["location"]).path.endswith("/login")
    assert "tenant=demo" in parse_qs(urlsplit(page.headers["location"]).query)["next"][0]
    assert anonymous.get(f"{PAGE}/1.xlsx").status_code == 401


def test_reconcile_now_needs_an_editor_and_the_csrf_token(browser: Any, store: Any) -> None:
    form = {"tenant": "demo", "division": "111111", "date_from": "2026-12-01", "date_to": "2026-12-01"}
    viewer = browser("viewer")
    viewer.get(PAGE, params={"tenant": "demo"})
    assert viewer.post(f"{PAGE}/run", data=form).status_code == 403
    admin = browser("admin")
    admin.get(PAGE, params={"tenant": "demo"})
    assert admin.post(f"{PAGE}/run", data=form).status_code == 403  # no CSRF token


def test_bad_period_is_refused_with_a_message(browser: Any, store: Any) -> None:
    admin = browser("admin")
    token = csrf_of(admin.get(PAGE, params={"tenant": "demo"}).text)
    form = {"tenant": "demo", "division": "111111", "date_from": "2026-12-02", "date_to": "2026-12-01"}
    got = admin.post(f"{PAGE}/run", data={**form, "csrf_token": token})
    assert got.status_code == 303
    shown = admin.get(got.headers["location"])
    assert "Not reconciled: the period 2026-12-02 .. 2026-12-01 must not end before it starts" in shown.text


@pytest.fixture
def world(store: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from invoice_poll_support import World, start_servers, stop_servers

    servers = start_servers()
    w = World(servers, store, monkeypatch)
    w.reset()
    try:
        yield w
    finally:
        w.close()
        stop_servers(servers)


def test_reconcile_now_reads_both_sandboxes_and_shows_the_result(browser: Any, world: Any) -> None:
    w = world
    w.invoice(supplier_invoice_number="WEB-1", lines=[{"unit_price": "10.00"}])
    w.invoice(supplier_id=59001, supplier_number=None, supplier_invoice_number="WEB-HELD")
    w.run()
    admin = browser("admin")
    token = csrf_of(admin.get(PAGE, params={"tenant": "demo"}).text)
    day = w.day.isoformat()
    form = {"tenant": "demo", "division": "111111", "date_from": day, "date_to": day, "csrf_token": token}
    got = admin.post(f"{PAGE}/run", data=form)
    assert got.status_code == 303, got.text
    page = admin.get(got.headers["location"])
    assert "Reconciled: tenant demo, Exact division 111111" in page.text, page.text[:2000]
    assert 'id="count-matched">1<' in page.text and 'id="count-jaggaer_only">1<' in page.text
    assert "WEB-HELD" in page.text and "ledger: held" in page.text and "admin-user (admin) in the console" in page.text
