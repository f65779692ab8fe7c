"""The run report's counts add up (issue 15): every record the run changed is counted once, per division, in the
state it ended in, and record ids are qualified by division."""

from __future__ import annotations

from typing import Any

from invoice_poll_support import DIV_MFG, DIV_SVC, World

from ml_connector.flows import runtime

GRAINGER = 59001  # JAGGAER-only vendor: no Exact supplier, so its invoice is held


def test_state_counts_per_division_add_up_to_what_was_extracted(
    sqlite_world: World, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setattr(runtime, "send_alert", lambda tenant, subject, body: None)
    w = sqlite_world
    w.invoice(supplier_invoice_number="OK-1", lines=[{"unit_price": "10.00"}])
    w.invoice(supplier_invoice_number="OK-2", lines=[{"unit_price": "12.00"}])
    held = w.invoice(supplier_id=GRAINGER, supplier_number=None, supplier_invoice_number="GR-1")
    w.invoice(
        supplier_invoice_number="CC900-1",
        lines=[{"unit_price": "10.00", "splits": [{"cost_centre": "CC900", "gl_account": "7000"}]}],
    )
    w.invoice(supplier_number="1002", business_unit="UK-SVC", supplier_invoice_number="SVC-1")
    with caplog.at_level("INFO", logger="ml_connector.flows"):
        summary = w.run(run_id="run-counts")

    by_division = summary["by_division"]
    assert by_division == {
        str(DIV_MFG): {"posted": 2, "held": 1, "quarantined": 1},
        str(DIV_SVC): {"posted": 1},
    }, by_division
    assert sum(sum(c.values()) for c in by_division.values()) == summary["counts"]["extracted"] == 5
    assert sum(c.get("posted", 0) for c in by_division.values()) == w.states()["posted"]

    # ids name their division: the held listing and the stage ids (111111/<invoice number>)
    number = held["summary"]["invoiceNumber"]
    assert any(f"{DIV_MFG}/{number}" in d for d in summary["details"] if d.startswith("held:")), summary["details"]
    table = "\n".join(r.getMessage() for r in caplog.records if "records this run changed" in r.getMessage())
    assert "records this run changed, by division and state now" in table
    row = next(line.split() for line in table.splitlines() if line.strip().startswith(str(DIV_MFG)))
    assert row[-1] == "4", table  # the division's total: 2 posted + 1 held + 1 quarantined

    # a second run over the same day changes nothing it did not touch: its table is empty, its counts agree
    again = w.run(run_id="run-counts-2")
    assert again["by_division"] in ({}, {str(DIV_MFG): {"held": 1}}), again["by_division"]
