"""What every flow's DAG tasks share: the run context, fail-fast rules, outcome counting and the run report.

A task does three things: build a :class:`FlowContext` from Airflow's task context (:func:`build_context`), call a
stage function (plain Python, in ``flows/<flow>/``) inside :func:`fail_fast`, and return the stage's counts (XCom
carries counts and ids, never records or secrets). :func:`run_stage` does all three. The last task of a run calls
:func:`report`.

Failure and replay (both flows):

- a **post** task (``run_stage(..., fail_on_records=True)``) works through its whole batch, then *fails* with a
  retryable exception (``task_errors.RecordsNotDone``, an ``AirflowException``) when any record of this attempt ended
  ``failed`` or ``ambiguous``, after pushing its counts as its XCom ``return_value``. Airflow's retries (with
  backoff) therefore heal transient faults by themselves, and an operator who clears the failed task replays exactly
  the records still open: the ledger skips what is done and looks up what is ambiguous before sending again;
- **report** counts the stages' XComs (the latest attempt of each task) *and*, from the ledger, the records this
  run left ``failed`` or ``posting`` (``last_run_id`` = this run), so a record refused for good turns the run red
  even when a retry of its post task had nothing left to do. Records a person must handle from an earlier run do
  not make later runs red (they were alerted when they failed); ``held`` and ``quarantined`` are alerted, not red.

Stage functions take a ``FlowContext`` and never import Airflow, so tests call them directly with
:meth:`FlowContext.for_test`.

Run window (:func:`resolve_window`):

==========================================  =========================================================
run                                         window
==========================================  =========================================================
any run whose params name ``date_from``     ``[date_from 00:00, date_to + 1 day 00:00)`` UTC (``date_to``
                                            inclusive; missing ``date_to`` means up to now)
backfill (``run_type == "backfill"``)       the run's data interval
scheduled, flow reads by cursor (PO push)   ``None``: the stored cursor decides
scheduled, flow reads by interval           the run's data interval
manual without dates                        ``None`` for cursor flows; the data interval if it is a real
                                            interval (start < end) for interval flows, else ``None``
==========================================  =========================================================
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ml_connector.errors import ConfigError, RateBudgetExhausted, RejectedError, TokenChainBroken
from ml_connector.flows.run_states import qualify, run_states, states_table
from ml_connector.http import AuditContext, AuditSink, RetryPolicy
from ml_connector.task_errors import RecordsFailed, fail_now, records_failure, token_failure

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ml_connector.config.tenant import TenantConfig
    from ml_connector.store.lease import LeaseOwner, PostingLease

log = logging.getLogger(__name__)

FLOW_PO_PUSH = "po_push"
FLOW_INVOICE_POLL = "invoice_poll"

ScheduledWindow = Literal["cursor", "interval"]
Window = tuple[datetime, datetime]

#: The outcomes a run counts, in report order. Flows may count others; they are reported after these.
OUTCOMES = (
    "extracted",
    "posted",
    "updated",
    "cancelled",
    "unchanged",
    "quarantined",
    "held",
    "skipped",
    "ambiguous",
    "failed",
    "left_posting",
    "left_failed",
    "would_post",
)
#: Outcomes that make a post task fail (retried by Airflow) and the run red (report raises); alerted.
FAILING = ("failed", "ambiguous")
#: Ledger states a run may leave a record in that make it red, and the outcome ``report`` counts them as (only the
#: records whose ``last_run_id`` is this run: see :func:`left_open`).
LEFT_OPEN = {"posting": "left_posting", "failed": "left_failed"}
#: Outcomes alerted without failing the run (a person should look at them).
ATTENTION = ("quarantined", "held")
#: How many ids per outcome travel in XCom (ids are for the report; the ledger holds the full list).
MAX_IDS = 50


# --------------------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class RunParams:
    """The manual-trigger params every flow understands (see ``dagbuild.common.flow_params``)."""

    dry_run: bool = False
    date_from: date | None = None
    date_to: date | None = None
    ids: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> RunParams:
        """From Airflow's ``params`` (or a run conf). Dates may be ``date`` or ISO strings; ids a list or a
        comma-separated string. Raises ``ConfigError`` naming the bad param."""
        params = params or {}
        problems: list[str] = []

        def _date(name: str) -> date | None:
            value = params.get(name)
            if value in (None, ""):
                return None
            if isinstance(value, datetime):
                return value.date()
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value).strip()[:10])
            except ValueError:
                problems.append(f"param {name}: {value!r} is not a date (YYYY-MM-DD)")
                return None

        raw_ids = params.get("ids") or ()
        if isinstance(raw_ids, str):
            raw_ids = [p for p in raw_ids.replace(";", ",").split(",")]
        ids = tuple(str(i).strip() for i in raw_ids if str(i).strip())
        dry = params.get("dry_run", False)
        if isinstance(dry, str):
            dry = dry.strip().lower() in ("1", "true", "yes", "on")
        out = cls(dry_run=bool(dry), date_from=_date("date_from"), date_to=_date("date_to"), ids=ids)
        if out.date_to is not None and out.date_from is None:
            problems.append("param date_to needs date_from as well")
        if out.date_from and out.date_to and out.date_to < out.date_from:
            problems.append(f"param date_to ({out.date_to}) is before date_from ({out.date_from})")
        if problems:
            raise ConfigError(problems)
        return out

    @property
    def has_dates(self) -> bool:
        return self.date_from is not None


def resolve_window(
    *,
    run_type: str | None,
    params: RunParams,
    data_interval: tuple[datetime | None, datetime | None] = (None, None),
    scheduled: ScheduledWindow,
    now: datetime | None = None,
) -> Window | None:
    """The extraction window of a run (module docstring), or ``None`` when the flow's cursor decides."""
    if params.date_from is not None:
        start = datetime.combine(params.date_from, time(0), tzinfo=UTC)
        end = (
            datetime.combine(params.date_to + timedelta(days=1), time(0), tzinfo=UTC)
            if params.date_to is not None
            else (now or datetime.now(UTC))
        )
        return start, end
    start, end = data_interval
    interval = (_aware(start), _aware(end)) if start is not None and end is not None and start < end else None
    kind = run_type_name(run_type)
    if kind == "backfill":
        if interval is None:
            log.warning("backfill run without a usable data interval (%s, %s): falling back to the cursor", start, end)
        return interval
    if scheduled == "cursor":
        return None
    return interval


