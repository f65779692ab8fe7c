"""SQLAlchemy models of the connector's tables. Migrations in ``store/migrations`` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ml_connector.store.base import Base
from ml_connector.store.types import EncryptedText, JSONType, UTCDateTime, utcnow


class TokenRecord(Base):
    """One OAuth token chain per tenant and connection. Tokens are encrypted; refresh happens under a row lock."""

    __tablename__ = "mlc_token"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    conn_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    access_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refresh_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # ok | broken (a person must reconnect); reason says why, without secrets
    status: Mapped[str] = mapped_column(String(16), default="ok")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # bumped on every change, so readers can tell whether someone else refreshed meanwhile
    version: Mapped[int] = mapped_column(Integer, default=0)
    # a refresh in flight: set (and committed) before the token call, cleared when the new pair is stored
    refresh_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_calls_today: Mapped[int] = mapped_column(Integer, default=0)
    token_calls_day: Mapped[str | None] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """CSRF ``state`` values of consents started and not yet completed."""

    __tablename__ = "mlc_oauth_state"
    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    conn_id: Mapped[str] = mapped_column(String(250))
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VendorMap(Base):
    """A JAGGAER supplier linked to an Exact supplier account, per tenant (and Exact division).

    Identifiers that are business data (VAT and chamber-of-commerce numbers, e-mail) are encrypted; their blind
    indexes (``*_bidx``) make them searchable without storing them in clear.
    """

    __tablename__ = "mlc_vendor_map"
    __table_args__ = (
        UniqueConstraint("tenant", "division", "exact_account_id", name="uq_vendor_exact"),
        UniqueConstraint("tenant", "division", "jaggaer_supplier_id", name="uq_vendor_jaggaer"),
        Index("ix_vendor_vat", "tenant", "vat_bidx"),
        Index("ix_vendor_coc", "tenant", "coc_bidx"),
        Index("ix_vendor_codes", "tenant", "exact_code", "jaggaer_supplier_number"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    division: Mapped[int] = mapped_column(Integer)
    exact_account_id: Mapped[str | None] = mapped_column(String(36))
    exact_code: Mapped[str | None] = mapped_column(String(32))
    jaggaer_supplier_id: Mapped[str | None] = mapped_column(String(64))
    jaggaer_supplier_number: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    vat_number: Mapped[str | None] = mapped_column(EncryptedText)
    vat_bidx: Mapped[str | None] = mapped_column(String(64))
    coc_number: Mapped[str | None] = mapped_column(EncryptedText)
    coc_bidx: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(EncryptedText)
    # how the link was made: config | matched:<key> | created_in_exact | created_in_jaggaer | admin
    source: Mapped[str] = mapped_column(String(64), default="admin")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CodeMap(Base):
    """Admin-editable code mappings: kind is gl_account | cost_center | vat_code | business_unit | currency.

    A row maps a source value (e.g. a JAGGAER invoice type, a JAGGAER cost-centre code, a tax rate) to the Exact
    code to use; rows here override the tenant file's defaults.
    """

    __tablename__ = "mlc_code_map"
    __table_args__ = (UniqueConstraint("tenant", "kind", "source_value", name="uq_code_map"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    source_value: Mapped[str] = mapped_column(String(255))
    target_value: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StagedRecord(Base):
    """A record as extracted from its source, one row per distinct version (payload hash)."""

    __tablename__ = "mlc_staged_record"
    __table_args__ = (
        UniqueConstraint("tenant", "flow", "source_id", "payload_hash", name="uq_staged_version"),
        Index("ix_staged_source", "tenant", "flow", "source_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(64))
    payload_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    run_id: Mapped[str | None] = mapped_column(String(250))
    staged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """What has been done with each source record: the exactly-once ledger.

    state: pending | held | quarantined | posting | posted | failed | skipped | cancelled
    """

    __tablename__ = "mlc_ledger"
    __table_args__ = (
        UniqueConstraint("tenant", "flow", "source_id", name="uq_ledger_source"),
        Index("ix_ledger_state", "tenant", "flow", "state"),
        Index("ix_ledger_target_ref", "tenant", "flow", "target_ref"),  # PO push: who holds a PONumber
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(64))
    source_ref: Mapped[str | None] = mapped_column(String(128))
    division: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    staged_hash: Mapped[str | None] = mapped_column(String(64))
    posted_hash: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_ref: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Where the write whose outcome may still be unknown was sent (set by ``ledger.begin_post`` when the write goes
    # out, cleared when it is known to have created nothing or is posted): a search after an ambiguous outcome looks
    # there, even if the record's division or supplier changed since. ``attempt_target`` holds what identifies the write
    # at the target (e.g. supplier, your_ref, amount, entry_date); flows decide its keys.
    attempt_division: Mapped[int | None] = mapped_column(Integer)
    attempt_target: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The posting claim (``ledger.begin_post`` with a lease): which lease (scope and generation) and which owner
    # (the Airflow task instance and try, host, pid) marked this entry ``posting``. A claim whose lease is still live
    # is never taken over; an expired one is settled by a search in the target first (``store.lease``).
    claim_scope: Mapped[str | None] = mapped_column(String(64))
    claim_generation: Mapped[int | None] = mapped_column(Integer)
    claim_owner: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_id: Mapped[str | None] = mapped_column(String(250))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditLog(Base):
    """Append-only: one row per write attempt and per state change."""

    __tablename__ = "mlc_audit_log"
    __table_args__ = (
        Index("ix_audit_source", "tenant", "flow", "source_id"),
        Index("ix_audit_at", "at"),
        Index("ix_audit_run", "tenant", "flow", "run_id"),  # the post stage's breaker: this run's error answers
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tenant: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    division: Mapped[int | None] = mapped_column(Integer)
    source_id: Mapped[str | None] = mapped_column(String(64))
    source_ref: Mapped[str | None] = mapped_column(String(128))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_ref: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str | None] = mapped_column(String(8))
    url: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(250))
    attempt: Mapped[int] = mapped_column(Integer, default=1)


class Cursor(Base):
    """Where incremental extraction resumes (e.g. Exact sync Timestamp per division)."""

    __tablename__ = "mlc_cursor"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PostLease(Base):
    """Who may send for one tenant, flow and scope (an Exact division, or ``jaggaer`` for PO writes): ``store.lease``.

    ``generation`` is bumped whenever the lease changes hands; a post stage compares it, in the transaction that
    marks a record ``posting``, with the one it acquired (fencing), so a stage that lost its lease sends nothing more.
    """

    __tablename__ = "mlc_post_lease"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Reconciliation(Base):
    """One JAGGAER ⇄ Exact reconciliation of a tenant, division and period (``ml_connector.reconcile``): the
    counts per category and every row, kept so the console shows and downloads what the daily task found."""

    __tablename__ = "mlc_reconciliation"
    __table_args__ = (Index("ix_reconciliation_latest", "tenant", "division", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    division: Mapped[int] = mapped_column(Integer)
    date_from: Mapped[str] = mapped_column(String(10))  # ISO dates, both included
    date_to: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trigger: Mapped[str] = mapped_column(String(250))  # the Airflow run id, or who ran it (CLI, console)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)  # category -> rows
    off: Mapped[int] = mapped_column(Integer, default=0)  # rows in a category that is off (not matched)
    exact_calls: Mapped[int] = mapped_column(Integer, default=0)
    jaggaer_calls: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # the rows, columns reconcile.COLUMNS


# The webhook tables live in store.webhook_tables; importing them here registers them on Base.metadata.
from ml_connector.store import webhook_tables as _webhook_tables  # noqa: E402, F401
