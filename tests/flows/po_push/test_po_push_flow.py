"""PO push stages against both sandboxes over real HTTP, the store on SQLite and PostgreSQL.

What JAGGAER received is read from its sandbox's admin state; what was sent is counted at the sandboxes
(``/_admin/calls``). The invariant under test everywhere: exactly one JAGGAER PO per Exact order.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from po_push_support import DIV, DIV2, XML_SECRET, line, po_number

from ml_connector.store import ledger
from ml_connector.store.audit import history
from ml_connector.store.cursors import get_cursor
from ml_connector.store.db import session_scope

PO_IMPORT = "POST /apps/Router/POXMLImport"
SUPPLIER_IMPORT = "POST /apps/Router/TSMSupplierXMLImport"


def _creates(world, number: str) -> int:
    """How many times JAGGAER created this PONumber (its message log)."""
    return sum(1 for m in world.jaggaer_state()["po_messages"] if m["poNumber"] == number and m["action"] == "create")


def test_new_changed_and_cancelled_orders_arrive_once(world) -> None:
    a = world.create_po("1001", [line(), line("CP-M8X25-HT", 250, 0.11, "CC200")], Description="Steel plate")
    b = world.create_po("1003", [line("RM-EN8-50", 3, 14.6, "CC500")])
    c = world.create_po("1002", [line()], division=DIV2)
    out = world.run(DIV).merge(world.run(DIV2))
    assert out["posted"] == 3 and out.failed == 0, out.to_dict()

    pos = world.jaggaer_pos()
    assert set(pos) == {po_number(a), po_number(b), po_number(c, DIV2)}
    pa = pos[po_number(a)]
    assert pa["status"] == "Open" and pa["supplier"]["supplierNumber"] == "1001"
    assert [ln["linenumber"] for ln in pa["lines"]] == [1, 2]
    first, second = pa["lines"]
    assert Decimal(first["quantity"]) == 10 and Decimal(first["unitPrice"]) == Decimal("1.25")
    # GL rules of the demo tenant: by cost centre CC200 -> 7400, else the default 7000; cost centre from the line
    assert first["customFields"] == {"GLAccount": "7000", "CostCenter": "CC100"}
    assert second["customFields"] == {"GLAccount": "7400", "CostCenter": "CC200"}
    assert pos[po_number(b)]["lines"][0]["customFields"] == {"GLAccount": "7500", "CostCenter": "CC500"}

    # change a (quantity), cancel b (OrderStatus 40), delete c in Exact
    world.modify_po(a, LineUpdates=[{"LineNumber": 1, "QuantityInPurchaseUnits": 12}])
    world.servers.exact.cancel_po(b["PurchaseOrderID"])
    world.servers.exact.delete_po(c["PurchaseOrderID"])
    world.clear_calls()
    out = world.run(DIV, run_id="run-2").merge(world.run(DIV2, run_id="run-2"))
    assert (out["updated"], out["cancelled"], out.failed) == (1, 2, 0), out.to_dict()
    pos = world.jaggaer_pos()
    assert Decimal(pos[po_number(a)]["lines"][0]["quantity"]) == 12
    assert pos[po_number(b)]["status"] == "Cancelled"
    assert pos[po_number(c, DIV2)]["status"] == "Cancelled"
    assert world.jaggaer_calls() == {PO_IMPORT: 3}
    for po, div in ((a, DIV), (b, DIV), (c, DIV2)):
        assert _creates(world, po_number(po, div)) == 1

    entries = world.ledger()
    assert entries[po_number(a)].state == "posted"
    assert entries[po_number(b)].state == "cancelled"
    assert entries[po_number(c, DIV2)].state == "cancelled"
    assert entries[po_number(a)].target_ref == po_number(a)

    # nothing changed: a third run sends nothing
    world.clear_calls()
    out = world.run(DIV, run_id="run-3").merge(world.run(DIV2, run_id="run-3"))
    assert world.jaggaer_calls() == {} and out["posted"] + out["updated"] + out["cancelled"] == 0

    # audit: one row per write attempt with timestamp, tenant, division, ids, HTTP status, outcome, message
    rows = [r for r in history(world.engine, "demo", "po_push", a["PurchaseOrderID"]) if r.method == "POST"]
    assert [r.action for r in rows] == ["po_new", "po_update"]
    for r in rows:
        assert r.at is not None and r.tenant == "demo" and r.division == DIV
        assert r.source_id == a["PurchaseOrderID"] and r.source_ref == str(a["OrderNumber"])
        assert r.target_ref == po_number(a) and r.http_status == 200 and r.outcome == "ok"
        assert r.message and XML_SECRET not in r.message and r.url.endswith("/POXMLImport")


def test_new_vendor_is_created_once(world) -> None:
    world.create_po("1005", [line()])
    world.create_po("1005", [line("RM-S355-20")])
    world.create_po("1006", [line()])
    out = world.run()
    assert out["posted"] == 3 and out["vendor_created"] == 2
    assert world.jaggaer_calls()[SUPPLIER_IMPORT] == 1  # both suppliers in one message
    assert sorted(world.created_suppliers()) == ["1005", "1006"]
    supplier = next(s for s in world.jaggaer_admin("GET", "suppliers") if s.get("supplierNumber") == "1005")
    assert supplier["name"] == "Tyne Plastics Polymers Ltd"

    from sqlalchemy import select

    from ml_connector.store.models import VendorMap

    with session_scope(world.engine) as s:
        rows = list(s.scalars(select(VendorMap).where(VendorMap.tenant == "demo")))
        assert sorted((r.exact_code, r.source, r.division) for r in rows) == [
            ("1005", "created_in_jaggaer", DIV),
            ("1006", "created_in_jaggaer", DIV),
        ]
        assert all(r.vat_number and r.vat_bidx for r in rows)  # encrypted, with its blind index

    # the second run finds them in the map: no account read, no supplier import
    world.create_po("1005", [line()])
    world.clear_calls()
    out = world.run(run_id="run-2")
    assert out["posted"] == 1 and out["vendor_created"] == 0
    assert SUPPLIER_IMPORT not in world.jaggaer_calls()
    assert "GET /api/v1/{division}/crm/Accounts" not in world.exact_calls()
    assert sorted(world.created_suppliers()) == ["1005", "1006"]


def test_rerun_clear_and_backfill_leave_one_po_per_order(world) -> None:
    orders = [world.create_po(code, [line()]) for code in ("1001", "1002", "1003")]
    assert world.run()["posted"] == 3
    world.clear_calls()
    assert world.run(run_id="again")["posted"] == 0  # re-run (cursor)
    assert world.run(run_id="clear", stages=("post",))["posted"] == 0  # a cleared post task
    today = world.servers.exact.clock()["now"][:10]
    backfill = world.run(run_id="backfill", date_from=today, date_to=today)  # the same dates again
    assert backfill["extracted"] == 3 and backfill["unchanged"] == 3 and backfill["posted"] == 0
    by_id = world.run(run_id="ids", ids=[str(orders[0]["OrderNumber"])])
    assert by_id["extracted"] == 1 and by_id["posted"] == 0
    assert PO_IMPORT not in world.jaggaer_calls()
    for po in orders:
        assert _creates(world, po_number(po)) == 1
    assert len(world.jaggaer_pos()) == 3
    # the cursor moved past the orders, and only the cursor run moved it
    with session_scope(world.engine) as s:
        assert int(get_cursor(s, "demo", "po_push", str(DIV))) > 1


def _staged_payloads(world) -> dict[str, dict]:
    with session_scope(world.engine) as s:
        return {k: ledger.staged_payload(s, s.merge(e)) for k, e in world.ledger().items()}


def test_scheduled_and_dated_reads_of_unchanged_orders_agree(world) -> None:
    """The sync endpoint carries cost centre and cost unit GUIDs (codes in CostCenterCode/CostUnitCode), the
    lines endpoint carries the codes: both reads stage identical payloads, so whichever comes second sends
    nothing to JAGGAER."""
    a = world.create_po("1001", [line(cc="CC200", CostUnit="CU01"), line("CP-M8X25-HT", 250, 0.11, "CC500")])
    b = world.create_po("1003", [line("RM-EN8-50", 3, 14.6, "CC100", CostUnit="CU02")])
    today = world.servers.exact.clock()["now"][:10]
    dated = world.run(run_id="dated", date_from=today, date_to=today)  # a dated read first
    assert dated["posted"] == 2, dated.to_dict()
    sent = world.jaggaer_pos()[po_number(a)]["lines"]
    assert [ln["customFields"]["CostCenter"] for ln in sent] == ["CC200", "CC500"]
    payloads = _staged_payloads(world)

    world.clear_calls()
    scheduled = world.run(run_id="scheduled")  # then the cursor (sync) read of the same orders
    assert scheduled["extracted"] == 2 and scheduled["unchanged"] == 2, scheduled.to_dict()
    assert scheduled["posted"] + scheduled["updated"] == 0
    assert world.jaggaer_calls() == {}
    assert _staged_payloads(world) == payloads

    # a goods receipt re-versions every row of b in Exact, but nothing JAGGAER gets has changed
    world.modify_po(b, LineUpdates=[{"LineNumber": 1, "ReceivedQuantity": 1}])
    world.clear_calls()
    again = world.run(run_id="scheduled-2")
    assert again["extracted"] == 1 and again["unchanged"] == 1 and world.jaggaer_calls() == {}
    redated = world.run(run_id="dated-2", date_from=today, date_to=today)
    assert redated["unchanged"] == 2 and world.jaggaer_calls() == {}


def test_429_burst_on_both_sides(world) -> None:
    orders = [world.create_po(code, [line()]) for code in ("1001", "1002")]
    world.servers.exact.fault(path="sync/PurchaseOrder", action="rate_limit", count=3)
    world.jaggaer_fault(path="POXMLImport", action="rate_limit", count=3)
    out = world.run()
    assert out["posted"] == 2 and out.failed == 0, out.to_dict()
    for po in orders:
        assert _creates(world, po_number(po)) == 1
    log = world.servers.exact.calls()["log"]
    assert sum(1 for c in log if c["status"] == 429) == 3
    assert world.jaggaer_calls()[PO_IMPORT] == 2 + 3  # the 429s were refusals, re-sent after the wait


def test_commit_then_drop_is_resolved_without_a_duplicate(world) -> None:
    from ml_connector.flows.runtime import report

    a = world.create_po("1001", [line()])
    b = world.create_po("1002", [line()])
    world.jaggaer_fault(path="POXMLImport", action="drop_after_commit", count=1)
    out = world.run()
    assert out["ambiguous"] == 1 and out["posted"] == 1, out.to_dict()
    assert sorted(e.state for e in world.ledger().values()) == ["posted", "posting"]
    with pytest.raises(Exception) as info:  # the run goes red
        report(world.ctx(), out)
    assert type(info.value).__name__ == "AirflowFailException" and "ambiguous 1" in str(info.value)

    world.clear_calls()
    out = world.run(run_id="run-2")  # the next attempt resends; "already exists" for our PO is success
    assert out["posted"] == 1 and out.failed == 0, out.to_dict()
    assert {e.state for e in world.ledger().values()} == {"posted"}
    for po in (a, b):
        assert _creates(world, po_number(po)) == 1
    assert len(world.jaggaer_pos()) == 2
    dropped = next(e for e in world.ledger().values() if e.attempts == 2)
    outcomes = [r.outcome for r in history(world.engine, "demo", "po_push", dropped.source_id) if r.method == "POST"]
    assert outcomes == ["ambiguous", "already_exists", "ok"]  # lost answer, resend found it, current data as update


@pytest.mark.parametrize("arrived", [False, True], ids=["killed-before-send", "killed-after-commit"])
def test_worker_killed_mid_post(world, arrived: bool) -> None:
    """A worker died after ``begin_post`` committed: before the send, or after JAGGAER committed the PO."""
    a = world.create_po("1001", [line()])
    world.run(stages=("extract", "map_vendors", "validate"))
    entry = world.ledger()[po_number(a)]
    ledger.begin_post(world.engine, entry.id, "dead-worker")  # committed 'posting', then the process died
    if arrived:
        from ml_connector.flows.po_push.post import build_order

        ctx = world.ctx(run_id="dead-worker")
        with session_scope(world.engine) as s:
            payload = ledger.staged_payload(s, ledger.get_entry(s, "demo", "po_push", entry.source_id))
        order = build_order(ctx, payload, "new", "1001")
        assert ctx.jaggaer_hook().import_po(order, audit_ctx=ctx.audit_ctx("po_new")).ok
    world.clear_calls()
    out = world.run(run_id="after", stages=("post",))
    assert out["posted"] == 1 and out.failed == 0, out.to_dict()
    assert world.ledger()[po_number(a)].state == "posted"
    assert _creates(world, po_number(a)) == 1
    assert world.jaggaer_calls()[PO_IMPORT] == (2 if arrived else 1)


def test_invalid_orders_are_quarantined_and_the_rest_go_on(world) -> None:
    good = world.create_po("1001", [line()])
    bad = world.create_po("1002", [line()], Currency="JPY")
    out = world.run()
    assert out["posted"] == 1 and out["quarantined"] == 1
    entry = world.ledger()[po_number(bad)]
    assert entry.state == "quarantined"
    assert "currency 'JPY' is not in tenant demo po_push.currencies" in entry.reason
    assert set(world.jaggaer_pos()) == {po_number(good)}

    # a tenant whose GL rules use item groups and have no default: the reason names line, group and the fix
    from ml_connector.config.po_push import GlRules

    rules = GlRules(by_item_group={"RAW": "7000"}, default_cost_center="CC100")
    strict = world.tenant.model_copy(update={"po_push": world.tenant.po_push.model_copy(update={"gl_rules": rules})})
    c = world.create_po("1003", [line(), line("CP-M8X25-HT", 5, 0.11)])
    out = world.run(run_id="strict", tenant=strict)
    assert out["quarantined"] == 1 and out["posted"] == 0, out.to_dict()
    reason = world.ledger()[po_number(c)].reason
    assert "line 2: no GL account for item group 'CMP' or cost centre 'CC100' and no default_gl_account in " \
        "tenant demo po_push.gl_rules" in reason  # fmt: skip
    assert "line 1" not in reason
    # fixed config + admin requeue: it goes through
    assert ledger.requeue(world.engine, "demo", "po_push", [c["PurchaseOrderID"]]) == 1
    assert world.run(run_id="fixed")["posted"] == 1
    assert po_number(c) in world.jaggaer_pos()


def test_dry_run_sends_nothing_and_changes_nothing(world, caplog: pytest.LogCaptureFixture) -> None:
    orders = [world.create_po(code, [line()]) for code in ("1001", "1007")]
    with caplog.at_level("INFO"):
        out = world.run(dry_run=True)
    assert out["would_post"] == 2 and out["would_create_vendor"] == 2, out.to_dict()
    assert world.jaggaer_calls() == {}
    assert world.ledger() == {}
    with session_scope(world.engine) as s:
        assert get_cursor(s, "demo", "po_push", str(DIV)) is None
    text = caplog.text
    assert "<SharedSecret>***</SharedSecret>" in text and XML_SECRET not in text
    assert f"<PONumber>{po_number(orders[0])}</PONumber>" in text
    # the real run afterwards does everything
    assert world.run(run_id="real")["posted"] == 2


def test_ids_param_pushes_only_the_named_orders(world) -> None:
    a = world.create_po("1001", [line()])
    b = world.create_po("1002", [line()])
    out = world.run(ids=[str(b["OrderNumber"])])
    assert out["posted"] == 1 and set(world.jaggaer_pos()) == {po_number(b)}
    assert world.run(run_id="all")["posted"] == 1  # the cursor run then takes a
    assert set(world.jaggaer_pos()) == {po_number(a), po_number(b)}


def test_broken_token_chain_halts_before_posting(world) -> None:
    from ml_connector.errors import TokenChainBroken
    from ml_connector.flows.runtime import fail_fast
    from ml_connector.store.models import TokenRecord

    world.create_po("1001", [line()])
    with session_scope(world.engine) as s:
        row = s.get(TokenRecord, ("demo", "exact_demo"))
        row.status, row.status_reason = "broken", "Old refresh token used"
    ctx = world.ctx()
    from airflow.sdk.exceptions import AirflowFailException

    from ml_connector.flows import po_push

    with pytest.raises(AirflowFailException) as info, fail_fast(world.tenant):
        po_push.extract(ctx)
    assert isinstance(info.value.__cause__, TokenChainBroken) and info.value.alerted
    assert "mlc exact connect" in str(info.value)
    assert world.jaggaer_calls() == {} and world.ledger() == {}


def test_api_call_budget(sqlite_world) -> None:
    """N orders with L lines from V new suppliers in one division.

    Exact: ≤ ⌈N·(L+1)/1000⌉ + ⌈V/20⌉ + 2 (sync pages, account reads, sync/Deleted, +1 spare).
    JAGGAER: ≤ N + ⌈V/50⌉ + 2 (one POXMLImport per order, one TSMSupplierXMLImport per 50 suppliers).
    Counted at the sandboxes: every request except /_admin (token calls included: the Exact chain was obtained
    before counting, is fresh and needs no refresh; the XML imports need no J1P token).
    """
    from sandbox.common.demo_company import suppliers_in

    w = sqlite_world
    codes = [s.code for s in suppliers_in(DIV) if not s.blocked][:52]
    n, lines_per_order, v = 60, 16, len(codes)
    items = ["RM-S275-10", "CP-M8X25-HT", "SB-CNC-HR", "CN-GLOVES"]
    for i in range(n):
        w.create_po(codes[i % v], [line(items[j % 4], 1 + j, 2.5) for j in range(lines_per_order)])
    w.clear_calls()
    out = w.run()
    assert out["posted"] == n and out["vendor_created"] == v and out.failed == 0, out.to_dict()
    exact, jaggaer = w.exact_calls(), w.jaggaer_calls()
    exact_total, jaggaer_total = sum(exact.values()), sum(jaggaer.values())
    exact_budget = -(-n * (lines_per_order + 1) // 1000) + -(-v // 20) + 2
    jaggaer_budget = n + -(-v // 50) + 2
    print(f"\nExact calls {exact_total} (budget {exact_budget}): {exact}")
    print(f"JAGGAER calls {jaggaer_total} (budget {jaggaer_budget}): {jaggaer}")
    assert exact_total <= exact_budget
    assert jaggaer_total <= jaggaer_budget
    assert exact["GET /api/v1/{division}/sync/PurchaseOrder/PurchaseOrders"] == 2  # 1,020 rows: two pages
    assert jaggaer == {PO_IMPORT: n, SUPPLIER_IMPORT: 2}
    assert Counter(w.created_suppliers()) == Counter(codes)


def test_window_read_follows_every_next_link_including_expanded_lines(sqlite_world, caplog) -> None:
    """The by-date read pages headers (60 a page in the sandbox) and each order's expanded lines (60 a page)."""
    w = sqlite_world
    big = w.create_po("1001", [line("CP-M8X25-HT", 1 + i, 0.11) for i in range(65)])
    for _ in range(61):
        w.create_po("1002", [line()])
    today = w.servers.exact.clock()["now"][:10]
    w.clear_calls()
    with caplog.at_level("INFO"):
        out = w.run(dry_run=True, date_from=today, date_to=today)
    assert out["would_post"] == 62, out.to_dict()
    calls = w.exact_calls()
    assert calls["GET /api/v1/{division}/purchaseorder/PurchaseOrders"] == 2  # 62 headers: two pages
    assert calls["GET /api/v1/{division}/purchaseorder/PurchaseOrders(...)/PurchaseOrderLines"] == 1  # lines 61-65
    xml = next(r.getMessage() for r in caplog.records if f"order {big['OrderNumber']} " in r.getMessage())
    assert xml.count("<POLine ") == 65 and 'linenumber="65"' in xml