def run_type_name(run_type: Any) -> str:
    """``"backfill"``, ``"scheduled"``, ``"manual"``, … from a run type however it comes: a plain string, or an enum.

    Inside a task ``dag_run.run_type`` is the task SDK's ``DagRunType`` (a ``str`` Enum whose ``str()`` is
    ``"DagRunType.BACKFILL"``, not its value), so the enum's ``value`` is used when there is one, and a type that
    was already turned into such a string loses its ``DagRunType.`` prefix.
    """
    if run_type is None:
        return ""
    return str(getattr(run_type, "value", run_type)).strip().lower().rsplit(".", 1)[-1]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------------- context
HookFactory = Callable[["FlowContext"], Any]
_hook_factories: dict[str, HookFactory] = {}
_factory_lock = threading.Lock()


def set_hook_factory(kind: Literal["exact", "jaggaer"], factory: HookFactory | None) -> None:
    """Replace how ``FlowContext.exact_hook()``/``jaggaer_hook()`` build a hook (tests: a sped-up clock, short
    retry policy). ``None`` restores the default."""
    with _factory_lock:
        if factory is None:
            _hook_factories.pop(kind, None)
        else:
            _hook_factories[kind] = factory


def http_policy() -> RetryPolicy:
    """The HTTP retry policy of this deployment: defaults, overridable with ``MLC_HTTP_*`` env / ``[ml_connector]
    http_*`` settings (tests shorten the waits)."""
    from ml_connector.settings import get_setting

    def _f(name: str, default: float) -> float:
        raw = get_setting(f"http_{name}")
        try:
            return float(raw) if raw else default
        except ValueError:
            raise ConfigError(f"setting http_{name}: {raw!r} is not a number") from None

    base = RetryPolicy()
    return RetryPolicy(
        max_attempts=int(_f("max_attempts", base.max_attempts)),
        base_delay=_f("base_delay", base.base_delay),
        max_delay=_f("max_delay", base.max_delay),
        connect_timeout=_f("connect_timeout", base.connect_timeout),
        read_timeout=_f("read_timeout", base.read_timeout),
        max_429_wait=_f("max_429_wait", base.max_429_wait),
        max_429_retries=int(_f("max_429_retries", base.max_429_retries)),
    )


