"""The posting lease with real processes: two invoice-poll post stages started together over the same invoices, and
a post stage frozen (SIGSTOP) past its lease while another takes over, against an Exact sandbox that answers each
POST after a delay. On SQLite and PostgreSQL (the lease lives in the store)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/flows: post_worker

import post_worker
from invoice_poll_support import DIV_MFG, World

from ml_connector.flows import invoice_poll as ip


def _posts(w: World) -> list[dict[str, Any]]:
    return [c for c in w.exact.calls()["log"] if c["method"] == "POST" and c["path"].endswith("/PurchaseEntries")]


def _stage(w: World, refs: list[str]) -> None:
    """Invoices in JAGGAER, extracted, mapped and validated in this process: the post stage has a batch."""
    for i, ref in enumerate(refs):
        w.invoice(hour=1 + i, supplier_invoice_number=ref, lines=[{"unit_price": f"{10 + i}.00"}])
    ctx = w.ctx()
    ip.extract(ctx)
    dctx = ctx.for_division(DIV_MFG)
    ip.map_vendors(dctx)
    ip.validate(dctx)


def _spawn(w: World, run_id: str, *, ttl: float, wait: float) -> subprocess.Popen[str]:
    return post_worker.spawn("invoice_poll", DIV_MFG, run_id, w.engine, ttl=ttl, wait=wait)


def test_two_post_stages_started_together_post_each_invoice_once(world: World) -> None:
    w = world
    refs = [f"TWO-{i}" for i in range(4)]
    _stage(w, refs)
    w.clear_calls()
    w.exact.fault(method="POST", path="PurchaseEntries", action="latency", delay_s=1.5, count=None)
    started = time.monotonic()
    procs = [_spawn(w, f"run-{n}", ttl=3, wait=30) for n in (1, 2)]
    results = [post_worker.result(p) for p in procs]
    elapsed = time.monotonic() - started

    for ref in refs:
        assert len(w.entries_for(ref)) == 1, ref
    assert len(_posts(w)) == len(refs)  # no invoice was even sent twice
    posted = [r["counts"].get("posted", 0) for r in results]
    assert sorted(posted) == [0, len(refs)], results  # one stage sent them all; the other found them done
    rows = [w.ledger(e.source_id) for e in _entries(w)]
    assert {r.state for r in rows} == {"posted"}
    assert len({(r.claim_scope, r.claim_generation, r.claim_owner) for r in rows}) == 1  # one lease, one owner
    assert elapsed < 60


def _entries(w: World) -> list[Any]:
    from sqlalchemy import select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry

    with session_scope(w.engine) as s:
        rows = list(s.scalars(select(LedgerEntry).where(LedgerEntry.flow == ip.FLOW)))
        for r in rows:
            s.expunge(r)
        return rows


def test_a_second_post_stage_that_finds_the_division_busy_waits_then_ends_without_sending(
    sqlite_world: World,
) -> None:
    w = sqlite_world
    refs = [f"BUSY-{i}" for i in range(6)]  # ~9 s of POSTs: the second stage starts meanwhile
    _stage(w, refs)
    w.clear_calls()
    w.exact.fault(method="POST", path="PurchaseEntries", action="latency", delay_s=1.5, count=None)
    first = _spawn(w, "run-first", ttl=3, wait=30)
    _wait_for(lambda: len(_posts(w)) >= 1 or len(w.entries()) >= 1, "the first stage to send")
    second = _spawn(w, "run-second", ttl=3, wait=1)
    busy = post_worker.result(second)
    done = post_worker.result(first)
    assert busy["counts"]["busy"] == 1 and set(busy["counts"]) == {"busy", "not_sent"}
    assert 1 <= busy["counts"]["not_sent"] <= len(refs)  # what was still open when it listed its batch
    [why] = busy["details"]
    assert "busy" in why and "run-first" in why and "ended without sending" in why
    assert done["counts"]["posted"] == len(refs)
    assert len(_posts(w)) == len(refs)
    for ref in refs:
        assert len(w.entries_for(ref)) == 1


def _wait_for(check: Any, what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_post_stage_frozen_past_its_lease_sends_nothing_after_it_resumes(world: World) -> None:
    w = world
    refs = [f"FRZ-{i}" for i in range(5)]
    _stage(w, refs)
    w.clear_calls()
    w.exact.fault(method="POST", path="PurchaseEntries", action="latency", delay_s=1.0, count=None)
    frozen = _spawn(w, "run-frozen", ttl=2, wait=30)
    try:
        _wait_for(lambda: len(w.entries()) >= 1, "the first entry")
        time.sleep(0.4)  # inside the next POST's delay (not inside a database transaction)
        frozen.send_signal(signal.SIGSTOP)
        taker = _spawn(w, "run-taker", ttl=2, wait=30)
        took = post_worker.result(taker)  # waits for the frozen stage's lease to expire, then takes over
        sent_before_resume = len(_posts(w))
    finally:
        frozen.send_signal(signal.SIGCONT)
    resumed = post_worker.result(frozen)

    assert len(_posts(w)) == sent_before_resume  # nothing left the resumed stage
    assert resumed["counts"].get("lease_lost") == 1, resumed
    assert "lease" in " ".join(resumed["details"])
    assert took["counts"].get("posted", 0) >= 1
    for ref in refs:
        assert len(w.entries_for(ref)) == 1, ref
    assert {r.state for r in _entries(w)} == {"posted"}
