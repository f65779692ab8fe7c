"""The post stage under the failures a review reproduced: a record left ``posting`` whose new version cannot be read,
a write started and never recorded, a vendor relinked or an invoice moved between an ambiguous write and its search,
an invoice withdrawn while post works, a division Exact refuses as a whole, hand-keyed entries with the same
``YourRef``. Real HTTP against both sandboxes."""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import pytest
from invoice_poll_support import DIV_MFG, DIV_SVC, World
from sqlalchemy import select

from ml_connector.errors import AmbiguousWriteError
from ml_connector.flows import invoice_poll as ip
from ml_connector.flows import runtime
from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import LedgerEntry, VendorMap

# the module (the package exports the ``post`` function under the same name)
post_mod = importlib.import_module("ml_connector.flows.invoice_poll.post")
EXACT_ERROR = {"error": {"code": "", "message": {"lang": "", "value": "Forbidden"}}}


class Killed(BaseException):
    """The worker dies (SIGKILL: nothing after this point runs)."""


def _posts(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/PurchaseEntries")]


def _searches(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "GET" and c["path"].endswith("/PurchaseEntries")]


def _kill_mid_post(w: World, monkeypatch: pytest.MonkeyPatch, *, committed: bool) -> None:
    """Run once; the worker dies after Exact committed the entry (``committed``) or before the POST left."""
    from ml_connector.exact.hook import ExactOnlineHook

    with monkeypatch.context() as m:
        if committed:
            real = ledger.finish

            def finish(engine: Any, entry_id: int, state: str, **kw: Any) -> None:
                if state == "posted":
                    raise Killed()
                real(engine, entry_id, state, **kw)

            m.setattr(ledger, "finish", finish)
        else:

            def dead_post(self: Any, *args: Any, **kw: Any) -> Any:
                raise Killed()

            m.setattr(ExactOnlineHook, "post", dead_post)
        with pytest.raises(Killed):
            w.run()


def _serve_detail(monkeypatch: pytest.MonkeyPatch, invoice_id: Any, mutate: Callable[[dict[str, Any]], None]) -> None:
    """JAGGAER returns ``invoice_id``'s detail changed by ``mutate`` (e.g. a version that cannot be read)."""
    from ml_connector.jaggaer.hook import JaggaerHook

    real = JaggaerHook.get_invoice

    def get_invoice(self: Any, iid: Any) -> Any:
        detail = real(self, iid)
        if str(iid) == str(invoice_id):
            detail = copy.deepcopy(detail)
            mutate(detail)
        return detail

    monkeypatch.setattr(JaggaerHook, "get_invoice", get_invoice)


def _unreadable(detail: dict[str, Any]) -> None:
    detail["header"]["total"]["value"] = "n/a"


# -- 1: an entry in posting never leaves it without a search ---------------------------------------------------------
@pytest.mark.parametrize("committed", [True, False], ids=["exact-committed", "nothing-sent"])
def test_a_posting_invoice_whose_new_version_cannot_be_read_is_looked_up_never_parked(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="DUP-1", lines=[{"unit_price": "10.00"}])
    iid = inv["summary"]["invoiceId"]
    _kill_mid_post(w, monkeypatch, committed=committed)
    assert w.ledger(iid).state == "posting"

    # JAGGAER now serves a version that cannot be read (its lastUpdate moved)
    w.edit(iid, last_update=f"{w.day.isoformat()}T11:00:00+00:00")
    w.clear_calls()
    with monkeypatch.context() as m:
        _serve_detail(m, iid, _unreadable)
        second = w.run()
    assert len(_searches(w)) == 1 and _posts(w) == []  # looked it up, sent nothing
    row = w.ledger(iid)
    if committed:
        assert row.state == "posted" and row.target_id == w.entries_for("DUP-1")[0]["EntryID"]
    else:
        # not in Exact, and this version cannot be posted: it stays posting (never quarantined), and the run is red
        assert row.state == "posting"
        assert second["counts"]["failed"] == 1
        assert any("left in posting" in d and "total" in d for d in second["details"])

    # JAGGAER fixes the invoice
    w.edit(iid, last_update=f"{w.day.isoformat()}T12:00:00+00:00")
    w.clear_calls()
    w.run()
    assert len(w.entries_for("DUP-1")) == 1
    assert len(_posts(w)) == (0 if committed else 1)
    assert w.ledger(iid).state == "posted"


def test_a_write_started_and_never_recorded_is_looked_up_before_any_resend(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backstop: whatever moved an entry out of ``posting`` without a search, ``attempts > 0`` and no posted hash
    mean "maybe in Exact": the post stage looks before sending."""
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="BACK-1", lines=[{"unit_price": "10.00"}])
    iid = inv["summary"]["invoiceId"]
    _kill_mid_post(w, monkeypatch, committed=True)
    entry = w.ledger(iid)
    ledger.finish(w.engine, entry.id, "quarantined", reason="data: (a path that skipped the search)")
    w.edit(iid, last_update=f"{w.day.isoformat()}T11:00:00+00:00")  # a change: stage() makes it pending
    w.clear_calls()
    w.run()
    assert len(_searches(w)) == 1 and _posts(w) == []
    assert len(w.entries_for("BACK-1")) == 1
    assert w.ledger(iid).state == "posted"


def test_stage_leaves_a_posting_entry_alone(sqlite_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="STAY-1", lines=[{"unit_price": "10.00"}])
    iid = inv["summary"]["invoiceId"]
    _kill_mid_post(w, monkeypatch, committed=False)
    before = w.ledger(iid)
    w.edit(iid, last_update=f"{w.day.isoformat()}T11:00:00+00:00", lines=[{"unit_price": "12.00"}])
    ip.extract(w.ctx())
    after = w.ledger(iid)
    assert after.state == "posting" and after.staged_hash != before.staged_hash
    assert after.attempt_target == before.attempt_target and after.attempt_division == DIV_MFG


# -- 15: the search looks where the first write went -----------------------------------------------------------------
def _supplier_guid(w: World, code: str) -> str:
    hook = w.ctx().exact_hook()
    rows = hook.iter_collection(DIV_MFG, "crm/Accounts", select="ID,Code", filter="IsSupplier eq true")
    return next(str(r["ID"]) for r in rows if str(r.get("Code") or "").strip() == code)


@pytest.mark.parametrize("change", ["vendor-relinked", "moved-division"])
def test_the_search_after_an_unknown_outcome_looks_where_the_write_went(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="WHERE-1", lines=[{"unit_price": "10.00"}])
    iid = inv["summary"]["invoiceId"]
    _kill_mid_post(w, monkeypatch, committed=True)
    [entry] = w.entries_for("WHERE-1")
    kept = w.ledger(iid)
    assert kept.attempt_division == DIV_MFG and kept.attempt_target["supplier"] == entry["Supplier"]

    if change == "vendor-relinked":
        # an admin relinks the JAGGAER vendor to another Exact supplier before the next run
        other = _supplier_guid(w, "1002")
        with session_scope(w.engine) as s:
            row = s.scalar(select(VendorMap).where(VendorMap.exact_account_id == entry["Supplier"]))
            row.exact_account_id = other
            row.exact_code = "1002"
    else:
        # the invoice is routed to the other division meanwhile
        w.edit(iid, business_unit="UK-SVC", last_update=f"{w.day.isoformat()}T11:00:00+00:00")
    w.clear_calls()
    w.run()
    assert _posts(w) == []
    assert len(w.entries_for("WHERE-1")) == 1
    row = w.ledger(iid)
    assert row.state == "posted" and row.target_id == entry["EntryID"]
    assert row.attempt_target is None  # resolved
    if change == "moved-division":
        assert row.division == DIV_SVC
        assert all(f"/{DIV_MFG}/" in c["path"] for c in _searches(w))


# -- 6: an invoice withdrawn while post works ------------------------------------------------------------------------
def test_an_invoice_withdrawn_while_post_works_is_not_posted(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    a = w.invoice(hour=9, supplier_invoice_number="RACE-1", lines=[{"unit_price": "10.00"}])
    w.invoice(hour=10, supplier_invoice_number="RACE-2", lines=[{"unit_price": "20.00"}])
    aid = a["summary"]["invoiceId"]
    ctx = w.ctx(run_id="run-A")
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    checked = ip.validate(dctx)
    real = post_mod.Poster.post_one
    fired: list[str] = []

    def post_one(self: Any, entry_id: int, *read_ahead: Any) -> None:  # (the invoice as read with its chunk)
        if not fired:
            # meanwhile JAGGAER withdraws the approval and a backfill run's (unpooled) extract cancels the invoice
            w.edit(aid, workflow_status="Pending", last_update=f"{w.day.isoformat()}T13:00:00+00:00")
            fired.append(ip.extract(w.ctx(run_id="backfill-B", run_type="backfill")).to_dict()["counts"])
        real(self, entry_id, *read_ahead)

    monkeypatch.setattr(post_mod.Poster, "post_one", post_one)
    out = ip.post(dctx, checked.get("master"))
    assert [counts["cancelled"] for counts in fired] == [1]
    assert w.ledger(aid).state == "cancelled"
    assert w.entries_for("RACE-1") == [] and len(w.entries_for("RACE-2")) == 1
    assert out.counts["posted"] == 1


# -- 9: a division Exact refuses as a whole --------------------------------------------------------------------------
def _alerts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: sent.append(subject))
    return sent


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 403, "headers": {"Reason": "DivisionBlocked"}, "body": EXACT_ERROR},
        {"status": 403, "headers": {"Reason": "NoDivisionAccess"}},
        {"status": 404, "body": {"error": {"code": "", "message": {"lang": "", "value": "Not found"}}}},
    ],
    ids=["403-DivisionBlocked", "403-NoDivisionAccess", "404"],
)
def test_a_division_wide_refusal_stops_the_batch_after_one_error(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any]
) -> None:
    w = sqlite_world
    for n in range(12):
        w.invoice(hour=1 + n, supplier_invoice_number=f"F403-{n}", lines=[{"unit_price": "10.00"}])
    sent = _alerts(monkeypatch)
    w.exact.fault(method="POST", path="PurchaseEntries", action="status", count=None, **fault)
    w.clear_calls()
    first = w.run(run_id="run-blocked")
    errors = [c for c in _posts(w) if c["status"] >= 400]
    assert len(errors) == 1 and len(_posts(w)) == 1
    post_counts = first["stages"][f"post_{DIV_MFG}"]["counts"]
    assert post_counts == {"failed": 2, "not_sent": 11}  # the refused invoice and the division
    # the refused invoice carries Exact's answer; the rest wait, nothing lost
    assert w.states() == {"failed": 1, "pending": 11}
    assert len([s for s in sent if "posting stopped" in s]) == 1
    assert first["counts"]["failed"] == 2  # the run is red

    # the breaker counts the current try only (behaviour changed for issue 15: a cleared post task must replay):
    # a new try of the post task (same run) with the cause still there is refused once more and stops again
    w.clear_calls()
    retry = ip.post(w.ctx(run_id="run-blocked").for_division(DIV_MFG))
    assert len(_posts(w)) == 1 and retry.counts == {"failed": 2, "not_sent": 10}
    assert w.states() == {"failed": 2, "pending": 10}

    # the next run sends one more (still refused): one error answer per try at most
    w.clear_calls()
    w.run()
    assert len(_posts(w)) == 1 and w.states() == {"failed": 3, "pending": 9}

    # Exact lets the division in again: a new try of the same run's post task (a clear) posts the waiting ones,
    # once; the refused ones wait for a person (their reason says what to run)
    w.exact.clear_faults()
    w.clear_calls()
    healed = ip.post(w.ctx(run_id="run-blocked").for_division(DIV_MFG))
    assert healed.counts == {"posted": 9} and len(_posts(w)) == 9
    assert w.states() == {"failed": 3, "posted": 9}
    assert ledger.requeue(w.engine, "demo", ip.FLOW, [e.source_id for e in _failed(w)]) == 3
    w.run()
    assert all(len(w.entries_for(f"F403-{n}")) == 1 for n in range(12))


def _failed(w: World) -> list[LedgerEntry]:
    with session_scope(w.engine) as s:
        rows = ledger.entries(s, "demo", ip.FLOW, states=("failed",))
        for row in rows:
            s.expunge(row)
        return rows


def test_error_answers_per_division_and_run_are_capped(sqlite_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = sqlite_world
    for n in range(5):
        w.invoice(hour=1 + n, supplier_invoice_number=f"CAP-{n}", lines=[{"unit_price": "10.00"}])
    sent = _alerts(monkeypatch)
    body = {"error": {"code": "", "message": {"lang": "", "value": "Closed period"}}}
    w.exact.fault(method="POST", path="PurchaseEntries", action="status", status=500, body=body, count=None)
    w.clear_calls()
    summary = w.run(run_id="run-capped")
    assert len(_posts(w)) == post_mod.MAX_ERRORS_PER_RUN == 3
    assert w.states() == {"quarantined": 3, "pending": 2}
    assert summary["stages"][f"post_{DIV_MFG}"]["counts"] == {"quarantined": 3, "failed": 1, "not_sent": 2}
    assert len([s for s in sent if "posting stopped" in s]) == 1

    # the fault is gone: a new try of the same run's post task (what clearing it runs) posts the two left open
    w.exact.clear_faults()
    w.clear_calls()
    replay = ip.post(w.ctx(run_id="run-capped").for_division(DIV_MFG))
    assert replay.counts == {"posted": 2} and len(_posts(w)) == 2
    assert w.states() == {"quarantined": 3, "posted": 2}


# -- 14: a hand-keyed entry with the same YourRef --------------------------------------------------------------------
def _hand_keyed_then_lost(monkeypatch: pytest.MonkeyPatch, *, factor: float) -> list[int]:
    """The first POST never reaches Exact (connection lost), but someone keyed the invoice by hand: an entry with the
    same YourRef and supplier, no JAGGAER reference, amounts times ``factor``."""
    from ml_connector.exact.hook import ExactOnlineHook

    real = ExactOnlineHook.post
    calls: list[int] = []

    def post(self: Any, division: int, path: str, body: dict[str, Any], *, audit_ctx: Any) -> Any:
        calls.append(division)
        if len(calls) > 1:
            return real(self, division, path, body, audit_ctx=audit_ctx)
        by_hand = copy.deepcopy(body)
        by_hand.pop("ExternalLinkReference", None)
        by_hand["Description"] = "keyed by accounts payable"
        for line in by_hand["PurchaseEntryLines"]:
            line["AmountFC"] = round(line["AmountFC"] * factor, 2)
            line["VATAmountFC"] = round(line["VATAmountFC"] * factor, 2)
        real(self, division, path, by_hand, audit_ctx=dataclasses.replace(audit_ctx, action="test_by_hand"))
        raise AmbiguousWriteError("POST purchaseentry/PurchaseEntries: ConnectionError after sending")

    monkeypatch.setattr(ExactOnlineHook, "post", post)
    return calls


def test_a_hand_keyed_entry_with_the_same_amount_and_date_counts_as_posted(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="HAND-1", lines=[{"unit_price": "10.00"}])
    calls = _hand_keyed_then_lost(monkeypatch, factor=1.0)
    w.run()
    [entry] = w.entries_for("HAND-1")
    assert calls == [DIV_MFG]  # our entry was not sent again
    row = w.ledger(inv["summary"]["invoiceId"])
    assert row.state == "posted" and row.target_id == entry["EntryID"] and "keyed by hand" in row.reason


def test_a_hand_keyed_entry_with_another_amount_asks_a_person(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="HAND-2", lines=[{"unit_price": "10.00"}])
    calls = _hand_keyed_then_lost(monkeypatch, factor=2.0)
    summary = w.run()
    assert calls == [DIV_MFG]  # never posted over it
    [entry] = w.entries_for("HAND-2")
    assert entry["ExternalLinkReference"] in (None, "")
    row = w.ledger(inv["summary"]["invoiceId"])
    assert row.state == "failed" and row.target_id is None  # not silently marked posted
    assert str(entry["EntryNumber"]) in row.reason and "check in Exact" in row.reason
    assert summary["counts"]["failed"] == 1
    w.run()  # failed is not picked up again
    assert calls == [DIV_MFG] and len(w.entries_for("HAND-2")) == 1


class _Hook:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.filters: list[str] = []

    def iter_collection(self, division: int, path: str, *, select: str, filter: str) -> Any:
        self.filters.append(filter)
        return [r for r in self.rows if f"'{r['YourRef']}'" in filter]


def test_find_entry_prefers_our_reference_and_checks_hand_keyed_ones() -> None:
    supplier = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    hand = {"EntryID": "h", "EntryNumber": 1, "YourRef": "R1", "AmountFC": 120.0, "EntryDate": "/Date(1795651200000)/"}
    other = {**hand, "EntryID": "o", "ExternalLinkReference": "JAGGAER:999"}  # another JAGGAER invoice
    ours_old_ref = {**hand, "EntryID": "ours", "YourRef": "R0", "Description": "JAGGAER I00042 Acme Ltd"}
    find = post_mod.find_entry
    day = "2026-11-26"  # 1795651200000 ms = 2026-11-26T00:00Z
    kw: dict[str, Any] = {"invoice_number": "I00042", "amount": "120.00", "entry_date": day}

    # our own entry (by description) under an older YourRef wins over a matching hand-keyed one
    match = find(_Hook([hand, other, ours_old_ref]), DIV_MFG, ["R1", "R0"], supplier, "JAGGAER:42", **kw)
    assert match is not None and (match.kind, match.row["EntryID"]) == ("ours", "ours")
    # a hand-keyed one: same amount and date (Exact may store midnight in its own zone) -> by hand
    amsterdam = {**hand, "EntryDate": "/Date(1795647600000)/"}  # 2026-11-25T23:00Z
    match = find(_Hook([amsterdam, other]), DIV_MFG, ["R1"], supplier, "JAGGAER:42", **kw)
    assert match is not None and match.kind == "by_hand"
    # other amount, other date, or nothing to compare with -> unclear
    for changed in ({"amount": "119.99"}, {"entry_date": "2026-11-20"}, {"amount": None}):
        match = find(_Hook([hand]), DIV_MFG, ["R1"], supplier, "JAGGAER:42", **{**kw, **changed})
        assert match is not None and match.kind == "unclear" and "keyed by hand" in match.note
    # another invoice's entry is not ours, and not a hand-keyed one either
    assert find(_Hook([other]), DIV_MFG, ["R1"], supplier, "JAGGAER:42", **kw) is None


def test_begin_post_refuses_an_entry_that_is_no_longer_pending(sqlite_world: World) -> None:
    w = sqlite_world
    inv = w.invoice(hour=9, supplier_invoice_number="REF-1", lines=[{"unit_price": "10.00"}])
    ip.extract(w.ctx())
    entry = w.ledger(inv["summary"]["invoiceId"])
    with session_scope(w.engine) as s:
        ledger.transition(s, s.get(LedgerEntry, entry.id), "cancelled", reason="withdrawn")
    with pytest.raises(ledger.StateChanged, match="cancelled"):
        ledger.begin_post(w.engine, entry.id, "run-x")
    after = w.ledger(inv["summary"]["invoiceId"])
    assert (after.state, after.attempts) == ("cancelled", 0)