@dataclass
class FlowContext:
    """Everything a stage needs about the run it is part of."""

    tenant: TenantConfig
    flow: str
    engine: Engine
    audit: AuditSink
    run_id: str
    params: RunParams = field(default_factory=RunParams)
    window: Window | None = None
    run_type: str = "manual"
    division: int | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("ml_connector.flows"))
    #: who holds a posting lease taken by this context (``store.lease``): the Airflow task instance and try
    owner: LeaseOwner | None = None
    _hooks: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dry_run(self) -> bool:
        return self.params.dry_run

    def posting_lease(self, scope: str | int) -> PostingLease:
        """The posting lease of this tenant and flow for ``scope`` (an Exact division, or ``jaggaer``), owned by
        this task try (outside Airflow: this process)."""
        from ml_connector.store.lease import LeaseOwner, PostingLease

        owner = self.owner or LeaseOwner.local(self.run_id)
        return PostingLease(self.engine, self.tenant.name, self.flow, str(scope), owner, logger=self.logger)

    def audit_ctx(
        self,
        action: str,
        *,
        division: int | None = None,
        source_id: str | None = None,
        source_ref: str | None = None,
        target_ref: str | None = None,
    ) -> AuditContext:
        """The audit context of one write: tenant, flow, run id and division filled in."""
        return AuditContext(
            tenant=self.tenant.name,
            flow=self.flow,
            action=action,
            source_id=source_id,
            source_ref=source_ref,
            target_ref=target_ref,
            division=division if division is not None else self.division,
            run_id=self.run_id,
        )

    def exact_hook(self) -> Any:
        """The tenant's ``ExactOnlineHook`` (one per context; token store and audit on this run's engine)."""
        if "exact" not in self._hooks:
            factory = _hook_factories.get("exact") or _default_exact_hook
            self._hooks["exact"] = factory(self)
            from ml_connector.exact.daily_budget import bind

            bind(self._hooks["exact"], self)  # every call keeps this flow's share (docstring there)
        return self._hooks["exact"]

    def jaggaer_hook(self) -> Any:
        """The tenant's ``JaggaerHook`` (one per context)."""
        if "jaggaer" not in self._hooks:
            factory = _hook_factories.get("jaggaer") or _default_jaggaer_hook
            self._hooks["jaggaer"] = factory(self)
        return self._hooks["jaggaer"]

    def for_division(self, division: int) -> FlowContext:
        """The same run, narrowed to one Exact division (hooks are shared)."""
        return FlowContext(
            tenant=self.tenant,
            flow=self.flow,
            engine=self.engine,
            audit=self.audit,
            run_id=self.run_id,
            params=self.params,
            window=self.window,
            run_type=self.run_type,
            division=division,
            logger=self.logger,
            owner=self.owner,
            _hooks=self._hooks,
        )

    @classmethod
    def for_test(
        cls,
        tenant: TenantConfig,
        flow: str,
        engine: Engine,
        *,
        run_id: str = "test-run",
        params: RunParams | Mapping[str, Any] | None = None,
        window: Window | None = None,
        run_type: str = "manual",
        division: int | None = None,
        audit: AuditSink | None = None,
        scheduled: ScheduledWindow = "cursor",
    ) -> FlowContext:
        """A context outside Airflow (flow-level tests, the CLI). Window from params unless given."""
        from ml_connector.store.audit import DbAuditSink

        run_params = params if isinstance(params, RunParams) else RunParams.from_mapping(params)
        if window is None:
            window = resolve_window(run_type=run_type, params=run_params, scheduled=scheduled)
        return cls(
            tenant=tenant,
            flow=flow,
            engine=engine,
            audit=audit if audit is not None else DbAuditSink(engine),
            run_id=run_id,
            params=run_params,
            window=window,
            run_type=run_type_name(run_type) or "manual",  # normalised as build_context does
            division=division,
        )


