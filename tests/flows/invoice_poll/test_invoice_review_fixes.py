"""Regression tests for defects a review reproduced in the invoice poll (real HTTP against both sandboxes):

- missed scheduled runs (scheduler down, DAG paused, extract failed) left a gap nobody read or noticed;
- an amount with three decimals on a split line crashed validate for the whole division;
- a JAGGAER supplier number with FIQL characters crashed map_vendors for the whole division;
- a dry run called Exact from the unpooled extract task;
- a posted invoice withdrawn in JAGGAER was ignored silently;
- invoice headers without an ``invoiceId`` were dropped silently.
"""

from __future__ import annotations

import copy
import decimal
import importlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, DIV_SVC, TENANT, World, at, day_window

from ml_connector.flows import invoice_poll as ip
from ml_connector.flows import runtime
from ml_connector.flows.invoice_poll.common import CHECK_PREFIX, FLOW
from ml_connector.store.cursors import get_cursor
from ml_connector.store.db import session_scope

# the package exports the stage functions under the modules' names: import the modules themselves
extract_mod = importlib.import_module("ml_connector.flows.invoice_poll.extract")
validate_mod = importlib.import_module("ml_connector.flows.invoice_poll.validate")
LIST_PATH = "/j1p/api/public/ji/v1/invoices"


def _cursor(w: World) -> datetime | None:
    with session_scope(w.engine) as s:
        raw = get_cursor(s, TENANT, FLOW, extract_mod.CURSOR_SCOPE)
    return datetime.fromisoformat(raw) if raw else None


def _patch_detail(monkeypatch: pytest.MonkeyPatch, invoice_id: Any, mutate: Callable[[dict[str, Any]], None]) -> None:
    """JAGGAER's detail of one invoice, changed by ``mutate`` (what the sandbox cannot be made to serve)."""
    from ml_connector.jaggaer.hook import JaggaerHook

    real = JaggaerHook.get_invoice

    def get_invoice(self: Any, iid: Any) -> dict[str, Any]:
        detail = real(self, iid)
        if str(iid) == str(invoice_id):
            detail = copy.deepcopy(detail)
            mutate(detail)
        return detail

    monkeypatch.setattr(JaggaerHook, "get_invoice", get_invoice)


def _alerts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: sent.append((subject, body)))
    return sent


# ------------------------------------------------------------------------------------------- 4: window gaps
def test_scheduled_run_after_missed_days_reads_back_to_the_last_window_read(world: World) -> None:
    """catchup=False: after an outage only the latest run exists; it reads back to the cursor, so the invoice
    updated while nothing ran is posted (the review's ``scheduled_window_gap``)."""
    w = world
    w.run(window=day_window(w.day - timedelta(days=1)))  # the last run before the outage
    assert _cursor(w) == at(w.day, 0)
    w.invoice(hour=9, supplier_invoice_number="GAP-1", lines=[{"unit_price": "10.00"}])

    summary = w.run(window=day_window(w.day + timedelta(days=2)))  # scheduler down for two days
    assert len(w.entries_for("GAP-1")) == 1
    assert summary["counts"]["caught_up"] == 1 and not summary["problems"]
    assert any(f"read back to {at(w.day, 0).isoformat()}" in d for d in summary["details"])
    assert _cursor(w) == at(w.day + timedelta(days=3), 0)

    w.run(window=day_window(w.day + timedelta(days=3)))  # the next day: nothing read twice, nothing posted twice
    assert len(w.entries_for("GAP-1")) == 1


