from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ml_connector.cli import app
from ml_connector.store import db, ledger


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MLC_DB_URL", url)
    db.migrate(url)
    engine = db.get_engine(url)
    with db.session_scope(engine) as session:
        for n in (1, 2):
            ledger.stage(
                session,
                tenant="demo",
                flow="invoice_poll",
                source_id=str(n),
                source_ref=f"I0000{n}",
                payload={"n": n},
                repost_changed=False,
            )
        entry = ledger.get_entry(session, "demo", "invoice_poll", "2")
        ledger.transition(session, entry, "quarantined", reason="GL account 7999 is blocked in Exact")
    return engine


def test_list_requeue_and_audit(seeded) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["ledger", "list", "--tenant", "demo", "--flow", "invoice_poll"])
    assert out.exit_code == 0, out.output
    assert "pending=1  quarantined=1" in out.output
    assert "GL account 7999 is blocked" in out.output

    out = runner.invoke(app, ["ledger", "requeue", "--tenant", "demo", "--flow", "invoice_poll", "2", "1"])
    assert out.exit_code == 0
    assert "requeued 1 of 2" in out.output  # '1' is pending already

    out = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "invoice_poll", "2"])
    assert out.exit_code == 0
    # the first line names the record by number and id (added for issue 15: the same identifiers everywhere)
    header, *lines = out.output.strip().splitlines()
    assert header == "invoice_poll record I00002 (id 2): pending, target -"
    assert [line.split()[3] for line in lines] == ["staged", "state:quarantined", "state:pending"]


def test_number_and_id_both_work(seeded) -> None:
    """Reports print the JAGGAER invoice number (I00002); audit, requeue and list take it as well as the id."""
    runner = CliRunner()
    by_number = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "invoice_poll", "I00002"])
    by_id = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "invoice_poll", "2"])
    assert by_number.exit_code == 0, by_number.output
    assert by_number.output == by_id.output and "I00002 (id 2)" in by_number.output

    out = runner.invoke(app, ["ledger", "list", "--tenant", "demo", "--flow", "invoice_poll", "-q", "i00002"])
    assert out.exit_code == 0, out.output
    assert "quarantined" in out.output and "I00002 (id 2)" in out.output and "I00001" not in out.output

    out = runner.invoke(app, ["ledger", "requeue", "--tenant", "demo", "--flow", "invoice_poll", "I00002"])
    assert out.exit_code == 0, out.output
    assert "requeued 1 of 1" in out.output and "I00002 (id 2): was quarantined" in out.output


def test_unknown_and_ambiguous_identifiers_get_a_hint(seeded) -> None:
    with db.session_scope(seeded) as session:
        for division, source_id in ((111111, "po-a"), (222222, "po-b")):
            ledger.stage(
                session,
                tenant="demo",
                flow="po_push",
                source_id=source_id,
                source_ref="1001",
                division=division,
                payload={"n": source_id},
                repost_changed=False,
            )
            entry = ledger.get_entry(session, "demo", "po_push", source_id)
            ledger.transition(session, entry, "failed", reason="JAGGAER refused it")
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "invoice_poll", "I09999"])
    assert out.exit_code == 1
    assert "no invoice_poll record of tenant 'demo' has 'I09999' as its id, number" in out.output

    out = runner.invoke(app, ["ledger", "requeue", "--tenant", "demo", "--flow", "po_push", "1001"])
    assert out.exit_code == 1
    assert "'1001' names 2 po_push records: po-a (1001, division 111111), po-b (1001, division 222222)" in out.output

    out = runner.invoke(app, ["ledger", "requeue", "--tenant", "demo", "--flow", "po_push", "222222/1001"])
    assert out.exit_code == 0, out.output
    assert "222222/1001 (id po-b): was failed" in out.output
    out = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "po_push", "111111/1001"])
    assert out.exit_code == 0 and "po_push record 111111/1001 (id po-a): failed" in out.output


def test_bad_input_is_named(seeded) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["ledger", "list", "--tenant", "demo", "--flow", "invoices"])
    assert out.exit_code != 0
    assert "unknown flow 'invoices'" in out.output
    out = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "po_push", "nope"])
    assert out.exit_code == 1


def test_resolve_by_hand_takes_a_number_and_needs_a_note(seeded) -> None:
    runner = CliRunner()
    args = ["ledger", "resolve", "--tenant", "demo", "--flow", "invoice_poll", "I00002"]
    assert runner.invoke(app, [*args, "--note", " "]).exit_code == 1
    out = runner.invoke(app, [*args, "--note", "keyed by hand in Exact as 2026-104"])
    assert out.exit_code == 0, out.output
    assert "I00002 (id 2): resolved by hand (skipped)" in out.output
    again = runner.invoke(app, [*args, "--note", "twice"])
    assert again.exit_code == 1 and "is skipped; only held, quarantined or failed" in again.output
    trail = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "invoice_poll", "2"]).output
    assert "state:skipped" in trail and "keyed by hand in Exact as 2026-104" in trail