def _default_exact_hook(ctx: FlowContext) -> Any:
    from ml_connector.exact.hook import ExactOnlineHook

    # on_broken is a no-op: fail_fast sends the one token-failure alert when TokenChainBroken reaches the task.
    return ExactOnlineHook(
        ctx.tenant.exact.conn_id,
        ctx.tenant.name,
        engine=ctx.engine,
        audit=ctx.audit,
        policy=http_policy(),
        on_broken=_no_alert,
    )


def _no_alert(exc: TokenChainBroken) -> None:
    log.warning("tenant %s: Exact token chain marked broken: %s", exc.tenant, exc.reason)


def _default_jaggaer_hook(ctx: FlowContext) -> Any:
    from ml_connector.jaggaer.hook import JaggaerHook

    return JaggaerHook(ctx.tenant.jaggaer.conn_id, ctx.tenant, audit=ctx.audit, policy=http_policy())


_tenant_cache: dict[tuple[str, float], dict[str, TenantConfig]] = {}


def load_tenant(name: str) -> TenantConfig:
    """One tenant from the tenant file (cached per file modification time). ``ConfigError`` if unknown."""
    from ml_connector.config.loader import load_tenants
    from ml_connector.settings import config_path

    path = config_path()
    try:
        key = (str(path), os.path.getmtime(path))
    except OSError:
        key = (str(path), 0.0)
    tenants = _tenant_cache.get(key)
    if tenants is None:
        tenants = load_tenants(path)
        _tenant_cache.clear()
        _tenant_cache[key] = tenants
    if name not in tenants:
        raise ConfigError(f"{path}: no tenant {name!r} (known: {', '.join(sorted(tenants))})")
    return tenants[name]


def build_context(
    context: Mapping[str, Any],
    tenant_name: str,
    flow: str,
    *,
    scheduled: ScheduledWindow,
    division: int | None = None,
    engine: Engine | None = None,
) -> FlowContext:
    """A ``FlowContext`` from Airflow's task context (``get_current_context()`` or the ``**context`` kwargs).

    Reads ``run_id``, ``dag_run.run_type``, ``params`` and the data interval; the connector database engine comes
    from ``MLC_DB_URL`` / the ``ml_connector_db`` connection unless given.
    """
    from ml_connector.store.audit import DbAuditSink
    from ml_connector.store.db import get_engine
    from ml_connector.store.lease import LeaseOwner

    tenant = load_tenant(tenant_name)
    dag_run = context.get("dag_run")
    run_type = run_type_name(getattr(dag_run, "run_type", None) or context.get("run_type")) or "manual"
    run_id = str(context.get("run_id") or getattr(dag_run, "run_id", None) or "unknown-run")
    params = RunParams.from_mapping(_plain_params(context.get("params")))
    interval = (
        context.get("data_interval_start") or getattr(dag_run, "data_interval_start", None),
        context.get("data_interval_end") or getattr(dag_run, "data_interval_end", None),
    )
    window = resolve_window(run_type=run_type, params=params, data_interval=interval, scheduled=scheduled)
    engine = engine or get_engine()
    ctx = FlowContext(
        tenant=tenant,
        flow=flow,
        engine=engine,
        audit=DbAuditSink(engine),
        run_id=run_id,
        params=params,
        window=window,
        run_type=run_type,
        division=division,
        logger=logging.getLogger(f"ml_connector.flows.{flow}"),
        owner=LeaseOwner.from_context(context, run_id),
    )
    ctx.logger.info(
        "tenant %s, flow %s, run %s (%s)%s: window %s, dry_run=%s, ids=%s",
        tenant.name,
        flow,
        run_id,
        run_type,
        f", division {division}" if division is not None else "",
        f"{window[0].isoformat()} .. {window[1].isoformat()}" if window else "cursor",
        params.dry_run,
        list(params.ids) or "all",
    )
    return ctx


