"""End to end: a real Airflow 3.3 (api-server, scheduler, dag-processor, LocalExecutor, PostgreSQL) runs the
connector's DAGs against the sandbox servers; everything is driven through the REST API, the way an operator or the
UI does it. The checks look at both sandboxes' admin state and at the connector's ledger.

The tests share one stack and run in file order (the flow tests build on the token chain and on what the earlier
runs posted). 3-5.5 minutes on the shared 2-core machine, depending on its load; see docs/testing.md.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from e2e_stack import EXACT_DAG, JAGGAER_DAG, TENANT, AirflowStack

from ml_connector.provider import get_provider_info

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PO_FLOW = "po_push"
INVOICE_FLOW = "invoice_poll"


# --------------------------------------------------------------------------------------------------- helpers
def jaggaer_demo(stack: AirflowStack) -> dict[str, Any]:
    return stack.jaggaer_admin("GET", "state")["tenants"][TENANT]


def ledger(stack: AirflowStack, flow: str) -> dict[str, dict[str, Any]]:
    rows = stack.sql(
        "SELECT source_id, source_ref, division, state, reason, target_id, target_ref, attempts "
        "FROM mlc_ledger WHERE tenant = :tenant AND flow = :flow",
        tenant=TENANT,
        flow=flow,
    )
    return {r["source_id"]: r for r in rows}


def successful_creates(po_log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["poNumber"] for m in po_log if m.get("action") == "create" and m.get("status") == 200)


def assert_each_po_once(stack: AirflowStack) -> dict[str, dict[str, Any]]:
    """Every posted order is one JAGGAER PO created exactly once; no PO exists that the ledger does not know."""
    state = jaggaer_demo(stack)
    creates = successful_creates(state["po_messages"])
    twice = {po: n for po, n in creates.items() if n > 1}
    assert not twice, f"POs created more than once in JAGGAER: {twice}"
    rows = ledger(stack, PO_FLOW)
    posted = {r["target_ref"] for r in rows.values() if r["state"] == "posted"}
    missing = posted - set(state["purchase_orders"])
    assert not missing, f"posted but missing in JAGGAER: {sorted(missing)}"
    unknown = set(state["purchase_orders"]) - {r["target_ref"] for r in rows.values() if r["target_ref"]}
    assert not unknown, f"POs in JAGGAER that the ledger does not account for: {sorted(unknown)}"
    return rows


def exact_entries(stack: AirflowStack) -> list[dict[str, Any]]:
    return stack.exact.purchase_entries()


def entries_by_invoice(entries: list[dict[str, Any]]) -> Counter[str]:
    refs = Counter()
    for e in entries:
        ref = e.get("ExternalLinkReference") or ""
        if ref.startswith("JAGGAER:"):
            refs[ref.removeprefix("JAGGAER:")] += 1
    return refs


def parse_ts(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def wait_backfill(stack: AirflowStack, backfill_id: int, timeout: float = 150) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        b = stack.api_json("GET", f"/api/v2/backfills/{backfill_id}")
        return b if b.get("completed_at") else None

    return stack.wait_for(f"backfill {backfill_id} to complete", done, timeout)


def backfill_runs(stack: AirflowStack, from_date: datetime, to_date: datetime) -> list[dict[str, Any]]:
    runs = [
        r
        for r in stack.dag_runs(JAGGAER_DAG, run_type=["backfill"])
        if from_date <= parse_ts(r["logical_date"]) <= to_date
    ]
    return sorted(runs, key=lambda r: r["logical_date"])


# --------------------------------------------------------------------------------------------------- the stack
def test_stack_is_up_and_the_api_needs_a_login(airflow_stack: AirflowStack) -> None:
    s = airflow_stack
    health = s.api_json("GET", "/api/v2/monitor/health", auth=False)
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"
    assert health["dag_processor"]["status"] == "healthy"
    assert s.api("GET", "/api/v2/dags", auth=False).status_code == 401
    bad = s.session.post(f"{s.api_url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=30)
    assert bad.status_code == 401, bad.text
    version = s.api_json("GET", "/api/v2/version")
    assert version["version"].startswith("3.3"), version


def test_connection_form_metadata_lists_both_types(airflow_stack: AirflowStack) -> None:
    """What the UI's connection form is built from (``GET /ui/connections/hook_meta``)."""
    s = airflow_stack
    assert s.api("GET", "/ui/connections/hook_meta", auth=False).status_code == 401
    meta = {m["connection_type"]: m for m in s.api_json("GET", "/ui/connections/hook_meta")}
    provider = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert {"exact_online", "jaggaer"} <= set(meta), sorted(k for k in meta if k)
    for conn_type, declared in provider.items():
        m = meta[conn_type]
        assert m["hook_name"] == declared["hook-name"]
        assert m["hook_class_name"] == declared["hook-class-name"]
        behaviour = declared["ui-field-behaviour"]
        std = m["standard_fields"]
        for name, label in behaviour["relabeling"].items():
            assert std[name]["title"] == label, (conn_type, name, std[name])
        for name, placeholder in behaviour["placeholders"].items():
            assert std[name]["placeholder"] == placeholder, (conn_type, name, std[name])
        for hidden in behaviour["hidden-fields"]:
            key = "url_schema" if hidden == "schema" else hidden
            assert std[key]["hidden"] is True, (conn_type, hidden, std[key])
        extra = m["extra_fields"]
        assert set(extra) == set(declared["conn-fields"]), (conn_type, sorted(extra))
        for name, field in declared["conn-fields"].items():
            rendered = extra[name]
            assert rendered["schema"]["title"] == field["label"], (conn_type, name, rendered)
            assert rendered["description"] == field["description"], (conn_type, name, rendered)
            assert rendered["schema"].get("format") == field["schema"].get("format"), (conn_type, name, rendered)
    # the spot checks a person would make in the form
    exact, jaggaer = meta["exact_online"], meta["jaggaer"]
    assert exact["standard_fields"]["login"]["title"] == "Client ID"
    assert exact["standard_fields"]["password"]["title"] == "Client secret"
    assert "exactonline" in exact["standard_fields"]["host"]["placeholder"]
    assert exact["extra_fields"]["redirect_uri"]["schema"]["title"] == "Redirect URI"
    assert jaggaer["extra_fields"]["xml_shared_secret"]["schema"]["format"] == "password"
    assert jaggaer["extra_fields"]["token_url"]["schema"]["title"] == "Token URL"


