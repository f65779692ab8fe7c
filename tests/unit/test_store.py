"""The connector database on SQLite and PostgreSQL: migrations, encryption at rest, ledger, audit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, text

from ml_connector.http import AuditEvent
from ml_connector.store import db, ledger
from ml_connector.store.audit import DbAuditSink, history
from ml_connector.store.cursors import get_cursor, set_cursor
from ml_connector.store.models import Base, LedgerEntry, StagedRecord, TokenRecord, VendorMap

TABLES = {t.name for t in Base.metadata.sorted_tables}


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migrations_apply_from_empty_and_reverse(db_url: str) -> None:
    db.migrate(db_url)
    engine = db.get_engine(db_url)
    assert TABLES <= _tables(engine)
    assert db.current_revision(db_url) == "0005"
    db.downgrade(db_url, "base")
    assert not (TABLES & _tables(engine))
    assert db.current_revision(db_url) is None
    db.migrate(db_url)  # and forward again
    assert TABLES <= _tables(engine)


def test_models_match_migrations(engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": db.VERSION_TABLE, "compare_type": False})
        assert compare_metadata(ctx, Base.metadata) == []


def test_postgres_tables_live_in_own_schema(pg_url: str) -> None:
    db.migrate(pg_url)
    engine = db.get_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ml_connector'")
        ).scalars()
        assert TABLES | {db.VERSION_TABLE} <= set(rows)


def test_encrypted_columns_hold_no_plaintext(engine) -> None:
    now = datetime.now(UTC)
    with db.session_scope(engine) as session:
        session.add(
            TokenRecord(
                tenant="demo",
                conn_id="exact_demo",
                access_token="ACCESS-SECRET-123",
                refresh_token="REFRESH-SECRET-456",
                access_issued_at=now,
            )
        )
        session.add(
            VendorMap(
                tenant="demo",
                division=111111,
                exact_code="1001",
                vat_number="GB999888777",
                coc_number="01234567",
                email="ap@supplier.example",
            )
        )
    with engine.connect() as conn:
        raw = [
            *conn.execute(text("SELECT access_token, refresh_token FROM mlc_token")).one(),
            *conn.execute(text("SELECT vat_number, coc_number, email FROM mlc_vendor_map")).one(),
        ]
    for stored, plain in zip(
        raw, ["ACCESS-SECRET-123", "REFRESH-SECRET-456", "GB999888777", "01234567", "ap@supplier.example"], strict=True
    ):
        assert plain not in stored
        assert stored.startswith("gAAAA")  # a Fernet token
    with db.session_scope(engine) as session:
        token = session.get(TokenRecord, ("demo", "exact_demo"))
        assert token.refresh_token == "REFRESH-SECRET-456"
        assert token.access_issued_at == now.replace(microsecond=token.access_issued_at.microsecond)


def test_ledger_exactly_once_lifecycle(engine) -> None:
    kw = dict(tenant="demo", flow="po_push", source_id="po-1", source_ref="PO 1", division=111111)
    with db.session_scope(engine) as session:
        assert ledger.stage(session, payload={"v": 1}, repost_changed=True, **kw) == "new"
        assert ledger.stage(session, payload={"v": 1}, repost_changed=True, **kw) == "unchanged"
    with db.session_scope(engine) as session:
        (entry,) = ledger.entries(session, "demo", "po_push")
        assert entry.state == "pending"
        assert ledger.staged_payload(session, entry) == {"v": 1}
    entry, was_posting = ledger.begin_post(engine, entry.id, "run-1")
    assert not was_posting
    # a worker killed here leaves the entry in 'posting': the next attempt must see the ambiguity
    entry, was_posting = ledger.begin_post(engine, entry.id, "run-2")
    assert was_posting and entry.attempts == 2
    ledger.finish(engine, entry.id, "posted", target_id="J-1", target_ref="111111-1", run_id="run-2")
    with db.session_scope(engine) as session:
        assert ledger.entries(session, "demo", "po_push") == []  # posted is not workable
        # a change to a posted PO makes it pending again (it goes as an update) ...
        assert ledger.stage(session, payload={"v": 2}, repost_changed=True, **kw) == "changed"
        assert ledger.get_entry(session, "demo", "po_push", "po-1").state == "pending"
    with db.session_scope(engine) as session:
        inv = dict(kw, flow="invoice_poll", source_id="inv-1")
        ledger.stage(session, payload={"v": 1}, repost_changed=False, **inv)
        entry = ledger.get_entry(session, "demo", "invoice_poll", "inv-1")
        ledger.transition(session, entry, "posted", target_id="E-1")
    with db.session_scope(engine) as session:
        # ... but an invoice edited after posting is never posted twice
        assert ledger.stage(session, payload={"v": 2}, repost_changed=False, **inv) == "changed"
        assert ledger.get_entry(session, "demo", "invoice_poll", "inv-1").state == "posted"
        assert ledger.counts(session, "demo", "invoice_poll")["posted"] == 1
    actions = [row.action for row in history(engine, "demo", "invoice_poll", "inv-1")]
    assert actions == ["staged", "state:posted", "changed_after_post"]


def test_requeue_and_unknown_state(engine) -> None:
    with db.session_scope(engine) as session:
        ledger.stage(session, tenant="t", flow="f", source_id="1", payload={}, repost_changed=True)
        entry = ledger.get_entry(session, "t", "f", "1")
        ledger.transition(session, entry, "quarantined", reason="GL account 7999 is blocked")
        with pytest.raises(ValueError, match="unknown ledger state"):
            ledger.transition(session, entry, "lost")
    assert ledger.requeue(engine, "t", "f", ["1"]) == 1
    with db.session_scope(engine) as session:
        assert session.scalar(select(LedgerEntry.state)) == "pending"


def test_audit_sink_appends_rows_and_cursor_round_trip(engine) -> None:
    sink = DbAuditSink(engine)
    for attempt in (1, 2):
        sink.record(
            AuditEvent(
                tenant="demo",
                flow="invoice_poll",
                action="post_purchase_entry",
                method="POST",
                url="http://x/api/v1/111111/purchaseentry/PurchaseEntries",
                status=500 if attempt == 1 else 201,
                outcome="ambiguous" if attempt == 1 else "ok",
                source_id="42",
                attempt=attempt,
            )
        )
    rows = history(engine, "demo", "invoice_poll", "42")
    assert [(r.http_status, r.attempt) for r in rows] == [(500, 1), (201, 2)]
    with db.session_scope(engine) as session:
        assert get_cursor(session, "demo", "po_push", "111111") is None
        set_cursor(session, "demo", "po_push", "111111", "1234")
    with db.session_scope(engine) as session:
        set_cursor(session, "demo", "po_push", "111111", "5678")
    with db.session_scope(engine) as session:
        assert get_cursor(session, "demo", "po_push", "111111") == "5678"


def test_sqlite_transactions_take_the_write_lock_first(tmp_path) -> None:
    """A read-then-write transaction (token refresh) must exclude others from its first statement."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'lock.db'}"
    db.migrate(url)
    engine = db.get_engine(url)
    with db.session_scope(engine) as session:
        session.execute(select(TokenRecord)).all()  # only a read so far
        other = sqlite3.connect(tmp_path / "lock.db", timeout=0.1, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_migration_0002_adds_and_removes_the_attempt_columns(db_url: str) -> None:
    def columns() -> set[str]:
        return {c["name"] for c in inspect(db.get_engine(db_url)).get_columns("mlc_ledger")}

    db.migrate(db_url, "0001")
    db.downgrade(db_url, "0001")  # (a shared database may already be at head)
    assert not {"attempt_division", "attempt_target"} & columns()
    db.migrate(db_url)
    assert {"attempt_division", "attempt_target"} <= columns()
    db.downgrade(db_url, "0001")
    assert not {"attempt_division", "attempt_target"} & columns()
    assert db.current_revision(db_url) == "0001"
    db.migrate(db_url)


def test_migration_0003_adds_and_removes_the_lease_table_claim_columns_and_target_ref_index(db_url: str) -> None:
    claim = {"claim_scope", "claim_generation", "claim_owner", "claimed_at"}

    def state() -> tuple[set[str], set[str], set[str]]:
        insp = inspect(db.get_engine(db_url))
        columns = {c["name"] for c in insp.get_columns("mlc_ledger")}
        indexes = {i["name"] for t in ("mlc_ledger", "mlc_audit_log") for i in insp.get_indexes(t)}
        return columns, indexes, set(insp.get_table_names())

    db.migrate(db_url, "0002")
    db.downgrade(db_url, "0002")  # (a shared database may already be at head)
    columns, indexes, tables = state()
    assert not claim & columns and "mlc_post_lease" not in tables
    assert not {"ix_ledger_target_ref", "ix_audit_run"} & indexes
    db.migrate(db_url)
    columns, indexes, tables = state()
    assert claim <= columns and "mlc_post_lease" in tables
    assert {"ix_ledger_target_ref", "ix_audit_run"} <= indexes
    db.downgrade(db_url, "0002")
    columns, indexes, tables = state()
    assert not claim & columns and "mlc_post_lease" not in tables
    assert not {"ix_ledger_target_ref", "ix_audit_run"} & indexes
    assert db.current_revision(db_url) == "0002"
    db.migrate(db_url)


def test_begin_post_starts_only_from_the_expected_state_and_version(engine) -> None:
    kw = dict(tenant="demo", flow="invoice_poll", source_id="inv-9", division=111111, repost_changed=False)
    with db.session_scope(engine) as session:
        ledger.stage(session, payload={"v": 1}, **kw)
        entry = ledger.get_entry(session, "demo", "invoice_poll", "inv-9")
        entry_id, first_hash = entry.id, entry.staged_hash
        ledger.transition(session, entry, "cancelled", reason="withdrawn in JAGGAER")
    with pytest.raises(ledger.StateChanged, match="'cancelled'"):
        ledger.begin_post(engine, entry_id, "run-1")
    with db.session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        assert (entry.state, entry.attempts) == ("cancelled", 0)  # untouched
        ledger.transition(session, entry, "pending")
        ledger.stage(session, payload={"v": 2}, **kw)  # a newer version arrives
    with pytest.raises(ledger.StateChanged, match="newer version"):
        ledger.begin_post(engine, entry_id, "run-1", staged_hash=first_hash)
    with pytest.raises(ledger.StateChanged):
        ledger.begin_post(engine, entry_id, "run-1", states=("posting",))

    target = {"supplier": "guid-1", "your_ref": "R-1"}
    entry, was_posting = ledger.begin_post(engine, entry_id, "run-1", target=target, division=111111)
    assert not was_posting and entry.attempts == 1
    assert (entry.attempt_division, entry.attempt_target) == (111111, target)
    with db.session_scope(engine) as session:
        # a change to a record in posting never resets it, nor forgets where the write went
        assert ledger.stage(session, payload={"v": 3}, **kw) == "changed"
        entry = session.get(LedgerEntry, entry_id)
        assert (entry.state, entry.attempt_target) == ("posting", target)
        assert ledger.unresolved(entry)
    ledger.finish(engine, entry_id, "pending", reason="not sent", clear_target=True)
    with db.session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        assert entry.attempt_target is None and entry.attempt_division is None
        assert ledger.unresolved(entry)  # a write was started and never recorded: still looked up first
    ledger.begin_post(engine, entry_id, "run-2", target=target, division=111111)
    ledger.finish(engine, entry_id, "posted", target_id="E-1")
    with db.session_scope(engine) as session:
        entry = session.get(LedgerEntry, entry_id)
        assert entry.attempt_target is None and not ledger.unresolved(entry)


@pytest.mark.parametrize("same_payload", [True, False], ids=["same-version", "other-version"])
def test_concurrent_extracts_stage_the_same_record_without_failing(engine, same_payload: bool) -> None:
    """Two transactions stage one new record at once: the second waits for the first and neither fails
    (select-then-insert raised IntegrityError on PostgreSQL)."""
    import threading

    kw = dict(tenant="demo", flow="invoice_poll", source_id="inv-race", division=111111, repost_changed=False)
    started, first_staged = threading.Barrier(2), threading.Event()
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.session_scope(engine) as session:
                started.wait(timeout=10)
                results["first"] = ledger.stage(session, payload={"v": 1}, run_id="run-a", **kw)
                first_staged.set()
                import time

                time.sleep(0.5)  # hold the transaction open while the second stages
        except BaseException as exc:
            errors.append(exc)
            first_staged.set()

    def second() -> None:
        try:
            started.wait(timeout=10)
            first_staged.wait(timeout=10)
            with db.session_scope(engine) as session:
                payload = {"v": 1} if same_payload else {"v": 2}
                results["second"] = ledger.stage(session, payload=payload, run_id="run-b", **kw)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert results == {"first": "new", "second": "unchanged" if same_payload else "changed"}
    with db.session_scope(engine) as session:
        [entry] = ledger.entries(session, "demo", "invoice_poll")
        assert entry.state == "pending"
        staged = session.scalars(select(StagedRecord.payload).where(StagedRecord.source_id == "inv-race")).all()
        assert sorted(p["v"] for p in staged) == ([1] if same_payload else [1, 2])
        assert ledger.staged_payload(session, entry) == ({"v": 1} if same_payload else {"v": 2})