def _plain_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if hasattr(params, "dump"):  # airflow.sdk ParamsDict
        try:
            return dict(params.dump())
        except Exception:  # pragma: no cover - defensive
            pass
    return {k: params[k] for k in params}


# --------------------------------------------------------------------------------------------------- fail fast
@contextmanager
def fail_fast(tenant: TenantConfig | None) -> Iterator[None]:
    """Turn the errors a retry cannot fix into an immediate task failure (``AirflowFailException``, no retries).

    - ``TokenChainBroken``: alert (``alerts.token_failure_alert``, once) and fail: the flow halts before posting and
      the message says how to reconnect Exact Online or, when JAGGAER refused its credentials (``exc.system ==
      "jaggaer"``), which Airflow connection to fix. The raised exception is also a ``TokenChainBroken`` with
      ``alerted`` set, so the task's failure callback does not alert again.
    - ``ConfigError``: fail with every problem listed.
    - ``RateBudgetExhausted``: fail naming when the daily budget resets (a retry before then only burns calls).
    - ``RejectedError`` (a request the server refused — Exact's 400/403/404, JAGGAER's returnCode — that reached the
      task instead of being settled per record): alert with the server's message and fail. A retry would send the
      same request and collect another error (Exact blocks apps that do); a person fixes the cause and clears.
    Anything else propagates unchanged (Airflow's retries apply to 429s, 5xx and network errors).
    """
    try:
        yield
    except TokenChainBroken as exc:
        if tenant is not None and not getattr(exc, "alerted", False):
            _send_token_alert(tenant, exc)
            exc.alerted = True  # type: ignore[attr-defined]
        raise token_failure(exc, _token_failure_text(exc)) from exc
    except ConfigError as exc:
        raise fail_now("Configuration problem:\n  " + "\n  ".join(exc.problems)) from exc
    except RateBudgetExhausted as exc:
        when = exc.reset_at.isoformat() if exc.reset_at else "the next daily reset (00:00 UTC)"
        raise fail_now(f"Exact daily rate budget exhausted; nothing more is sent before {when}. ({exc})") from exc
    except RejectedError as exc:
        text = (
            f"{exc} — the request was refused, so it is not retried (each refusal counts against Exact's error "
            "budget). Fix the cause, then clear the task to run it again."
        )
        if tenant is not None:
            send_alert(tenant, "a request was refused", text)
        raise fail_now(text) from exc


def _token_failure_text(exc: TokenChainBroken) -> str:
    if getattr(exc, "system", "exact") == "jaggaer":
        conn = getattr(exc, "conn_id", None)
        return f"JAGGAER refused the credentials of connection {conn!r}: {exc}" if conn else f"JAGGAER: {exc}"
    return f"Exact token chain broken: {exc}"


def _send_token_alert(tenant: TenantConfig, exc: TokenChainBroken) -> None:
    try:
        from ml_connector.alerts import token_failure_alert
    except ImportError:
        log.error("ALERT [%s] %s", tenant.name, _token_failure_text(exc))
        return
    try:
        token_failure_alert(tenant, exc)
    except Exception:  # an alert failure must not hide the token failure
        log.exception("could not send the token-failure alert for tenant %s", tenant.name)


def send_alert(tenant: TenantConfig, subject: str, body: str) -> None:
    """``alerts.send_alert`` that never raises (a broken alert channel is logged, the run's result stands)."""
    try:
        from ml_connector.alerts import send_alert as _send
    except ImportError:
        log.error("ALERT [%s] %s\n%s", tenant.name, subject, body)
        return
    try:
        _send(tenant, subject, body)
    except Exception:
        log.exception("could not send alert %r for tenant %s", subject, tenant.name)