def test_plugin_is_loaded_and_its_pages_need_a_login(airflow_stack: AirflowStack) -> None:
    s = airflow_stack
    plugins = {p["name"]: p for p in s.api_json("GET", "/api/v2/plugins")["plugins"]}
    assert "ml_connector" in plugins, sorted(plugins)
    plugin = plugins["ml_connector"]
    assert any(a["url_prefix"] == "/ml-connector" for a in plugin["fastapi_apps"]), plugin
    assert any(v["href"] == "ml-connector/ui/status" for v in plugin["external_views"]), plugin
    errors = s.api_json("GET", "/api/v2/plugins/importErrors")
    assert errors["total_entries"] == 0, errors
    anonymous = s.api("GET", "/ml-connector/ui/status", auth=False)
    assert anonymous.status_code in (401, 403), anonymous.status_code
    page = s.api("GET", "/ml-connector/ui/status")
    assert page.status_code == 200, page.text[:500]
    assert TENANT in page.text and "exact_demo" in page.text


def test_both_dags_are_parsed_without_import_errors(airflow_stack: AirflowStack) -> None:
    s = airflow_stack
    dags = s.wait_for_dags([EXACT_DAG, JAGGAER_DAG])
    assert s.import_errors() == []
    for dag_id, dag in dags.items():
        assert dag["is_paused"] is False, dag_id
        assert "ml-connector" in {t["name"] for t in dag["tags"]}, dag
    tasks = {t["task_id"] for t in s.api_json("GET", f"/api/v2/dags/{EXACT_DAG}/tasks")["tasks"]}
    assert {"division_111111.post", "division_222222.post", "report"} <= tasks, sorted(tasks)


