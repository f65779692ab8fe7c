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
    lines = out.output.strip().splitlines()
    assert [line.split()[3] for line in lines] == ["staged", "state:quarantined", "state:pending"]


def test_bad_input_is_named(seeded) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["ledger", "list", "--tenant", "demo", "--flow", "invoices"])
    assert out.exit_code != 0
    assert "unknown flow 'invoices'" in out.output
    out = runner.invoke(app, ["audit", "--tenant", "demo", "--flow", "po_push", "nope"])
    assert out.exit_code == 1