# --------------------------------------------------------------------------------------------------- outcomes
@dataclass
class Outcomes:
    """Counts per outcome plus (a bounded list of) the record refs behind them. JSON-able for XCom."""

    counts: Counter[str] = field(default_factory=Counter)
    ids: dict[str, list[str]] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def add(self, outcome: str, ref: str | None = None, *, n: int = 1, detail: str | None = None) -> None:
        self.counts[outcome] += n
        if ref is not None:
            refs = self.ids.setdefault(outcome, [])
            if len(refs) < MAX_IDS:
                refs.append(str(ref))
        if detail:
            self.details.append(detail[:1000])

    def merge(self, other: Outcomes | Mapping[str, Any] | None) -> Outcomes:
        if other is None:
            return self
        if not isinstance(other, Outcomes):
            other = Outcomes.from_dict(other)
        self.counts.update(other.counts)
        for outcome, refs in other.ids.items():
            mine = self.ids.setdefault(outcome, [])
            mine.extend(refs[: max(0, MAX_IDS - len(mine))])
        self.details.extend(other.details)
        return self

    def __getitem__(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(o, 0) for o in FAILING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {k: v for k, v in self.counts.items() if v},
            "ids": {k: v for k, v in self.ids.items() if v},
            "details": self.details[:MAX_IDS],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Outcomes:
        data = data or {}
        counts = data.get("counts", data if all(isinstance(v, int) for v in data.values()) else {})
        return cls(
            counts=Counter({str(k): int(v) for k, v in dict(counts).items()}),
            ids={str(k): [str(x) for x in v] for k, v in dict(data.get("ids") or {}).items()},
            details=[str(d) for d in data.get("details") or []],
        )

    def table(self) -> str:
        ordered = [o for o in OUTCOMES if self.counts.get(o)] + sorted(
            o for o in self.counts if o not in OUTCOMES and self.counts[o]
        )
        if not ordered:
            return "  (nothing to do)"
        width = max(len(o) for o in ordered)
        lines = [f"  {'outcome'.ljust(width)}  count", f"  {'-' * width}  -----"]
        for o in ordered:
            refs = self.ids.get(o) or []
            more = f"  {', '.join(refs[:10])}{' ...' if len(refs) > 10 else ''}" if refs else ""
            lines.append(f"  {o.ljust(width)}  {self.counts[o]:>5}{more}")
        return "\n".join(lines)


def left_open(ctx: FlowContext, *, skip_refs: set[str] | frozenset[str] = frozenset()) -> Outcomes:
    """The records of this flow that **this run** (``ctx.run_id``) left in a failing ledger state, as outcomes
    ``left_posting`` (outcome still unknown: the next attempt looks them up before sending again) and
    ``left_failed`` (the target refused them: never resent as is; they come back when the source record changes
    or an admin requeues them).

    Only records whose ``last_run_id`` is this run count: every post stage writes its run id with each state change
    (``ledger.begin_post`` / ``finish`` / ``transition``), so a record refused in an earlier attempt of this run
    counts even when the latest attempt of the post task had nothing left to do, while records left by an earlier
    run and untouched since make no later run red. Details (the ledger's reason) are added for refs not in
    ``skip_refs`` (the ones the stages' XComs already explain).
    """
    from sqlalchemy import func, select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import LedgerEntry

    out = Outcomes()
    where = (
        LedgerEntry.tenant == ctx.tenant.name,
        LedgerEntry.flow == ctx.flow,
        LedgerEntry.state.in_(list(LEFT_OPEN)),
        LedgerEntry.last_run_id == ctx.run_id,
        *((LedgerEntry.division == ctx.division,) if ctx.division is not None else ()),
    )
    with session_scope(ctx.engine) as session:
        counts = dict(
            session.execute(select(LedgerEntry.state, func.count()).where(*where).group_by(LedgerEntry.state)).all()
        )
        for state, outcome in LEFT_OPEN.items():
            n = int(counts.get(state) or 0)
            if not n:
                continue
            out.counts[outcome] += n
            rows = session.execute(
                select(LedgerEntry.source_ref, LedgerEntry.source_id, LedgerEntry.division, LedgerEntry.reason)
                .where(*where, LedgerEntry.state == state)
                .order_by(LedgerEntry.id)
                .limit(MAX_IDS)
            ).all()
            for source_ref, source_id, division, reason in rows:
                ref = str(source_ref or source_id)
                out.ids.setdefault(outcome, []).append(qualify(division, ref))  # numbers repeat across divisions
                if ref in skip_refs or qualify(division, ref) in skip_refs:
                    continue
                prefix = f"[division {division}] " if division is not None else ""
                if state == "posting":
                    text = f"{ref}: left in posting (outcome unknown); the next attempt looks it up before resending"
                else:
                    text = f"{ref}: failed in this run: {reason or 'no reason recorded'}"
                out.details.append(f"{prefix}{text}"[:1000])
    return out


def report(
    ctx: FlowContext,
    outcomes: Outcomes | Mapping[str, Any],
    details: list[str] | None = None,
    *,
    problems: list[str] | None = None,
    raise_on_failure: bool = True,
    check_ledger: bool = True,
) -> dict[str, Any]:
    """Summarise a run: log a table, alert, and make the task red when anything failed.

    - ``outcomes``: the stages' counts (their XComs: the latest attempt of each task); with ``check_ledger`` the
      records this run left ``failed`` / ``posting`` in the ledger are added as ``left_failed`` / ``left_posting``
      (:func:`left_open`; not in a dry run);
    - logs the outcome table (and the details: quarantine reasons, rejection messages);
    - alerts (``alerts.send_alert``) when records failed or were left open, were quarantined or held, or
      ``problems`` (e.g. an upstream task that failed) are named;
    - returns the summary ``{"tenant", "flow", "run_id", "counts", "ids", "details", "problems", "note"}``; the
      DAG task returns it, so it is the task's XCom ``return_value``. **Airflow 3.3 gives a task no way to set its
      DAG run's note** (the Execution API's DagRun is read-only; only a *triggered* run can get a note), so the
      one-line ``note`` is in that XCom and in the log;
    - raises when records failed or were left open, or ``problems`` is non-empty (``AirflowFailException`` inside
      Airflow: no pointless retry of the report; the run shows red). The failed post task is red as well: clearing
      it (or the run) replays only the records still open: the ledger skips what is done.
    """
    outs = Outcomes().merge(outcomes)
    by_division: dict[str, dict[str, int]] = {}
    if check_ledger and not ctx.dry_run:
        explained = {ref for o in FAILING for ref in outs.ids.get(o, [])}
        outs.merge(left_open(ctx, skip_refs=explained))
        by_division = run_states(ctx)  # the counts that add up: each record this run changed, once
    all_details = list(outs.details) + list(details or [])
    problems = list(problems or [])
    where = f"{ctx.tenant.name}/{ctx.flow}" + (f"/division {ctx.division}" if ctx.division is not None else "")
    counts = {k: v for k, v in outs.counts.items() if v}
    note = f"{where}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to do")
    if problems:
        note += f"; {len(problems)} problem(s)"
    text = f"Run {ctx.run_id} ({where})\n{outs.table()}"
    if check_ledger and not ctx.dry_run:
        text += "\n" + states_table(by_division)
    if all_details:
        text += "\n  details:\n" + "\n".join(f"    - {d}" for d in all_details[:200])
    if problems:
        text += "\n  problems:\n" + "\n".join(f"    - {p}" for p in problems)
    ctx.logger.info("%s", text)

    failing = outs.failed
    left = sum(outs[o] for o in LEFT_OPEN.values())
    attention = {o: outs[o] for o in ATTENTION if outs[o]}
    if failing or left or attention or problems:
        parts = []
        if failing:
            parts.append(f"{failing} failed")
        if left:
            parts.append(f"{left} left open")
        parts += [f"{n} {o}" for o, n in attention.items()]
        if problems:
            parts.append(f"{len(problems)} problem(s)")
        subject = f"{where}: {', '.join(parts)}"  # send_alert prefixes "[ml-connector] <tenant>:"
        send_alert(ctx.tenant, subject, text)

    summary = {
        "tenant": ctx.tenant.name,
        "flow": ctx.flow,
        "division": ctx.division,
        "run_id": ctx.run_id,
        "dry_run": ctx.dry_run,
        "counts": counts,
        "by_division": by_division,
        "ids": {k: v for k, v in outs.ids.items() if v},
        "details": all_details[:MAX_IDS],
        "problems": problems,
        "note": note,
    }
    if raise_on_failure and (failing or left or problems):
        message = f"{note}. " + ("; ".join(problems + all_details[:5]))[:2000]
        raise fail_now(message, outside=RecordsFailed)
    return summary


