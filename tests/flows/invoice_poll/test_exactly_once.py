"""Exactly once, whatever happens: re-runs, clears, backfills, edits after posting, 429 bursts, a response lost after
Exact committed, a worker killed mid-post. Plus the API-call budget. Real HTTP against both sandboxes."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, World, day_window

from ml_connector.flows import invoice_poll as ip
from ml_connector.store import ledger

POST_ENTRY = "POST /api/v1/{division}/purchaseentry/PurchaseEntries"


def _posts(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/PurchaseEntries")]


def _one_each(w: World, refs: list[str]) -> None:
    for ref in refs:
        assert len(w.entries_for(ref)) == 1, ref


def test_reruns_clears_and_backfills_post_each_invoice_once(world: World) -> None:
    w = world
    w.invoice(hour=1, supplier_invoice_number="RR-1", lines=[{"unit_price": "11.00"}])
    w.invoice(hour=23, supplier_invoice_number="RR-2", lines=[{"unit_price": "22.00"}], business_unit="UK-SVC")
    first = w.run()
    assert first["counts"]["posted"] == 2

    w.clear_calls()
    again = w.run()  # the same run again (a cleared task, a retry)
    assert again["counts"] == {"unchanged": 2}
    assert w.exact_calls() == 0  # nothing to do: no master data read, no search, no post
    assert w.jag_calls() == 1  # one list page; the details are known (same lastUpdate)

    w.run(window=day_window(w.day + timedelta(days=1)))  # the next day: its 6 h overlap re-reads RR-2
    w.run(params={"date_from": (w.day - timedelta(days=1)).isoformat(), "date_to": w.day.isoformat()})
    w.run(run_type="backfill")  # a backfill over the same day
    _one_each(w, ["RR-1", "RR-2"])
    assert len(w.entries()) == 2 and len(_posts(w)) == 0


def test_an_invoice_edited_after_posting_is_not_posted_twice(world: World) -> None:
    w = world
    invoice = w.invoice(hour=8, supplier_invoice_number="ED-1", lines=[{"unit_price": "100.00"}])
    w.run()
    invoice_id = invoice["summary"]["invoiceId"]
    w.edit(invoice_id, lines=[{"unit_price": "150.00"}], last_update=f"{w.day.isoformat()}T16:00:00+00:00")
    summary = w.run()
    assert summary["counts"]["changed_after_post"] == 1
    assert any("changed in JAGGAER after it was posted" in d for d in summary["details"])
    [entry] = w.entries_for("ED-1")
    assert entry["AmountFC"] == 120.0  # the amount posted first
    assert w.ledger(invoice_id).state == "posted"
    assert [r.action for r in w.audit(invoice_id)].count("changed_after_post") == 1
    w.run()
    assert len(w.entries_for("ED-1")) == 1 and len(_posts(w)) == 1


def test_a_burst_of_429s_delays_but_posts_once(sqlite_world: World) -> None:
    w = sqlite_world
    w.exact.settings(minute_window_s=1)  # each 429 waits for the next (1 s) minute
    for n in range(3):
        w.invoice(hour=9 + n, supplier_invoice_number=f"RL-{n}", lines=[{"unit_price": "10.00"}])
    w.exact.fault(method="POST", path="PurchaseEntries", action="rate_limit", count=3)
    summary = w.run()
    assert summary["counts"]["posted"] == 3
    _one_each(w, ["RL-0", "RL-1", "RL-2"])
    statuses = Counter(c["status"] for c in _posts(w))
    assert statuses == {429: 3, 201: 3}


def test_a_response_lost_after_exact_committed_is_found_not_posted_again(world: World) -> None:
    w = world
    lost = w.invoice(hour=9, supplier_invoice_number="DROP-1", lines=[{"unit_price": "10.00"}])
    w.invoice(hour=10, supplier_invoice_number="DROP-2", lines=[{"unit_price": "20.00"}])
    w.exact.fault(method="POST", path="PurchaseEntries", action="drop_after_commit", count=1)
    summary = w.run()
    assert summary["counts"]["posted"] == 2 and not summary["problems"]
    _one_each(w, ["DROP-1", "DROP-2"])
    assert len(_posts(w)) == 2  # each invoice was sent once
    [entry] = w.entries_for("DROP-1")
    row = w.ledger(lost["summary"]["invoiceId"])
    assert (row.state, row.target_id, row.target_ref) == ("posted", entry["EntryID"], str(entry["EntryNumber"]))
    outcomes = [(r.method, r.outcome) for r in w.audit(lost["summary"]["invoiceId"]) if r.method]
    assert outcomes == [("POST", "ambiguous")]
    assert "found in Exact" in (row.reason or "")


class Killed(BaseException):
    """The worker dies (SIGKILL: nothing after this point runs)."""


def _die_after_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact commits the entry, then the worker dies before the ledger records it."""
    real = ledger.finish

    def finish(engine: Any, entry_id: int, state: str, **kw: Any) -> None:
        if state == "posted":
            raise Killed()
        real(engine, entry_id, state, **kw)

    monkeypatch.setattr(ledger, "finish", finish)


