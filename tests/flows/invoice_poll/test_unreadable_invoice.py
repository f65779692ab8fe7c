"""Quarantine one record, not the run (issue 11), real HTTP with the JAGGAER sandbox's fault injection: an invoice
detail served as an HTML maintenance page with status 200, or as truncated JSON, is quarantined with a reason
naming the invoice and what was wrong, every other invoice of the run is posted, the window cursor stays, and
the next run reads the invoice again and posts it once JAGGAER serves it well. Only an unreadable list page stops
the extract."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from invoice_poll_support import TENANT, World, at, day_window

from ml_connector.flows.invoice_poll.common import FLOW
from ml_connector.store.cursors import get_cursor
from ml_connector.store.db import session_scope

extract_mod = importlib.import_module("ml_connector.flows.invoice_poll.extract")
LIST_PATH = "/j1p/api/public/ji/v1/invoices$"
DETAIL_PATH = "/j1p/api/public/ji/v1/invoices/{id}$"

HTML = {"action": "html_maintenance"}
TRUNCATED = {
    "action": "status",
    "status": 200,
    "body": '{"returnCode": 0, "header": {"invoiceId": 1, "invoiceNumber": "I0',
    "headers": {"content-type": "application/json"},
}


def _cursor(w: World) -> datetime | None:
    with session_scope(w.engine) as s:
        raw = get_cursor(s, TENANT, FLOW, extract_mod.CURSOR_SCOPE)
    return datetime.fromisoformat(raw) if raw else None


def _detail_reads(w: World) -> int:
    by_endpoint = w.jag("GET", "calls")["by_endpoint"]
    return sum(n for key, n in by_endpoint.items() if key.startswith("GET ") and "invoices/" in key)


def _three_invoices(w: World, tag: str) -> list[dict[str, Any]]:
    return [
        w.invoice(hour=9 + i, supplier_invoice_number=f"{tag}-{i}", lines=[{"unit_price": f"{10 * (i + 1)}.00"}])
        for i in range(3)
    ]


@pytest.mark.parametrize(
    ("fault", "what"),
    [(HTML, "an HTML page titled 'Maintenance'"), (TRUNCATED, "JSON that breaks off after")],
    ids=["html_maintenance_page", "truncated_json"],
)
def test_an_unreadable_detail_is_quarantined_and_read_again_next_run(
    world: World, fault: dict[str, Any], what: str
) -> None:
    w = world
    w.run(window=day_window(w.day - timedelta(days=1)))  # a run before: the cursor is at the test day's start
    assert _cursor(w) == at(w.day, 0)
    invoices = _three_invoices(w, "UNR")
    bad = invoices[1]["summary"]
    w.jag("POST", "faults", {**fault, "path": DETAIL_PATH.format(id=bad["invoiceId"]), "count": None})
    w.clear_calls()
    try:
        summary = w.run()
        reads = _detail_reads(w)
    finally:
        w.jag("DELETE", "faults")

    # the rest of the run goes on: both other invoices are posted
    assert len(w.entries_for("UNR-0")) == 1 and len(w.entries_for("UNR-2")) == 1
    assert w.entries_for("UNR-1") == []
    assert summary["counts"]["posted"] == 2
    assert summary["counts"]["unreadable"] == 1 and summary["counts"]["quarantined"] == 1
    # recorded against that invoice, naming it and what was wrong
    entry = w.ledger(bad["invoiceId"])
    assert entry.state == "quarantined"
    assert entry.reason.startswith(
        f"unreadable: JAGGAER's detail of invoice {bad['invoiceNumber']} (id {bad['invoiceId']}) could not be read: "
    )
    assert what in entry.reason and "read again on the next run" in entry.reason
    assert any(bad["invoiceNumber"] in d and what in d for d in summary["details"])
    # the usual retries: 3 reads of the bad detail (MLC_HTTP_MAX_ATTEMPTS=3), one of each good one
    assert reads == 3 + 2
    # the cursor stays, so the next run reads the window again
    assert _cursor(w) == at(w.day, 0)

    # next run: JAGGAER serves it well again; it is read and posted once, the others are not posted twice
    nxt = w.run(window=day_window(w.day + timedelta(days=1)))
    assert len(w.entries_for("UNR-1")) == 1
    assert len(w.entries_for("UNR-0")) == 1 and len(w.entries_for("UNR-2")) == 1
    assert nxt["counts"]["posted"] == 1 and not nxt["counts"].get("unreadable")
    assert w.ledger(bad["invoiceId"]).state == "posted"
    assert _cursor(w) == at(w.day + timedelta(days=2), 0)


def test_a_detail_that_stays_unreadable_stays_quarantined_and_holds_the_cursor(sqlite_world: World) -> None:
    w = sqlite_world
    w.run(window=day_window(w.day - timedelta(days=1)))
    [good, bad] = [
        w.invoice(hour=9 + i, supplier_invoice_number=f"STAY-{i}", lines=[{"unit_price": "12.00"}]) for i in range(2)
    ]
    bad_id = bad["summary"]["invoiceId"]
    w.jag("POST", "faults", {**HTML, "path": DETAIL_PATH.format(id=bad_id), "count": None})
    try:
        w.run()
        second = w.run(window=day_window(w.day + timedelta(days=1)))
    finally:
        w.jag("DELETE", "faults")
    assert len(w.entries_for("STAY-0")) == 1 and w.entries_for("STAY-1") == []
    assert second["counts"]["unreadable"] == 1 and w.ledger(bad_id).state == "quarantined"
    assert _cursor(w) == at(w.day, 0)  # still held: the window with the unreadable invoice is read again
    assert good["summary"]["invoiceId"] != bad_id

    third = w.run(window=day_window(w.day + timedelta(days=2)))
    assert len(w.entries_for("STAY-1")) == 1 and third["counts"]["posted"] == 1
    assert _cursor(w) == at(w.day + timedelta(days=3), 0)


def test_a_passing_maintenance_page_is_ridden_out_by_the_retries(sqlite_world: World) -> None:
    """One maintenance page on a detail read: the next read succeeds, the invoice is posted in the same run."""
    w = sqlite_world
    w.run(window=day_window(w.day - timedelta(days=1)))
    created = w.invoice(hour=9, supplier_invoice_number="BLIP-1", lines=[{"unit_price": "15.00"}])
    w.jag("POST", "faults", {**HTML, "path": DETAIL_PATH.format(id=created["summary"]["invoiceId"]), "count": 1})
    summary = w.run()
    assert len(w.entries_for("BLIP-1")) == 1 and summary["counts"]["posted"] == 1
    assert not summary["counts"].get("unreadable") and not summary["counts"].get("quarantined")
    assert _cursor(w) == at(w.day + timedelta(days=1), 0)


def test_an_invoice_the_ids_param_names_is_quarantined_when_unreadable(sqlite_world: World) -> None:
    w = sqlite_world
    created = w.invoice(hour=9, supplier_invoice_number="IDS-1", lines=[{"unit_price": "15.00"}])
    invoice_id = created["summary"]["invoiceId"]
    w.jag("POST", "faults", {**TRUNCATED, "path": DETAIL_PATH.format(id=invoice_id), "count": None})
    try:
        summary = w.run(params={"ids": [str(invoice_id)]})
    finally:
        w.jag("DELETE", "faults")
    assert summary["counts"]["unreadable"] == 1 and w.entries_for("IDS-1") == []
    assert w.ledger(invoice_id).state == "quarantined"
    w.run(params={"ids": [str(invoice_id)]})
    assert len(w.entries_for("IDS-1")) == 1


def test_an_unreadable_list_page_still_stops_the_extract(sqlite_world: World) -> None:
    w = sqlite_world
    w.run(window=day_window(w.day - timedelta(days=1)))
    w.invoice(hour=9, supplier_invoice_number="LIST-1", lines=[{"unit_price": "15.00"}])
    w.jag("POST", "faults", {**HTML, "path": LIST_PATH, "count": None})
    try:
        with pytest.raises(Exception, match="not JSON: an HTML page"):
            w.run()
    finally:
        w.jag("DELETE", "faults")
    assert w.entries_for("LIST-1") == [] and _cursor(w) == at(w.day, 0)


def test_rate_limiting_is_not_blamed_on_one_invoice(sqlite_world: World) -> None:
    """A detail still answered 429 after the hook's waits stops the extract (the task retries): JAGGAER is limiting
    this tenant, every later invoice would be limited too — nothing is quarantined for it."""
    w = sqlite_world
    w.run(window=day_window(w.day - timedelta(days=1)))
    created = w.invoice(hour=9, supplier_invoice_number="LIMIT-1", lines=[{"unit_price": "15.00"}])
    invoice_id = created["summary"]["invoiceId"]
    w.jag("POST", "faults", {"action": "rate_limit", "path": DETAIL_PATH.format(id=invoice_id), "count": None})
    try:
        with pytest.raises(Exception, match="rate limited"):
            w.run()
    finally:
        w.jag("DELETE", "faults")
    assert w.ledger(invoice_id) is None and _cursor(w) == at(w.day, 0)
    w.run()
    assert len(w.entries_for("LIMIT-1")) == 1