# --------------------------------------------------------------------------------------------------- tasks
def records_not_done(outcomes: Outcomes | Mapping[str, Any], where: str, *, max_refs: int = 5) -> str | None:
    """The message a post task fails with when records of this attempt failed or were ambiguous (else ``None``):
    counts and the first few record refs per outcome; never a record's data, a server message or a secret."""
    outs = outcomes if isinstance(outcomes, Outcomes) else Outcomes.from_dict(outcomes)
    parts = []
    for outcome in FAILING:
        n = outs[outcome]
        if not n:
            continue
        refs = (outs.ids.get(outcome) or [])[:max_refs]
        more = f" and {n - len(refs)} more" if n > len(refs) else ""
        shown = f" ({', '.join(refs)}{more})" if refs else ""
        parts.append(f"{n} {outcome}{shown}")
    if not parts:
        return None
    return (
        f"{where}: {'; '.join(parts)}. The task fails so that Airflow retries it; once out of tries, clearing it "
        "replays only the records still open (the ledger skips what is done and looks up what is ambiguous first)."
    )


def _push_return_value(context: Mapping[str, Any], value: Mapping[str, Any]) -> None:
    """Push ``value`` as the task's XCom ``return_value`` although the task is about to raise (the report reads the
    latest attempt's counts from it; Airflow clears a task's XComs when its next attempt starts)."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return
    try:
        ti.xcom_push(key="return_value", value=dict(value))
    except Exception:  # the failure below stands; the report then names the task as not finished
        log.exception("could not push the counts of the failing attempt as XCom")


@contextmanager
def stage_context(
    context: Mapping[str, Any],
    tenant_name: str,
    flow: str,
    *,
    scheduled: ScheduledWindow,
    division: int | None = None,
) -> Iterator[FlowContext]:
    """The :class:`FlowContext` of a running task; connector errors raised in the ``with`` body (and while loading
    the tenant) become Airflow's, through :func:`fail_fast`. Every task body of both DAGs starts here."""
    with fail_fast(None):
        tenant = load_tenant(tenant_name)
    with fail_fast(tenant):
        yield build_context(context, tenant_name, flow, scheduled=scheduled, division=division)


