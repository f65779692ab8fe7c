"""The posting lease in the store (SQLite and PostgreSQL): taking it, a bounded wait, the heartbeat, fencing in the
transaction that marks ``posting``, live claims never taken over, a stale stage never overwriting the taker."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from ml_connector.store import db, ledger
from ml_connector.store.lease import LeaseBusy, LeaseLost, LeaseOwner, PostingLease

FLOW = "invoice_poll"


def _lease(engine: Any, name: str, *, ttl: float, wait: float = 0.2, scope: str = "111111") -> PostingLease:
    owner = LeaseOwner(dag_id="dag", run_id=name, task_id="division_111111.post", try_number=1, host="h", pid=1)
    return PostingLease(engine, "demo", FLOW, scope, owner, ttl=ttl, wait=wait)


def _entry(engine: Any, source_id: str = "inv-1") -> int:
    with db.session_scope(engine) as s:
        ledger.stage(
            s, tenant="demo", flow=FLOW, source_id=source_id, payload={"v": 1}, division=111111, repost_changed=False
        )
        return ledger.get_entry(s, "demo", FLOW, source_id).id


def _state(engine: Any, entry_id: int) -> Any:
    with db.session_scope(engine) as s:
        entry = s.get(ledger.LedgerEntry, entry_id)
        s.expunge(entry)
        return entry


def test_a_live_lease_is_not_taken_and_the_second_stage_gives_up_after_its_wait(engine: Any) -> None:
    first = _lease(engine, "run-A", ttl=30)
    first.acquire()
    started = time.monotonic()
    with pytest.raises(LeaseBusy) as busy:
        _lease(engine, "run-B", ttl=30, wait=0.3).acquire()
    assert 0.3 <= time.monotonic() - started < 5
    assert "run-A" in str(busy.value) and "ended without sending" in str(busy.value)
    first.release()  # given back: the next stage need not wait for the expiry
    second = _lease(engine, "run-B", ttl=30, wait=0.3)
    second.acquire()
    assert second.generation == (first.generation or 0) + 1


def test_the_heartbeat_keeps_a_working_stage_s_lease_and_an_expired_one_is_taken_over(engine: Any) -> None:
    with _lease(engine, "run-A", ttl=0.5):
        time.sleep(1.2)  # more than twice its lifetime: only the heartbeat keeps it
        with pytest.raises(LeaseBusy):
            _lease(engine, "run-B", ttl=0.5, wait=0.2).acquire()
    frozen = _lease(engine, "run-C", ttl=0.3)
    frozen.acquire()  # no heartbeat: as if the process were frozen
    time.sleep(0.5)
    taker = _lease(engine, "run-D", ttl=30)
    taker.acquire()
    assert taker.generation == (frozen.generation or 0) + 1


def test_a_stage_that_lost_its_lease_cannot_mark_posting_and_changes_nothing(engine: Any) -> None:
    entry_id = _entry(engine)
    frozen = _lease(engine, "run-A", ttl=0.3)
    frozen.acquire()
    time.sleep(0.5)
    taker = _lease(engine, "run-B", ttl=30)
    taker.acquire()
    with pytest.raises(LeaseLost, match="lost"):
        ledger.begin_post(engine, entry_id, "run-A", lease=frozen)
    row = _state(engine, entry_id)
    assert (row.state, row.attempts, row.claim_generation) == ("pending", 0, None)
    with pytest.raises(LeaseLost):
        frozen.check()  # and nothing leaves before a request either

    _, was_posting = ledger.begin_post(engine, entry_id, "run-B", lease=taker)
    assert not was_posting
    row = _state(engine, entry_id)
    assert row.state == "posting" and row.claim_generation == taker.generation
    assert row.claim_scope == "111111" and "run-B" in row.claim_owner


def test_an_expired_lease_cannot_mark_posting_even_before_anyone_took_over(engine: Any) -> None:
    entry_id = _entry(engine)
    stale = _lease(engine, "run-A", ttl=0.2)
    stale.acquire()
    time.sleep(0.4)
    with pytest.raises(LeaseLost, match="expired"):
        ledger.begin_post(engine, entry_id, "run-A", lease=stale)
    assert _state(engine, entry_id).state == "pending"


def test_a_live_claim_is_never_taken_over_and_an_expired_one_is(engine: Any) -> None:
    entry_id = _entry(engine)
    owner = _lease(engine, "run-A", ttl=30, scope="111111")
    owner.acquire()
    ledger.begin_post(engine, entry_id, "run-A", lease=owner)
    # another stage (the invoice was routed to another division meanwhile) finds it posting under a live claim
    other = _lease(engine, "run-B", ttl=30, scope="222222")
    other.acquire()
    with pytest.raises(ledger.StateChanged, match="another live post stage claimed it"):
        ledger.begin_post(engine, entry_id, "run-B", states=("posting",), lease=other)
    assert ledger.finish(engine, entry_id, "failed", reason="x", lease=other) is False  # not touched either
    assert _state(engine, entry_id).state == "posting"
    owner.release()
    _, was_posting = ledger.begin_post(engine, entry_id, "run-B", states=("posting",), lease=other)
    assert was_posting and _state(engine, entry_id).claim_scope == "222222"


def test_a_stage_that_lost_its_lease_never_overwrites_what_the_taker_recorded(engine: Any) -> None:
    entry_id = _entry(engine)
    frozen = _lease(engine, "run-A", ttl=0.3)
    frozen.acquire()
    ledger.begin_post(engine, entry_id, "run-A", lease=frozen)
    time.sleep(0.5)
    taker = _lease(engine, "run-B", ttl=30)
    taker.acquire()
    # the taker settles the expired claim (found in the target) ...
    assert ledger.finish(engine, entry_id, "posted", target_id="E-1", lease=taker) is True
    # ... and the frozen stage, resumed, learns it lost the lease and cannot write over it
    with pytest.raises(LeaseLost):
        frozen.check()
    assert ledger.finish(engine, entry_id, "failed", reason="late answer", lease=frozen) is False
    row = _state(engine, entry_id)
    assert (row.state, row.target_id) == ("posted", "E-1")


def test_finish_records_a_decision_only_for_the_version_it_was_taken_from(engine: Any) -> None:
    entry_id = _entry(engine)
    first_hash = _state(engine, entry_id).staged_hash
    with db.session_scope(engine) as s:  # a newer version is staged meanwhile
        ledger.stage(s, tenant="demo", flow=FLOW, source_id="inv-1", payload={"v": 2}, repost_changed=False)
    recorded = ledger.finish(
        engine, entry_id, "quarantined", reason="old version", expect_state="pending", expect_hash=first_hash
    )
    assert recorded is False and _state(engine, entry_id).state == "pending"


def test_the_owner_is_the_task_instance_and_try() -> None:
    ti = SimpleNamespace(dag_id="jaggaer_invoice_poll__demo", run_id="manual__1", task_id="division_1.post",
                         map_index=-1, try_number=3)  # fmt: skip
    owner = LeaseOwner.from_context({"ti": ti}, "manual__1")
    text = owner.describe()
    assert "jaggaer_invoice_poll__demo" in text and "manual__1" in text and "division_1.post" in text
    assert "try 3" in text and f"pid {owner.pid}" in text