def test_failed_extract_keeps_the_cursor_and_the_next_run_reads_its_window(sqlite_world: World) -> None:
    """An extract that failed (JAGGAER down) and was never cleared: the next day's run reads the failed day too.
    An invoice whose detail could not be read keeps the cursor as well."""
    w = sqlite_world
    w.run(window=day_window(w.day - timedelta(days=1)))
    w.invoice(hour=9, supplier_invoice_number="GAP-DOWN", lines=[{"unit_price": "10.00"}])
    w.jag("POST", "faults", {"path": LIST_PATH, "count": None, "status": 503})
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the hook raises after its retries
            w.run()
    finally:
        w.jag("DELETE", "faults")
    assert _cursor(w) == at(w.day, 0)

    bad = w.invoice(day=w.day + timedelta(days=1), hour=9, supplier_invoice_number="GAP-NEXT")
    bad_id = bad["summary"]["invoiceId"]
    from ml_connector.errors import RejectedError
    from ml_connector.jaggaer.hook import JaggaerHook

    real = JaggaerHook.get_invoice

    def refuse(self: Any, iid: Any) -> dict[str, Any]:
        if str(iid) == str(bad_id):
            raise RejectedError(f"J1P invoice {iid}: not found", status=200)
        return real(self, iid)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(JaggaerHook, "get_invoice", refuse)
        summary = w.run(window=day_window(w.day + timedelta(days=1)))
    assert len(w.entries_for("GAP-DOWN")) == 1  # the failed day was read
    # issue 11: a detail JAGGAER refuses is quarantined against that invoice (it was counted "failed" before)
    assert summary["counts"]["unreadable"] == 1 and summary["counts"]["quarantined"] == 1
    assert _cursor(w) == at(w.day, 0)  # an invoice could not be read: not moved

    w.run(window=day_window(w.day + timedelta(days=2)))
    assert len(w.entries_for("GAP-NEXT")) == 1
    assert _cursor(w) == at(w.day + timedelta(days=3), 0)


