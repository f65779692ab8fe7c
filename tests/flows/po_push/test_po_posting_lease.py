"""The posting lease of the PO push with real processes: two post stages over the same orders started together, and
one frozen (SIGSTOP) past its lease while another takes over, against a JAGGAER sandbox that answers each PO import
after a delay. On SQLite and PostgreSQL. One JAGGAER PO per order, one import per order."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/flows: post_worker

import post_worker
from po_push_support import DIV, World, po_number

PO_IMPORT = "POST /apps/Router/POXMLImport"


def _spawn(w: World, run_id: str, *, ttl: float, wait: float) -> subprocess.Popen[str]:
    return post_worker.spawn("po_push", DIV, run_id, w.engine, ttl=ttl, wait=wait)


def _staged(w: World, n: int) -> list[dict[str, Any]]:
    """``n`` orders in Exact, extracted, mapped and validated in this process (the post stage has a batch)."""
    pos = [w.create_po(supplier="1001") for _ in range(n)]
    w.run(stages=("extract", "map_vendors", "validate"))
    w.clear_calls()
    return pos


def _imports(w: World) -> int:
    return int(w.jaggaer_calls().get(PO_IMPORT, 0))


def _wait_for(check: Any, what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_two_po_post_stages_started_together_send_one_po_per_order(world: World) -> None:
    w = world
    pos = _staged(w, 4)
    w.jaggaer_fault(method="POST", path="POXMLImport", action="latency", delay_s=1.5, count=None)
    procs = [_spawn(w, f"run-{n}", ttl=3, wait=30) for n in (1, 2)]
    results = [post_worker.result(p) for p in procs]

    assert _imports(w) == len(pos)  # one import per order: no order was sent twice
    jaggaer = w.jaggaer_pos()
    assert {po_number(po) for po in pos} <= set(jaggaer)
    assert sorted(r["counts"].get("posted", 0) for r in results) == [0, len(pos)], results
    assert {e.state for e in w.ledger().values()} == {"posted"}


def test_a_po_post_stage_frozen_past_its_lease_sends_nothing_after_it_resumes(world: World) -> None:
    w = world
    pos = _staged(w, 5)
    w.jaggaer_fault(method="POST", path="POXMLImport", action="latency", delay_s=1.0, count=None)
    frozen = _spawn(w, "run-frozen", ttl=2, wait=30)
    try:
        _wait_for(lambda: _imports(w) >= 1, "the first PO import")
        time.sleep(0.4)  # inside the next import's delay (not inside a database transaction)
        frozen.send_signal(signal.SIGSTOP)
        taker = _spawn(w, "run-taker", ttl=2, wait=30)
        took = post_worker.result(taker)
        sent_before_resume = _imports(w)
    finally:
        frozen.send_signal(signal.SIGCONT)
    resumed = post_worker.result(frozen)

    assert _imports(w) == sent_before_resume  # nothing left the resumed stage
    assert resumed["counts"].get("lease_lost") == 1, resumed
    assert took["counts"].get("posted", 0) >= 1
    assert {po_number(po) for po in pos} <= set(w.jaggaer_pos())
    # at most one import per order, plus at most one resend of the order whose import was in flight when frozen
    # (JAGGAER keys POs on PONumber: the taker's resend finds it and updates it, still one PO)
    assert _imports(w) <= len(pos) + 2
    assert {e.state for e in w.ledger().values()} == {"posted"}