# --------------------------------------------------------------------------------------------------- Test button
def test_connection_test_button_jaggaer(airflow_stack: AirflowStack) -> None:
    s = airflow_stack
    body = s.connection_body("jaggaer_demo")
    ok = s.api_json("POST", "/api/v2/connections/test", json=body)
    assert ok["status"] is True, ok
    assert "XML Identity/SharedSecret accepted" in ok["message"], ok

    bad = s.api_json("POST", "/api/v2/connections/test", json={**body, "password": "not-the-secret"})
    assert bad == {"status": False, "message": "token endpoint refused client id/secret"}, bad

    extra = json.loads(body["extra"])
    wrong_xml = {**body, "extra": json.dumps({**extra, "xml_shared_secret": "not-the-xml-secret"})}
    bad = s.api_json("POST", "/api/v2/connections/test", json=wrong_xml)
    assert bad == {"status": False, "message": "XML Identity/SharedSecret refused"}, bad


def test_connection_test_button_exact(airflow_stack: AirflowStack, exact_connected: dict[str, Any]) -> None:
    s = airflow_stack
    body = s.connection_body("exact_demo")
    ok = s.api_json("POST", "/api/v2/connections/test", json=body)
    assert ok["status"] is True, ok
    assert ok["message"].startswith(f"tenant {TENANT}: connected as"), ok
    assert "111111, 222222 accessible" in ok["message"], ok

    bad = s.api_json("POST", "/api/v2/connections/test", json={**body, "password": "not-the-secret"})
    assert bad["status"] is False, bad
    assert bad["message"].startswith("client secret refused by Exact"), bad
    assert "not-the-secret" not in bad["message"]

    # the refused secret did not hurt the tenant's token chain
    again = s.api_json("POST", "/api/v2/connections/test", json=body)
    assert again["status"] is True, again
    chains = s.exact.state()["oauth"]["chains"]
    assert [c["dead"] for c in chains] == [False], chains


# --------------------------------------------------------------------------------------------------- flows
def test_po_push_run_posts_every_order_once(airflow_stack: AirflowStack, exact_connected: dict[str, Any]) -> None:
    s = airflow_stack
    s.wait_for_dags([EXACT_DAG])
    run_id = s.trigger(EXACT_DAG, note="e2e: first push")
    state = s.wait_run(EXACT_DAG, run_id, timeout=150)
    assert state == "success", s.run_summary(EXACT_DAG, run_id)

    rows = assert_each_po_once(s)
    by_state = Counter(r["state"] for r in rows.values())
    assert by_state["posted"] >= 20, by_state
    # every order of both divisions is accounted for: sent, or parked with a reason a person can act on
    exact_ids = {po.id for div in s.exact.sandbox.store.divisions.values() for po in div.purchase_orders}
    assert exact_ids <= set(rows), f"orders missing from the ledger: {sorted(exact_ids - set(rows))[:5]}"
    for r in rows.values():
        if r["state"] != "posted":
            assert r["reason"], r
    jaggaer = jaggaer_demo(s)
    assert len(jaggaer["purchase_orders"]) == by_state["posted"] + by_state["cancelled"], (
        len(jaggaer["purchase_orders"]),
        by_state,
    )

    # the same again: nothing changed in Exact, so nothing is sent
    messages_before = len(jaggaer["po_messages"])
    run_id = s.trigger(EXACT_DAG, note="e2e: second push")
    assert s.wait_run(EXACT_DAG, run_id, timeout=150) == "success", s.run_summary(EXACT_DAG, run_id)
    assert len(jaggaer_demo(s)["po_messages"]) == messages_before
    assert ledger(s, PO_FLOW) == rows
    assert_each_po_once(s)