def _die_before_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker dies after ``posting`` was committed and before the POST left."""
    from ml_connector.exact.hook import ExactOnlineHook

    def post(self: Any, *args: Any, **kw: Any) -> Any:
        raise Killed()

    monkeypatch.setattr(ExactOnlineHook, "post", post)


@pytest.mark.parametrize("committed", [True, False], ids=["exact-committed", "nothing-sent"])
def test_a_worker_killed_mid_post_leaves_exactly_one_entry(
    world: World, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    w = world
    invoice = w.invoice(hour=9, supplier_invoice_number="KILL-1", lines=[{"unit_price": "10.00"}])
    with monkeypatch.context() as m:
        (_die_after_post if committed else _die_before_post)(m)
        with pytest.raises(Killed):
            w.run()
    assert w.ledger(invoice["summary"]["invoiceId"]).state == "posting"
    assert len(w.entries_for("KILL-1")) == (1 if committed else 0)

    w.clear_calls()
    summary = w.run()  # the retry / the next run
    assert summary["counts"]["posted"] == 1
    assert len(w.entries_for("KILL-1")) == 1
    searches = [c for c in w.exact.calls()["log"] if c["method"] == "GET" and "PurchaseEntries" in c["path"]]
    assert len(searches) == 1  # looked before sending anything
    assert len(_posts(w)) == (0 if committed else 1)
    row = w.ledger(invoice["summary"]["invoiceId"])
    assert row.state == "posted" and row.target_id == w.entries_for("KILL-1")[0]["EntryID"]
    posts = [r for r in w.audit(invoice["summary"]["invoiceId"]) if r.method == "POST"]
    if not committed:  # the one POST that left is the ledger's second attempt
        assert [(r.attempt, r.http_status) for r in posts] == [(2, 201)]


def test_api_call_budget_and_no_429_at_60_calls_a_minute(sqlite_world: World) -> None:
    """N invoices on P list pages: JAGGAER ≤ P + N + 2 calls, Exact ≤ N + ⌈E/60⌉ + master-data pages + 3 (E: the
    division's purchase entries the look-before-post reads), no 429 although one division gets more calls than Exact
    allows in a (compressed, 3 s) minute."""
    w = sqlite_world
    n, page_size = 64, 20
    w.jag("POST", "settings", {"page_size": page_size})
    suppliers = ["1001", "1002", "1003", "1004"]
    for i in range(n):
        w.invoice(
            hour=1 + i // 4,
            minute=i % 60,
            supplier_number=suppliers[i % 4],
            supplier_invoice_number=f"BUD-{i}",
            lines=[{"unit_price": f"{10 + i}.00"}],
        )
    w.clear_calls()
    before = w.entries(DIV_MFG)
    summary = w.run()
    assert summary["counts"]["posted"] == n

    # E: the entries the look-up had to read (the run's suppliers, from a month before the invoice date)
    run_suppliers = {e["Supplier"] for e in w.entries(DIV_MFG) if str(e.get("YourRef", "")).startswith("BUD-")}
    since = datetime.combine(w.day - timedelta(days=31), time(0), tzinfo=UTC).timestamp() * 1000  # epoch ms
    e_read = len([e for e in before if e["Supplier"] in run_suppliers and e["EntryDate"] >= since])
    pages = math.ceil(n / page_size)
    jag = w.jag("GET", "calls")["by_endpoint"]
    assert jag.get("GET /j1p/api/public/ji/v1/invoices") == pages
    assert sum(jag.values()) <= pages + n + 2

    exact = w.exact.calls()
    by_endpoint = exact["by_endpoint"]
    master_pages = sum(v for k, v in by_endpoint.items() if k.startswith("GET ") and "PurchaseEntries" not in k)
    assert master_pages == 5  # suppliers, GL accounts, cost centres, VAT codes, journals: one page each
    assert by_endpoint[POST_ENTRY] == n
    looks = by_endpoint.get("GET /api/v1/{division}/purchaseentry/PurchaseEntries", 0)
    assert looks == max(1, math.ceil(e_read / 60))  # one batched look-up, paged
    limit = n + math.ceil(e_read / 60) + master_pages + 3
    assert exact["total"] <= limit
    assert not [c for c in exact["log"] if c["status"] == 429]
    print(
        f"budget: N={n} P={pages}: JAGGAER {sum(jag.values())} calls (limit {pages + n + 2}) {jag}; "
        f"Exact {exact['total']} calls (limit {limit}, master-data pages {master_pages}, look-up reads {looks}, "
        f"E={e_read})"
    )

    w.clear_calls()
    steady = w.run()
    assert steady["counts"] == {"unchanged": n}
    assert w.jag_calls() == pages and w.exact_calls() == 0


def test_stage_functions_can_be_replayed_one_by_one(sqlite_world: World) -> None:
    """Clearing one task (e.g. post) replays only what is still open; a stage run twice changes nothing."""
    w = sqlite_world
    w.invoice(hour=9, supplier_invoice_number="ST-1", lines=[{"unit_price": "10.00"}])
    ctx = w.ctx()
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    checked = ip.validate(dctx)
    assert ip.post(dctx, checked["master"]).counts["posted"] == 1
    assert ip.post(dctx, checked["master"]).counts.get("posted", 0) == 0
    assert ip.post(dctx, None).counts.get("posted", 0) == 0
    assert len(w.entries_for("ST-1")) == 1
