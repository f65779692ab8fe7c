"""The posting lease: at most one post stage sends for a tenant, flow and scope at a time, whatever Airflow does.

Airflow's pools keep posters apart only where they hold (``airflow dags test`` ignores them, a task declared a zombie
frees its slot while its process still runs, an operator can resize a pool), so the connector enforces exclusion
itself, with one row per ``(tenant, flow, scope)`` in ``mlc_post_lease``. The scope is the Exact division for the
invoice poll and ``jaggaer`` for the PO push (one tenant's JAGGAER PO writes).

- **acquire**: a post stage takes the lease when nobody holds it or the holder's lease expired; each change of hands
  bumps ``generation``. The owner is the Airflow task instance and try (dag, run, task, map index, try number) plus
  host and pid. A stage that finds the lease live waits (bounded: ``post_lease_wait_seconds``) and then gives up
  with :class:`LeaseBusy`, which names the holder: it ends without sending anything.
- **renew**: a heartbeat thread renews the lease every third of its time to live (``post_lease_seconds``) while the
  stage works, and every fenced check renews it too. A process that is frozen (SIGSTOP), partitioned from the
  database or stuck stops renewing, so its lease expires and another stage may take over.
- **fence**: :func:`ledger.begin_post` calls :meth:`PostingLease.fence` in the transaction that marks a record
  ``posting``: the lease row is read under lock and must still carry this stage's generation and not be expired, or
  :class:`LeaseLost` is raised and nothing is sent. Right before the request leaves, :meth:`PostingLease.check`
  verifies locally that the heartbeat has not noticed a loss and that the lease is not about to expire. A stage
  that lost its lease therefore sends nothing more after it resumes.
- The ``posting`` claim on the ledger entry records the lease (scope, generation) and owner; a claim whose lease is
  still live is never taken over (:func:`claim_is_live`); an expired claim is settled by a search in the target
  before anything is resent (the flows' "unresolved" path).

Clocks: expiry times are written with the writer's UTC clock; hosts are expected to be NTP-synchronised. Safety does
not rest on the clocks: whichever stage sees the generation change stops. Skew only changes how early a takeover can
happen, and the time to live (default 60 s) dwarfs any sane skew.

Residual window (documented in docs/invoice-poll.md): the instant between the last check and the request leaving the
socket. A process frozen exactly there, past its lease, while another stage settles and resends the record, would
send once more after it resumes. The target offers no fencing token, so no client-side scheme closes it entirely.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ml_connector.errors import ConfigError
from ml_connector.store.db import session_scope
from ml_connector.store.models import PostLease
from ml_connector.store.sql import insert_ignore

log = logging.getLogger(__name__)

#: Defaults (settings ``post_lease_seconds`` / ``post_lease_wait_seconds``, env ``MLC_POST_LEASE_SECONDS`` ...).
DEFAULT_TTL_S = 60.0
#: Longer than the time to live, so a poster that died (and stopped renewing) is taken over within the wait.
DEFAULT_WAIT_S = 90.0
#: :meth:`PostingLease.check` refuses to send when less than this share of the time to live is left.
SEND_MARGIN = 0.25
#: A fence inside a record's transaction renews the lease only when its last renewal is older than this share of
#: the time to live (the heartbeat renews it regardless).
FENCE_RENEW_AFTER = 0.25


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: the Airflow task instance and try, and the process."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1
    host: str = ""
    pid: int = 0

    @classmethod
    def from_context(cls, context: Any, run_id: str) -> LeaseOwner:
        """From Airflow's task context (``ti``), else a process-level owner (tests, the CLI)."""
        ti = (context.get("ti") or context.get("task_instance")) if hasattr(context, "get") else None
        return cls(
            dag_id=str(getattr(ti, "dag_id", None) or "-"),
            run_id=str(getattr(ti, "run_id", None) or run_id),
            task_id=str(getattr(ti, "task_id", None) or "-"),
            map_index=int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1),
            try_number=int(getattr(ti, "try_number", 1) or 1),
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    @classmethod
    def local(cls, run_id: str, task_id: str = "post") -> LeaseOwner:
        return cls(dag_id="-", run_id=run_id, task_id=task_id, host=socket.gethostname(), pid=os.getpid())

    def describe(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return (
            f"{self.dag_id} run {self.run_id} task {self.task_id}{index} try {self.try_number} "
            f"(host {self.host}, pid {self.pid})"
        )


class LeaseBusy(Exception):
    """Another live post stage holds the lease; this one waited ``waited`` seconds and sends nothing."""

    def __init__(self, scope: str, holder: str, expires_at: datetime | None, waited: float) -> None:
        self.scope = scope
        self.holder = holder
        self.expires_at = expires_at
        self.waited = waited
        until = expires_at.isoformat(timespec="seconds") if expires_at else "?"
        super().__init__(
            f"{scope} is busy: another post stage holds the posting lease ({holder}, renewed, expires {until}); "
            f"waited {waited:.0f}s and ended without sending anything. Its records are posted by that stage or by the "
            "next run; if that stage is stuck, its lease expires by itself once it stops renewing it"
        )


class LeaseLost(Exception):
    """This stage no longer holds its lease (it expired and another stage took over): it must send nothing more."""


class PostingLease:
    """One stage's hold on ``(tenant, flow, scope)``. Use as a context manager: acquire, heartbeat, release."""

    def __init__(
        self,
        engine: Engine,
        tenant: str,
        flow: str,
        scope: str,
        owner: LeaseOwner,
        *,
        ttl: float | None = None,
        wait: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.engine = engine
        self.tenant = tenant
        self.flow = flow
        self.scope = str(scope)
        self.owner = owner
        self.ttl = ttl if ttl is not None else lease_seconds()
        self.wait = wait if wait is not None else wait_seconds()
        self.log = logger or log
        self.generation: int | None = None
        self._valid_until = 0.0  # monotonic time until which the last renewal holds
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"tenant {self.tenant} {self.flow} {self.scope}"

    # -- acquire / release -------------------------------------------------------------------------------------
    def __enter__(self) -> PostingLease:
        self.acquire()
        self.start_heartbeat()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease, waiting at most ``wait`` seconds for a live holder to finish (:class:`LeaseBusy`)."""
        started = time.monotonic()
        pause = min(0.5, max(0.05, self.ttl / 10))
        while True:
            holder = self._try_acquire()
            if holder is None:
                self.log.info(
                    "%s: posting lease taken (generation %s, %s)", self.where, self.generation, self.owner.describe()
                )
                return
            waited = time.monotonic() - started
            if waited >= self.wait:
                raise LeaseBusy(self.where, holder[0], holder[1], waited)
            time.sleep(min(pause, max(0.0, self.wait - waited)))

    def _try_acquire(self) -> tuple[str, datetime | None] | None:
        """``None`` when taken; else ``(holder, expires_at)`` of the live holder."""
        try:
            return self._take()
        except OperationalError as exc:
            # the lease row is locked by a stage inside a transaction (e.g. frozen right there): busy for now
            self.log.warning("%s: lease row busy (%s)", self.where, str(exc).splitlines()[0][:200])
            return "a stage holding the lease row in an open transaction", None

    def _take(self) -> tuple[str, datetime | None] | None:
        mono = time.monotonic()
        now = _now()
        with session_scope(self.engine) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SET LOCAL lock_timeout = '2s'"))
            row = self._row(s)
            if row is None:
                insert_ignore(
                    s,
                    PostLease.__table__,  # type: ignore[arg-type]
                    {"tenant": self.tenant, "flow": self.flow, "scope": self.scope, "generation": 0},
                    ("tenant", "flow", "scope"),
                )
                row = self._row(s)
                assert row is not None
            expires = _aware(row.expires_at)
            mine = row.owner == self.owner.describe() and row.generation == self.generation
            if expires is not None and expires > now and row.owner and not mine:
                return row.owner, expires
            row.generation = (row.generation or 0) + 1
            row.owner = self.owner.describe()
            row.host = self.owner.host
            row.pid = self.owner.pid
            row.acquired_at = now
            row.renewed_at = now
            row.expires_at = now + timedelta(seconds=self.ttl)
            self.generation = row.generation
        self._valid_until = mono + self.ttl
        self._lost = None
        return None

    def release(self) -> None:
        """Stop the heartbeat and give the lease back (if still ours), so the next stage need not wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
            self._thread = None
        if self.generation is None:
            return
        try:
            with session_scope(self.engine) as s:
                row = self._row(s)
                if row is not None and row.generation == self.generation:
                    row.expires_at = _now()
                    row.renewed_at = _now()
        except Exception:  # the lease expires by itself; a release failure must not hide the stage's result
            self.log.exception("%s: could not release the posting lease (it expires by itself)", self.where)

    # -- renew / fence -----------------------------------------------------------------------------------------
    def _row(self, s: Session) -> PostLease | None:
        return s.scalar(
            select(PostLease)
            .where(PostLease.tenant == self.tenant, PostLease.flow == self.flow, PostLease.scope == self.scope)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def fence(self, s: Session, *, renew: bool = False) -> None:
        """In the caller's transaction: raise :class:`LeaseLost` unless the lease is still this stage's and live;
        renew it (the row stays locked until the caller commits, so no takeover can slip in before that). The
        renewal is written only when the last one is older than :data:`FENCE_RENEW_AFTER` of the time to live (or
        ``renew``): fencing every record of a batch need not write the lease row every time."""
        if self._lost:
            raise LeaseLost(self._lost)
        mono = time.monotonic()
        now = _now()
        row = self._row(s)
        expires = _aware(row.expires_at) if row is not None else None
        if row is None or row.generation != self.generation:
            holder = f"generation {row.generation} held by {row.owner}" if row is not None else "no lease row"
            self._lost = (
                f"{self.where}: posting lease lost (this stage had generation {self.generation}; now {holder}): "
                "nothing more is sent by this stage"
            )
            raise LeaseLost(self._lost)
        if expires is None or expires <= now:
            self._lost = (
                f"{self.where}: posting lease of generation {self.generation} expired at "
                f"{expires.isoformat() if expires else '?'} (this stage stopped renewing it: frozen or cut off "
                "from the database): nothing more is sent by this stage"
            )
            raise LeaseLost(self._lost)
        if not renew and self._valid_until - mono > self.ttl * (1 - FENCE_RENEW_AFTER):
            return  # renewed moments ago by this stage: the row's expiry is still most of a TTL away
        row.renewed_at = now
        row.expires_at = now + timedelta(seconds=self.ttl)
        self._valid_until = mono + self.ttl

    def renew(self) -> bool:
        """One renewal in its own transaction; False (and the lease marked lost) when it is no longer ours."""
        try:
            with session_scope(self.engine) as s:
                self.fence(s, renew=True)
            return True
        except LeaseLost as exc:
            self.log.error("%s", exc)
            return False

    def check(self) -> None:
        """Right before a request leaves: raise :class:`LeaseLost` when the heartbeat saw the lease lost, or when
        the last renewal is so old that the lease may expire while the request is on its way."""
        if self._lost:
            raise LeaseLost(self._lost)
        left = self._valid_until - time.monotonic()
        if left < self.ttl * SEND_MARGIN and not self.renew():
            raise LeaseLost(self._lost or f"{self.where}: posting lease lost")

    @property
    def lost(self) -> str | None:
        return self._lost

    def start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"mlc-lease-{self.scope}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        interval = max(0.05, self.ttl / 3)
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except Exception:  # the database is away: keep trying while the lease lasts; the fence decides
                self.log.warning("%s: could not renew the posting lease", self.where, exc_info=True)

    # -- claims ------------------------------------------------------------------------------------------------
    def claim_fields(self) -> dict[str, Any]:
        return {
            "claim_scope": self.scope,
            "claim_generation": self.generation,
            "claim_owner": self.owner.describe(),
            "claimed_at": _now(),
        }

    def owns_claim(self, entry: Any) -> bool:
        return entry.claim_scope == self.scope and entry.claim_generation == self.generation


def claim_is_live(s: Session, entry: Any) -> bool:
    """Whether the ``posting`` claim on ``entry`` belongs to a lease that is live now (its stage may still be sending:
    never take it over)."""
    if entry.claim_scope is None or entry.claim_generation is None:
        return False
    row = s.scalar(
        select(PostLease).where(
            PostLease.tenant == entry.tenant, PostLease.flow == entry.flow, PostLease.scope == entry.claim_scope
        )
    )
    if row is None or row.generation != entry.claim_generation:
        return False
    expires = _aware(row.expires_at)
    return expires is not None and expires > _now()


def _setting(name: str, default: float) -> float:
    from ml_connector.settings import get_setting

    raw = get_setting(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"setting {name}: {raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"setting {name}: {raw!r} must be more than 0 seconds")
    return value


def lease_seconds() -> float:
    return _setting("post_lease_seconds", DEFAULT_TTL_S)


def wait_seconds() -> float:
    return _setting("post_lease_wait_seconds", DEFAULT_WAIT_S)