def test_invoice_poll_backfill_posts_each_approved_invoice_once(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any]
) -> None:
    s = airflow_stack
    s.wait_for_dags([JAGGAER_DAG])
    # The scheduled run of the last complete day starts by itself when the DAG appears: it must have worked too.
    s.wait_idle(JAGGAER_DAG)
    scheduled = s.dag_runs(JAGGAER_DAG, run_type=["scheduled"])
    assert scheduled, "no scheduled run of the last complete day"
    for r in scheduled:
        assert r["state"] == "success", s.run_summary(JAGGAER_DAG, r["dag_run_id"])
    before = exact_entries(s)
    assert max(entries_by_invoice(before).values(), default=0) <= 1

    # Two days well before yesterday (yesterday belongs to the scheduled run).
    today = datetime.now(ZoneInfo("Europe/London")).date()
    from_date = datetime.combine(today - timedelta(days=5), datetime.min.time(), UTC)
    to_date = from_date + timedelta(days=1, hours=12)
    body = {
        "dag_id": JAGGAER_DAG,
        "from_date": from_date.isoformat(),
        "to_date": to_date.isoformat(),
        "reprocess_behavior": "none",
        "max_active_runs": 2,
    }
    backfill = s.api_json("POST", "/api/v2/backfills", json=body)
    wait_backfill(s, backfill["id"])
    runs = backfill_runs(s, from_date, to_date)
    assert len(runs) == 2, [(r["dag_run_id"], r["state"]) for r in runs]
    for r in runs:
        assert r["state"] == "success", s.run_summary(JAGGAER_DAG, r["dag_run_id"])

    # What should have been read: every approved invoice updated in the runs' windows (plus the overlap before).
    overlap = timedelta(hours=6)
    start = min(parse_ts(r["data_interval_start"]) for r in runs) - overlap
    end = max(parse_ts(r["data_interval_end"]) for r in runs)
    invoices = s.jaggaer_admin("GET", "invoices", params={"tenant": TENANT})
    approved = {
        str(i["invoiceId"])
        for i in invoices
        if i["workflowStatus"] == "Completed"
        and i["paymentStatus"] in ("Payable", "Paid")
        and start <= parse_ts(i["lastUpdate"]) < end
    }
    assert len(approved) >= 3, f"the seed has too few approved invoices in {start}..{end} for this test"

    after = exact_entries(s)
    per_invoice = entries_by_invoice(after)
    twice = {k: n for k, n in per_invoice.items() if n > 1}
    assert not twice, f"invoices posted more than once: {twice}"
    rows = ledger(s, INVOICE_FLOW)
    missing = approved - set(rows)
    assert not missing, f"approved invoices of the window not in the ledger: {sorted(missing)}"
    posted = {i for i in approved if rows[i]["state"] == "posted"}
    assert posted, {i: rows[i]["state"] for i in approved}
    for i in approved:
        if i in posted:
            assert per_invoice[i] == 1, (i, rows[i])
        else:  # held (vendor not mapped), quarantined (bad data): never in Exact, and the reason says why
            assert per_invoice[i] == 0 and rows[i]["reason"], rows[i]
    new = entries_by_invoice(after) - entries_by_invoice(before)
    assert set(new) <= approved, f"the backfill posted invoices outside its window: {sorted(set(new) - approved)}"

    # The same dates again, completed runs included: nothing more reaches Exact.
    again = s.api_json("POST", "/api/v2/backfills", json={**body, "reprocess_behavior": "completed"})
    wait_backfill(s, again["id"])
    rerun = backfill_runs(s, from_date, to_date)
    assert [r["dag_run_id"] for r in rerun] == [r["dag_run_id"] for r in runs]
    for r in rerun:
        assert r["state"] == "success", s.run_summary(JAGGAER_DAG, r["dag_run_id"])
        assert parse_ts(r["end_date"]) > parse_ts(
            next(x for x in runs if x["dag_run_id"] == r["dag_run_id"])["end_date"]
        )
    assert entries_by_invoice(exact_entries(s)) == per_invoice
    assert len(exact_entries(s)) == len(after)
    assert {k: v["state"] for k, v in ledger(s, INVOICE_FLOW).items()} == {k: v["state"] for k, v in rows.items()}