def test_a_gap_older_than_the_catch_up_limit_is_named_and_a_date_range_run_closes_it(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    monkeypatch.setenv("MLC_INVOICE_POLL_MAX_CATCH_UP_DAYS", "2")
    alerts = _alerts(monkeypatch)
    w.run(window=day_window(w.day - timedelta(days=1)))
    w.invoice(hour=9, supplier_invoice_number="GAP-OLD", lines=[{"unit_price": "10.00"}])
    w.invoice(day=w.day + timedelta(days=4), hour=9, supplier_invoice_number="GAP-RECENT")

    late = w.day + timedelta(days=5)
    summary = w.run(window=day_window(late))
    assert w.entries_for("GAP-OLD") == []  # beyond the limit: not read ...
    assert len(w.entries_for("GAP-RECENT")) == 1  # ... but the limit's worth is
    [problem] = summary["problems"]
    assert at(w.day, 0).isoformat() in problem and "were not read" in problem
    [detail] = [d for d in summary["details"] if "were NOT read" in d]
    conf = f'{{"date_from": "{w.day.isoformat()}", "date_to": "{late.isoformat()}"}}'
    assert conf in detail and "airflow dags trigger jaggaer_invoice_poll__demo" in detail
    assert alerts and "1 problem(s)" in alerts[-1][0]
    assert _cursor(w) == at(w.day, 0)  # stays until the gap is read
    with pytest.raises(Exception, match="were not read"):
        ip.report_run(w.ctx(window=day_window(late)), summary["stages"])  # the run is red

    # the run the detail names: reads on from the cursor (the date range ends "today" in this test's clock)
    monkeypatch.setattr(extract_mod, "_now", lambda: at(late + timedelta(days=1), 1))
    summary = w.run(params={"date_from": w.day.isoformat(), "date_to": late.isoformat()}, run_type="manual")
    assert len(w.entries_for("GAP-OLD")) == 1 and not summary["problems"]
    assert _cursor(w) == at(late + timedelta(days=1), 0)
    summary = w.run(window=day_window(late + timedelta(days=1)))
    assert not summary["problems"] and "caught_up" not in summary["counts"]


def test_date_range_and_backfill_runs_never_move_the_cursor_back_or_past_a_gap(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    monkeypatch.setattr(extract_mod, "_now", lambda: at(w.day + timedelta(days=30), 0))
    w.run(window=day_window(w.day))
    assert _cursor(w) == at(w.day + timedelta(days=1), 0)

    w.run(window=day_window(w.day - timedelta(days=3)), run_type="backfill")  # older: never backwards
    assert _cursor(w) == at(w.day + timedelta(days=1), 0)
    w.run(
        params={"date_from": (w.day - timedelta(days=2)).isoformat(), "date_to": w.day.isoformat()}, run_type="manual"
    )
    assert _cursor(w) == at(w.day + timedelta(days=1), 0)

    # a later range that does not start at the cursor would hide the days before it: the cursor stays
    w.invoice(day=w.day + timedelta(days=2), hour=9, supplier_invoice_number="GAP-SKIPPED")
    later = (w.day + timedelta(days=5)).isoformat()
    w.run(params={"date_from": later, "date_to": later}, run_type="manual")
    w.run(window=day_window(w.day + timedelta(days=6)), run_type="backfill")
    assert _cursor(w) == at(w.day + timedelta(days=1), 0)
    assert w.entries_for("GAP-SKIPPED") == []

    # a backfill that reads on from the cursor moves it; the next scheduled run reads the rest back to it
    w.run(window=day_window(w.day + timedelta(days=1)), run_type="backfill")
    assert _cursor(w) == at(w.day + timedelta(days=2), 0)
    w.run(window=day_window(w.day + timedelta(days=7)))
    assert len(w.entries_for("GAP-SKIPPED")) == 1
    assert _cursor(w) == at(w.day + timedelta(days=8), 0)


def test_run_kind_reads_airflows_enum_as_well_as_strings(sqlite_world: World) -> None:
    from airflow.sdk.api.datamodels._generated import DagRunType

    from ml_connector.flows.runtime import run_type_name

    for value, kind in ((DagRunType.BACKFILL, "backfill"), ("scheduled", "scheduled"), ("DagRunType.MANUAL", "manual")):
        assert run_type_name(value) == kind
        assert sqlite_world.ctx(run_type=value).run_type == kind  # what the extract stage reads


# ------------------------------------------------------------------------------------------- 7: bad amounts
def test_three_decimal_amount_on_a_split_line_quarantines_only_that_invoice(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    bad = w.invoice(
        hour=9,
        supplier_invoice_number="DEC-1",
        lines=[
            {
                "unit_price": "30.00",
                "splits": [
                    {"cost_centre": "CC100", "gl_account": "7000", "percent": "50"},
                    {"cost_centre": "CC200", "gl_account": "7000", "percent": "50"},
                ],
            }
        ],
    )
    w.invoice(hour=10, supplier_invoice_number="DEC-OK", lines=[{"unit_price": "20.00"}])
    bad_id = bad["summary"]["invoiceId"]

    def three_decimals(detail: dict[str, Any]) -> None:
        detail["lineList"]["invoiceLine"][0]["extendedPrice"] = "30.005"
        total = detail["header"]["total"]
        total["value"] = str(decimal.Decimal(str(total["value"])) + decimal.Decimal("0.005"))

    _patch_detail(monkeypatch, bad_id, three_decimals)
    summary = w.run()
    assert len(w.entries_for("DEC-OK")) == 1 and w.entries_for("DEC-1") == []
    row = w.ledger(bad_id)
    assert row.state == "quarantined" and row.reason.startswith(CHECK_PREFIX)
    assert "net amount 30.005 has more than two decimals" in row.reason
    assert "CC100, CC200" in row.reason and "round the line to whole cents in JAGGAER" in row.reason
    assert summary["counts"]["quarantined"] == 1
    assert w.run()["counts"].get("still_quarantined") == 1  # checked again, no crash, not posted


def test_any_value_or_arithmetic_error_of_one_invoice_quarantines_it_alone(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    bad = w.invoice(hour=9, supplier_invoice_number="ERR-1", lines=[{"unit_price": "10.00"}])
    w.invoice(hour=10, supplier_invoice_number="ERR-OK", lines=[{"unit_price": "20.00"}])
    real = validate_mod.plan_entry

    def plan_entry(inv: Any, **kw: Any) -> Any:
        if inv.supplier_invoice_number == "ERR-1":
            raise decimal.InvalidOperation([decimal.InvalidOperation])
        return real(inv, **kw)

    monkeypatch.setattr(validate_mod, "plan_entry", plan_entry)
    summary = w.run()
    assert [e["YourRef"] for e in w.entries()] == ["ERR-OK"]
    row = w.ledger(bad["summary"]["invoiceId"])
    assert row.state == "quarantined" and row.reason.startswith(CHECK_PREFIX)
    assert "InvalidOperation" in row.reason and "checked again on every run" in row.reason
    assert summary["counts"]["quarantined"] == 1 and summary["counts"]["posted"] == 1

    monkeypatch.setattr(validate_mod, "plan_entry", real)  # fixed: the next run lets it through by itself
    w.run()
    assert sorted(e["YourRef"] for e in w.entries()) == ["ERR-1", "ERR-OK"]


# ------------------------------------------------------------------------------------------- 8: vendor lookups
@pytest.mark.parametrize("supplier_number", ["ACME,UK", "A;B", "A(B)", "O'Brien", 'A"B'])
def test_supplier_number_the_profile_search_cannot_express_holds_only_its_invoice(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch, supplier_number: str
) -> None:
    w = sqlite_world
    odd = w.invoice(hour=9, supplier_invoice_number="FIQL-1", lines=[{"unit_price": "10.00"}])
    w.invoice(hour=10, supplier_invoice_number="FIQL-OK", lines=[{"unit_price": "20.00"}])
    odd_id = odd["summary"]["invoiceId"]

    def odd_vendor(detail: dict[str, Any]) -> None:
        detail["header"]["supplier"].update(supplierNumber=supplier_number, id="99999", name="Odd Vendor Ltd")

    _patch_detail(monkeypatch, odd_id, odd_vendor)
    summary = w.run()
    assert len(w.entries_for("FIQL-OK")) == 1
    row = w.ledger(odd_id)
    assert row.state == "held" and "mlc mappings set vendor" in row.reason and "99999" in row.reason
    assert summary["counts"]["held"] == 1


def test_a_profile_lookup_value_error_is_no_profile(sqlite_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the hook refuses to look up (``ValueError``), the vendor goes on without a profile."""
    from ml_connector.jaggaer.hook import JaggaerHook

    def find_company(self: Any, ext_code: str) -> Any:
        raise ValueError(f"cannot express {ext_code!r}")

    monkeypatch.setattr(JaggaerHook, "find_company", find_company)
    w = sqlite_world
    odd = w.invoice(hour=9, supplier_invoice_number="PROF-1", lines=[{"unit_price": "10.00"}])
    w.invoice(hour=10, supplier_invoice_number="PROF-OK", lines=[{"unit_price": "20.00"}])
    _patch_detail(
        monkeypatch,
        odd["summary"]["invoiceId"],
        lambda d: d["header"]["supplier"].update(supplierNumber="PLAIN-7", id="99998", name="Plain Vendor Ltd"),
    )
    summary = w.run()
    assert summary["counts"]["held"] == 1 and len(w.entries_for("PROF-OK")) == 1
    assert "99998" in w.ledger(odd["summary"]["invoiceId"]).reason


# ------------------------------------------------------------------------------------------- 12: dry run pools
def test_dry_run_calls_exact_only_from_the_division_tasks(sqlite_world: World) -> None:
    w = sqlite_world
    mfg = w.invoice(hour=9, supplier_invoice_number="DRY-MFG", lines=[{"unit_price": "10.00"}])
    svc = w.invoice(
        hour=10,
        business_unit="UK-SVC",
        supplier_number="1002",
        supplier_invoice_number="DRY-SVC",
        lines=[{"unit_price": "20.00"}],
    )
    w.invoice(hour=11, business_unit="NOWHERE", supplier_invoice_number="DRY-UNROUTED")
    ctx = w.ctx(params={"dry_run": True, "date_from": w.day.isoformat(), "date_to": w.day.isoformat()})

    extracted = ip.extract(ctx)
    assert w.exact_calls() == 0  # the unpooled extract task reads JAGGAER only
    assert extracted.counts["would_quarantine"] == 1 and "would_post" not in extracted.counts

    results: dict[str, Any] = {"extract": extracted.to_dict()}
    for division, invoice in ((DIV_MFG, mfg), (DIV_SVC, svc)):
        w.exact.clear_calls()
        dctx = ctx.for_division(division)
        assert ip.map_vendors(dctx).counts == {}
        checked = ip.validate(dctx)  # the pooled division task does the division's preview
        log = w.exact.calls()["log"]
        assert log and all(f"/{division}/" in c["path"] for c in log if "/api/v1/" in c["path"]), log
        assert all(c["method"] == "GET" for c in log)
        assert checked["counts"] == {"would_post": 1}
        assert checked["ids"]["would_post"] == [invoice["summary"]["invoiceNumber"]]
        assert "master" not in checked
        assert ip.post(dctx, checked.get("master")).counts == {}
        results[f"validate_{division}"] = checked
    summary = ip.report_run(ctx, results, raise_on_failure=False)
    assert summary["counts"]["would_post"] == 2 and summary["counts"]["would_quarantine"] == 1
    assert w.entries() == [] and w.states() == {} and _cursor(w) is None


def test_dry_run_of_ids_previews_each_invoice_once(sqlite_world: World) -> None:
    w = sqlite_world
    one = w.invoice(hour=9, supplier_invoice_number="DRY-ID-1", lines=[{"unit_price": "10.00"}])
    two = w.invoice(hour=10, business_unit="UK-SVC", supplier_number="1002", supplier_invoice_number="DRY-ID-2")
    ids = [str(one["summary"]["invoiceId"]), str(two["summary"]["invoiceId"])]
    summary = w.run(params={"dry_run": True, "ids": ids})
    assert summary["counts"] == {"would_post": 2}
    assert w.entries() == [] and w.states() == {}


# ------------------------------------------------------------------------------------------- 13: withdrawn
def test_posted_invoice_withdrawn_in_jaggaer_is_audited_reported_and_alerted_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    alerts = _alerts(monkeypatch)
    invoice = w.invoice(hour=9, supplier_invoice_number="WD-1", lines=[{"unit_price": "10.00"}])
    iid = invoice["summary"]["invoiceId"]
    w.run()
    posted = w.ledger(iid)
    assert posted.state == "posted" and posted.target_ref

    w.edit(iid, workflow_status="Pending", last_update=f"{w.day.isoformat()}T15:00:00+00:00")
    summary = w.run()
    assert summary["counts"]["withdrawn_after_post"] == 1 and not summary["problems"]
    number = posted.source_ref
    [detail] = [d for d in summary["details"] if "withdrawn in JAGGAER" in d]
    assert f"invoice {number} (id {iid}) was posted to Exact division {DIV_MFG} as entry {posted.target_ref}" in detail
    assert "reverse it in Exact if needed" in detail
    [row] = [r for r in w.audit(iid) if r.action == "withdrawn_after_post"]
    assert row.outcome == "posted" and row.target_ref == posted.target_ref and row.run_id == summary["run_id"]
    assert any("withdrawn" in subject and "reverse it in Exact" in body for subject, body in alerts)
    assert w.ledger(iid).state == "posted" and len(w.entries_for("WD-1")) == 1

    alerts.clear()
    again = w.run()  # the same JAGGAER version: reported once
    again_ids = w.run(params={"ids": [str(iid)]})
    assert "withdrawn_after_post" not in again["counts"] and "withdrawn_after_post" not in again_ids["counts"]
    assert [r.action for r in w.audit(iid)].count("withdrawn_after_post") == 1
    assert not [a for a in alerts if "withdrawn" in a[0]]


def test_posted_invoice_whose_detail_shows_it_withdrawn_is_reported(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list still says approved, the detail (read because the version changed) says withdrawn."""
    w = sqlite_world
    invoice = w.invoice(hour=9, supplier_invoice_number="WD-2", lines=[{"unit_price": "10.00"}])
    iid = invoice["summary"]["invoiceId"]
    w.run()
    w.edit(iid, last_update=f"{w.day.isoformat()}T16:00:00+00:00")
    _patch_detail(monkeypatch, iid, lambda d: d["header"].update(workflowStatus="Voided"))
    summary = w.run()
    assert summary["counts"]["withdrawn_after_post"] == 1
    assert [r.action for r in w.audit(iid)].count("withdrawn_after_post") == 1
    assert "withdrawn_after_post" not in w.run()["counts"]
    assert len(w.entries_for("WD-2")) == 1


# ------------------------------------------------------------------------------------------- 18b: no invoiceId
def test_listed_headers_without_invoice_id_are_counted_and_named(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_connector.jaggaer.hook import JaggaerHook

    w = sqlite_world
    w.invoice(hour=9, supplier_invoice_number="NOID-OK", lines=[{"unit_price": "10.00"}])
    real = JaggaerHook.iter_invoices

    def iter_invoices(self: Any, start: datetime, end: datetime) -> Any:
        yield from real(self, start, end)
        yield {"invoiceNumber": "I-NOID", "lastUpdate": at(w.day, 10).isoformat(), "workflowStatus": "Completed"}

    monkeypatch.setattr(JaggaerHook, "iter_invoices", iter_invoices)
    summary = w.run()
    assert len(w.entries_for("NOID-OK")) == 1
    assert summary["counts"]["missing_invoice_id"] == 1
    [problem] = summary["problems"]
    assert "without an invoiceId" in problem and "I-NOID" in problem
    assert any("I-NOID" in d and "cannot be read or posted" in d for d in summary["details"])
    with pytest.raises(Exception, match="without an invoiceId"):
        ip.report_run(w.ctx(), summary["stages"])