def run_stage(
    context: Mapping[str, Any],
    tenant_name: str,
    flow: str,
    stage: Callable[[FlowContext], Outcomes | Mapping[str, Any] | None],
    *,
    scheduled: ScheduledWindow,
    division: int | None = None,
    fail_on_records: bool = False,
) -> dict[str, Any]:
    """Body of a stage task: context → ``stage(ctx)`` under :func:`fail_fast` → JSON-able counts for XCom.

    ``fail_on_records`` (the post stages): when any record of this attempt ended ``failed`` or ``ambiguous``, push
    the counts as the task's XCom and raise ``task_errors.RecordsNotDone`` (retryable) — see the module docstring.
    """
    with stage_context(context, tenant_name, flow, scheduled=scheduled, division=division) as ctx:
        result = stage(ctx)
    if result is None:
        return {}
    if not isinstance(result, Outcomes):
        value = dict(result)
    else:
        if division is not None:  # record numbers repeat across divisions: say where each id and detail comes from
            result.details = [d if d.startswith("[division") else f"[division {division}] {d}" for d in result.details]
            result.ids = {o: [qualify(division, r) for r in refs] for o, refs in result.ids.items()}
        value = result.to_dict()
    if fail_on_records:
        task_id = getattr(context.get("ti") or context.get("task_instance"), "task_id", None) or "stage"
        where = f"{tenant_name}/{flow} {task_id}" + (
            f" (division {division})" if division is not None and str(division) not in task_id else ""
        )
        message = records_not_done(result if isinstance(result, Outcomes) else value, where)
        if message is not None:
            _push_return_value(context, value)
            raise records_failure(message, value)
    return value