def test_clear_failed_task_replays_without_duplicates(
    airflow_stack: AirflowStack, exact_connected: dict[str, Any]
) -> None:
    """JAGGAER creates the first new order but its answer is lost, then answers 500 to everything: the run goes
    red with both orders in ``posting``. With the fault gone, an operator clears the failed task (only failed):
    the run replays, ends green, and each order is in JAGGAER exactly once."""
    s = airflow_stack
    s.wait_idle(EXACT_DAG)
    rows = ledger(s, PO_FLOW)
    template = next(r for r in rows.values() if r["state"] == "posted" and r["division"] == 111111)
    supplier = s.exact.sandbox.store.divisions[111111].purchase_orders.get(template["source_id"]).supplier
    new_orders = [
        s.exact.create_po(
            division=111111,
            Supplier=supplier,
            Description=f"e2e replay order {n}",
            PurchaseOrderLines=[{"Quantity": 2 + n, "CostCenter": "CC100"}],
        )
        for n in range(2)
    ]
    new_ids = {o["PurchaseOrderID"] for o in new_orders}

    s.jaggaer_admin(
        "POST",
        "faults",
        json=[
            {"method": "POST", "path": "POXMLImport", "action": "drop_after_commit", "count": 1},
            {"method": "POST", "path": "POXMLImport", "action": "status", "status": 500, "count": None},
        ],
    )
    try:
        run_id = s.trigger(EXACT_DAG, note="e2e: JAGGAER failing")
        assert s.wait_run(EXACT_DAG, run_id, timeout=150) == "failed", s.run_summary(EXACT_DAG, run_id)
    finally:
        s.jaggaer_admin("DELETE", "faults")
    failed = sorted(ti["task_id"] for ti in s.task_instances(EXACT_DAG, run_id) if ti["state"] == "failed")
    assert failed, s.run_summary(EXACT_DAG, run_id)
    rows = ledger(s, PO_FLOW)
    assert {rows[i]["state"] for i in new_ids} == {"posting"}, [rows[i] for i in new_ids]
    created_while_failing = successful_creates(jaggaer_demo(s)["po_messages"])

    # What the operator does: clear the red task(s), only the failed ones.
    replayed_by_clearing_failed, first_replay = _clear_and_wait(s, run_id, {"only_failed": True}, expect=failed)
    if not replayed_by_clearing_failed:
        # Still check the exactly-once replay the way the report's own message suggests (post + downstream), so a
        # red result below is about *which task to clear*, not about duplicates.
        ok, second = _clear_and_wait(
            s,
            run_id,
            {"only_failed": False, "task_ids": ["division_111111.post"], "include_downstream": True},
            expect=["division_111111.post", "report"],
        )
        assert ok, second

    rows = assert_each_po_once(s)
    assert {rows[i]["state"] for i in new_ids} == {"posted"}, [rows[i] for i in new_ids]
    jaggaer = jaggaer_demo(s)
    numbers = {rows[i]["target_ref"] for i in new_ids}
    assert numbers <= set(jaggaer["purchase_orders"]), numbers
    creates = successful_creates(jaggaer["po_messages"])
    assert {n: creates[n] for n in numbers} == dict.fromkeys(numbers, 1), creates
    assert sum(created_while_failing[n] for n in numbers) == 1  # the dropped answer: created once, then recovered

    assert replayed_by_clearing_failed, (
        f"Clearing the failed task(s) {failed} with only_failed=True did not replay the orders left in 'posting' "
        f"(the run stayed red); clearing division_111111.post with its downstream did. First replay:\n{first_replay}"
    )


def _clear_and_wait(stack: AirflowStack, run_id: str, body: dict[str, Any], expect: list[str]) -> tuple[bool, str]:
    """``POST /clearTaskInstances`` for one run, wait until it is done again; ``(succeeded, run summary)``."""
    before = stack.dag_run(EXACT_DAG, run_id)["end_date"]
    cleared = stack.api_json(
        "POST",
        f"/api/v2/dags/{EXACT_DAG}/clearTaskInstances",
        json={"dry_run": False, "dag_run_id": run_id, "reset_dag_runs": True, **body},
    )
    assert set(expect) <= {ti["task_id"] for ti in cleared["task_instances"]}, cleared

    def finished_again() -> str | None:
        run = stack.dag_run(EXACT_DAG, run_id)
        done = run["state"] in ("success", "failed") and run["end_date"] and run["end_date"] != before
        return run["state"] if done else None

    state = stack.wait_for(f"cleared run {run_id} to finish again", finished_again, timeout=150)
    return state == "success", stack.run_summary(EXACT_DAG, run_id)
