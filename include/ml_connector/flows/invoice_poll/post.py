"""Stage 4 — post (per division, under the division's pool): each valid invoice becomes one Exact purchase entry,
exactly once.

For every invoice, in ledger order (those left ``posting`` first), re-read from the ledger when its turn comes (a
concurrent extract may have cancelled or changed it since the batch was listed: such an invoice is skipped):

1. **an earlier write may have reached Exact** (the entry is ``posting``, or a write was started and never recorded
   as posted: ``ledger.unresolved``): Exact is searched *first*, in the division and for the supplier that write
   went to (kept on the ledger entry when it was sent: ``attempt_division`` / ``attempt_target``). Found ⇒
   ``posted``; an unclear match (below) ⇒ ``failed`` for a person to check; not there ⇒ go on. If the search cannot
   be made, or the current version of the invoice cannot be posted (unreadable, fails the checks), an entry in
   ``posting`` is left there (counted ``failed``): it never leaves ``posting`` without a search;
2. ``ledger.begin_post`` commits ``posting`` *before* the POST goes out, only if the entry is still in the state
   and version just read (else it is skipped), and keeps where the write goes;
3. ``POST purchaseentry/PurchaseEntries`` (one audit row per attempt: source = JAGGAER invoiceId and number);
4. success: ``ledger.finish(posted, target_id=EntryID, target_ref=EntryNumber)`` (with the POST's audit row: one
   commit);
5. Exact refused it (a validation error, HTTP 500 with Exact's body, or 400): ``quarantined`` with Exact's message
   — never sent again blindly (Exact blocks apps that collect errors); any other refusal (403, 404, 409, ...):
   ``failed``, not picked up again either (``POST_STATES``) until the invoice changes in JAGGAER or an admin
   requeues it;
6. outcome unknown (dropped connection, timeout, 5xx without a body): searched as in 1; not found ⇒ posted again
   (once in this run; else left ``posting``).

The search recognises our entry by ``ExternalLinkReference`` = ``JAGGAER:<invoiceId>`` (or, without one, by a
``Description`` starting with ``JAGGAER <invoiceNumber>``). An entry with that ``YourRef`` and supplier and no
external reference (keyed by hand) counts as the invoice only when its amount and entry date match the invoice's;
otherwise the invoice is ``failed`` with a reason asking a person to check — never posted, never silently marked
posted.

**Division circuit breaker.** Exact blocks an app that collects more than 10 errors an hour per division and
endpoint. A division-wide refusal (HTTP 401/403 — ``Reason`` ``DivisionBlocked``, ``NoDivisionAccess``,
``LicenseExpired``, ``BlockedUser``, … — or 404 on the endpoint) stops the division's batch for the rest of the
try of the post task: the invoice it came with is ``failed`` with Exact's answer (as any such refusal), the rest
stay as they are (``pending``), one alert is sent and the stop is counted ``failed`` (the task and the run are red)
and the invoices left ``not_sent``. Other error answers count too: after ``MAX_ERRORS_PER_RUN`` error answers in
one try the division's batch stops the same way. The count is the current try's only: once the cause is fixed,
clearing the failed post task (or Airflow's next retry) sends the invoices still open, and a later run does too.
Refusals across tries and runs stay bounded by Exact's hourly error budget (``exact.error_budget``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from ml_connector.errors import (
    AmbiguousWriteError,
    RateBudgetExhausted,
    RejectedError,
    TokenChainBroken,
    TransientError,
)
from ml_connector.exact import odata
from ml_connector.flows import budget_plan, runtime
from ml_connector.flows.invoice_poll.build import EntryInvalid, PlannedEntry, external_ref, plan_entry
from ml_connector.flows.invoice_poll.common import (
    CHECK_PREFIX,
    DATA_PREFIX,
    EXACT_PREFIX,
    FLOW,
    INVOICE_ENDPOINT,
    id_filter,
)
from ml_connector.flows.invoice_poll.invoice import InvoiceDataError, parse_invoice
from ml_connector.flows.invoice_poll.look import Lookup, look_up, since_for
from ml_connector.flows.invoice_poll.master import MasterData
from ml_connector.flows.runtime import FlowContext, Outcomes
from ml_connector.jaggaer import j1p
from ml_connector.mappings.codes import CodeRules
from ml_connector.mappings.vendors import JaggaerVendor, find_link
from ml_connector.store import ledger
from ml_connector.store.audit import deferred, take_deferred
from ml_connector.store.db import session_scope
from ml_connector.store.lease import LeaseBusy, LeaseLost, PostingLease
from ml_connector.store.models import AuditLog, LedgerEntry, StagedRecord

#: What post picks up: new and released invoices, and those an earlier attempt left ``posting`` (looked up in Exact
#: before anything is sent). Never ``failed``: Exact refused those (403, 404, 409, ...) and the same request would be
#: refused again, so they wait until the invoice changes in JAGGAER or an admin requeues them (invariant 5).
POST_STATES = ("posting", "pending")
SEARCH_SELECT = "EntryID,EntryNumber,YourRef,Supplier,ExternalLinkReference,Description,AmountFC,EntryDate"
#: Exact's answers that mean "this entry is wrong" (a validation error): quarantine, never resend as is.
VALIDATION_STATUSES = (400, 500)
#: Exact's answers that refuse the whole division (or app) rather than this entry: stop the division's batch.
DIVISION_WIDE_STATUSES = (401, 403, 404)
#: Error answers from Exact per division in one try of the post task after which posting stops (for that try).
MAX_ERRORS_PER_RUN = 3
#: Audit actions: the POST (written by the hook), a refused search, the breaker.
POST_ACTION = "post_purchase_entry"
SEARCH_ACTION = "search_purchase_entry"
STOP_ACTION = "division_stopped"
#: The reason of an invoice held because Exact holds a same-``YourRef`` entry that differs (look before posting).
LOOK_HELD_PREFIX = "possible duplicate in Exact: "
#: A hand-keyed entry's date may be stored as midnight in Exact's time zone: accept this far from UTC midnight.
_DATE_SLACK_S = 14 * 3600


class DivisionStopped(Exception):
    """The division's batch stops for this run (circuit breaker). ``current_done``: the invoice being worked on has
    its outcome already (e.g. ``failed`` with Exact's refusal); else it is left as it was, like the rest."""

    def __init__(self, reason: str, status: int | None = None, *, current_done: bool = False) -> None:
        self.reason = reason
        self.status = status
        self.current_done = current_done
        super().__init__(reason)


@dataclass(frozen=True)
class Target:
    """Where a write went (or goes): what a search after an ambiguous outcome looks for."""

    division: int
    supplier: str
    your_ref: str | None = None
    amount: str | None = None  # the entry's total (net + VAT) in the invoice currency
    entry_date: str | None = None  # ISO date
    invoice_number: str | None = None

    @classmethod
    def of(cls, planned: PlannedEntry) -> Target:
        return cls(
            division=planned.division,
            supplier=planned.supplier_id,
            your_ref=planned.your_ref,
            amount=str(planned.total),
            entry_date=planned.entry_date.isoformat(),
            invoice_number=planned.invoice_number,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "supplier": self.supplier,
            "your_ref": self.your_ref,
            "amount": self.amount,
            "entry_date": self.entry_date,
            "invoice_number": self.invoice_number,
        }


@dataclass(frozen=True)
class Match:
    """What a search found: ``ours`` (our reference), ``by_hand`` (keyed by hand, same amount and date) or
    ``unclear`` (keyed by hand, amount or date differ or cannot be compared)."""

    kind: str
    row: dict[str, Any]
    note: str = ""


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None and value != "" else None
    except (InvalidOperation, ValueError):
        return None


def _same_day(value: Any, day: str | None) -> bool:
    if not day:
        return False
    try:
        when = odata.parse_date(value)
        midnight = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        return False
    return when is not None and abs((when - midnight).total_seconds()) <= _DATE_SLACK_S


def _ours(row: Mapping[str, Any], ext_ref: str, invoice_number: str | None) -> bool:
    ext = (row.get("ExternalLinkReference") or "").strip()
    if ext:
        return ext == ext_ref
    if not invoice_number:
        return False
    description = str(row.get("Description") or "")
    prefix = f"JAGGAER {invoice_number}"
    return description == prefix or description.startswith(prefix + " ")


def find_entry(
    hook: Any,
    division: int,
    your_refs: list[str],
    supplier_id: str,
    ext_ref: str,
    *,
    invoice_number: str | None = None,
    amount: str | None = None,
    entry_date: str | None = None,
) -> Match | None:
    """The purchase entry of this invoice in Exact, if there is one (see the module docstring). Every ``YourRef``
    is looked at before a hand-keyed entry is accepted, so our own entry wins over one keyed by hand."""
    rows: list[dict[str, Any]] = []
    for your_ref in your_refs:
        flt = f"YourRef eq {odata.string(your_ref)} and Supplier eq {odata.guid(supplier_id)}"
        found = list(hook.iter_collection(division, INVOICE_ENDPOINT, select=SEARCH_SELECT, filter=flt))
        for row in found:
            if _ours(row, ext_ref, invoice_number):
                return Match("ours", row)
        rows += found
    return classify(rows, ext_ref, invoice_number=invoice_number, amount=amount, entry_date=entry_date)


def classify(
    rows: list[dict[str, Any]],
    ext_ref: str,
    *,
    invoice_number: str | None,
    amount: str | None,
    entry_date: str | None,
) -> Match | None:
    """Which of ``rows`` (entries of the invoice's supplier with one of its ``YourRef``) is this invoice: ours (our
    reference), keyed by hand with the same amount and date, or an unclear hand-keyed one (module docstring)."""
    for row in rows:
        if _ours(row, ext_ref, invoice_number):
            return Match("ours", row)
    by_hand = [r for r in rows if not (r.get("ExternalLinkReference") or "").strip()]
    if not by_hand:
        return None
    want = _amount(amount)
    for row in by_hand:
        if want is not None and _amount(row.get("AmountFC")) == want and _same_day(row.get("EntryDate"), entry_date):
            return Match("by_hand", row)
    row = by_hand[0]
    got_day = odata.parse_date(row.get("EntryDate")) if row.get("EntryDate") else None
    note = (
        f"Exact entry {row.get('EntryNumber')} (YourRef {row.get('YourRef')!r}, same supplier, no JAGGAER reference: "
        f"keyed by hand?) has amount {row.get('AmountFC')} and date {got_day.date() if got_day else '?'}; "
        f"this invoice: {amount or '?'} on {entry_date or '?'}"
    )
    return Match("unclear", row, note)


def _your_refs(ctx: FlowContext, source_id: str, first: list[str | None]) -> list[str]:
    """Every ``YourRef`` this invoice had (``first`` first): a version posted before an edit is found too."""
    refs: list[str] = []
    for ref in first:
        if ref and ref.strip() and ref.strip() not in refs:
            refs.append(ref.strip())
    with session_scope(ctx.engine) as s:
        for payload in s.scalars(
            select(StagedRecord.payload)
            .where(
                StagedRecord.tenant == ctx.tenant.name,
                StagedRecord.flow == FLOW,
                StagedRecord.source_id == source_id,
            )
            .order_by(StagedRecord.id)
        ):
            ref = ((payload or {}).get("header") or {}).get("supplierInvoiceNumber")
            if ref and str(ref).strip() not in refs:
                refs.append(str(ref).strip())
    return refs


def _vendor(payload: Mapping[str, Any]) -> JaggaerVendor:
    supplier = (payload.get("header") or {}).get("supplier") or {}
    return JaggaerVendor(
        id=str(supplier.get("id")),
        name=str(supplier.get("name") or ""),
        supplier_number=str(supplier["supplierNumber"]).strip() if supplier.get("supplierNumber") else None,
    )


def _released_after_hold(ctx: FlowContext, entry: LedgerEntry) -> bool:
    """Whether a person requeued this invoice after it was held as a possible duplicate (then it is posted without
    looking again: they decided the Exact entry is another invoice)."""
    if not (entry.reason or "").startswith("requeued by"):
        return False
    with session_scope(ctx.engine) as s:
        last_hold = s.scalar(
            select(AuditLog.message)
            .where(
                AuditLog.tenant == ctx.tenant.name,
                AuditLog.flow == FLOW,
                AuditLog.source_id == entry.source_id,
                AuditLog.action == "state:held",
            )
            .order_by(AuditLog.id.desc())
            .limit(1)
        )
    return bool(last_hold and last_hold.startswith(LOOK_HELD_PREFIX))


def _requeue_hint(ctx: FlowContext, source_id: str) -> str:
    return f"`mlc ledger requeue --tenant {ctx.tenant.name} --flow {FLOW} {source_id}`"


#: Invoices read ahead per transaction (entry, staged version, vendor link).
CHUNK = 500
#: An invoice as read for posting: the ledger entry (expunged), its staged payload, its vendor's Exact supplier.
Loaded = tuple[LedgerEntry, dict[str, Any], str | None]


class Poster:
    def __init__(
        self, ctx: FlowContext, division: int, master: MasterData | None, lease: PostingLease | None = None
    ) -> None:
        self.ctx = ctx
        self.division = division
        self._master = master
        self.lease = lease
        self.lookup: Lookup | None = None
        self.costs: dict[int, int] = {}  # calls each invoice needs (flows.budget_plan.entry_cost), by entry id
        self._accounts: dict[str, str | None] = {}  # JAGGAER vendor id -> Exact supplier (this run's links)
        self.out = Outcomes()
        with session_scope(ctx.engine) as s:
            self.rules = CodeRules.load(s, ctx.tenant)
        # the breaker counts this task try's error answers only: clearing the failed task (or Airflow's retry)
        # after the cause is gone replays the records still open; Exact's hourly error budget
        # (exact.error_budget, read from the audit log) still bounds refusals across tries and runs
        self.errors = 0

    @property
    def hook(self) -> Any:
        return self.ctx.exact_hook()

    def master(self) -> MasterData:
        if self._master is None:
            try:
                self._master = MasterData.load(self.hook, self.division)
            except RejectedError as exc:
                self._refused(exc, what="reading its master data")
                raise
        return self._master

    # -- the batch -----------------------------------------------------------------------------------------------
    def run(self, chunks: Iterable[list[int]], total: int) -> None:
        """Post the batch: ``chunks`` of entry ids (those left ``posting`` first, then the new ones), ``total`` of
        them (for the ``not_sent`` count when the batch stops early). What does not fit the day's Exact share is left
        for the next run (``flows.budget_plan``)."""
        plan = budget_plan.PostPlan(self.ctx, self.division, self.costs)  # post what fits the day's Exact share
        done = 0
        batches = iter(chunks)
        for ids in batches:
            ahead: dict[int, Loaded] | None = None
            for k, entry_id in enumerate(ids):

                def rest(ids: list[int] = ids, k: int = k) -> list[int]:
                    """This invoice and every one after it (the stream is read to its end: the batch stops)."""
                    return ids[k:] + [i for chunk in batches for i in chunk]

                try:
                    if self.errors >= MAX_ERRORS_PER_RUN:
                        raise DivisionStopped(
                            f"{self.errors} error answers from Exact for division {self.division} in this try"
                        )
                    if self.lease is not None:
                        self.lease.check()  # a stage that was frozen past its lease stops here, before reading on
                    if ahead is None:
                        ahead = self._load_chunk(ids)  # the chunk's invoices in one transaction
                        self.costs.update(
                            {i: budget_plan.entry_cost(e, ledger.unresolved(e)) for i, (e, _, _) in ahead.items()}
                        )
                    if self.lookup is None:
                        if plan.stops(self.out, entry_id, total - done, rest, before=1):
                            return
                        try:
                            self.lookup = self._look_up()
                        except RejectedError as exc:  # not division-wide (that stops above): post nothing unlooked
                            reason = f"could not look for the batch's invoices in Exact before posting: {exc}"
                            self.out.add(
                                "failed", f"division {self.division}", detail=f"division {self.division}: {reason}"
                            )
                            self.out.add("not_sent", n=total - done)
                            return
                    if plan.stops(self.out, entry_id, total - done, rest):
                        return
                    self.post_one(entry_id, ahead.pop(entry_id, None))
                    done += 1
                except RateBudgetExhausted as spent:
                    # what is left is kept for others (or Exact's cap is reached): this invoice and the rest wait
                    plan.leave(self.out, rest(), spent)
                    return
                except DivisionStopped as stop:
                    self._stop(stop, total - done - (1 if stop.current_done else 0))
                    return
                except LeaseLost as lost:
                    # another post stage took this division over (this one stopped renewing: frozen, cut off):
                    # it sends nothing more; the records are that stage's now
                    self.ctx.logger.error("%s", lost)
                    self.out.add("lease_lost", f"division {self.division}", detail=str(lost))
                    self.out.add("not_sent", n=total - done)
                    return

    # -- look before the first POST ------------------------------------------------------------------------------
    def _look_up(self) -> Lookup:
        """Read, in one paged request, the Exact entries of the suppliers of the batch's new invoices (``look``): the
        division's ``pending`` invoices, read :data:`CHUNK` at a time (only their suppliers and earliest date are
        kept)."""
        suppliers: set[str] = set()
        since_day: date | None = None
        accounts = self._accounts
        ctx = self.ctx
        for chunk in ledger.iter_id_chunks(
            ctx.engine, ctx.tenant.name, FLOW, states=("pending",), division=self.division, source_ids=id_filter(ctx)
        ):
            with session_scope(self.ctx.engine) as s:
                for entry, header in ledger.entries_with_payloads(
                    s, self.ctx.tenant.name, FLOW, states=("pending",), ids=chunk, part="header"
                ):
                    if ledger.unresolved(entry):
                        continue
                    vendor = _vendor({"header": header})
                    if vendor.id not in accounts:
                        link = find_link(s, self.ctx.tenant.name, self.division, vendor)
                        accounts[vendor.id] = link.exact_account_id if link is not None else None
                    try:
                        day = j1p.parse_date(header.get("invoiceDate"))
                    except ValueError:
                        day = None
                    if accounts[vendor.id] and day is not None and header.get("supplierInvoiceNumber"):
                        suppliers.add(str(accounts[vendor.id]))
                        since_day = day if since_day is None else min(since_day, day)
        since = since_for([since_day] if since_day is not None else [])
        if not suppliers or since is None:
            return Lookup()
        try:
            found = look_up(self.hook, self.division, suppliers, since)
        except RejectedError as exc:
            self._refused(exc, what="looking for the batch's invoices in Exact")
            raise
        self.ctx.logger.info("division %s: %s", self.division, found.describe())
        return found

    def _looked(self, entry: LedgerEntry, planned: PlannedEntry, number: str, released: bool) -> bool:
        """A new invoice compared with the entries read before the batch: True when it is settled here (already in
        Exact: recorded ``posted`` naming the entry; a same-``YourRef`` entry that differs: ``held``). ``released``:
        a person requeued it after a duplicate hold (:func:`_released_after_hold`): not compared."""
        if self.lookup is None or released:
            return False
        rows = self.lookup.candidates(planned.supplier_id, planned.your_ref)
        if not rows:
            return False
        match = classify(
            rows,
            planned.external_ref,
            invoice_number=planned.invoice_number,
            amount=str(planned.total),
            entry_date=planned.entry_date.isoformat(),
        )
        if match is None:
            return False
        if match.kind in ("ours", "by_hand"):
            row = match.row
            how = (
                f"already in Exact: entry {row.get('EntryNumber')} (EntryID {row.get('EntryID')}) "
                + (
                    "carries this invoice's JAGGAER reference"
                    if match.kind == "ours"
                    else "was keyed by hand with the same supplier, YourRef, amount and date"
                )
                + "; not posted"
            )
            recorded = ledger.finish(
                self.ctx.engine,
                entry.id,
                "posted",
                reason=how,
                target_id=str(row.get("EntryID")),
                target_ref=str(row.get("EntryNumber")) if row.get("EntryNumber") is not None else None,
                run_id=self.ctx.run_id,
                lease=self.lease,
                expect_state="pending",
                expect_hash=entry.staged_hash,
                audit_events=take_deferred(self.ctx.audit),
            )
            if recorded:
                self.out.add("found_in_exact", number, detail=f"invoice {number}: {how}")
            return True
        reason = (
            f"{LOOK_HELD_PREFIX}{match.note}. Not posted. If that entry is this invoice, correct it in Exact (amount "
            "and date) and the next run records the invoice as already in Exact; if it is another invoice, post this "
            f"one anyway with {_requeue_hint(self.ctx, entry.source_id)} (a requeue after this hold posts without "
            "looking again)"
        )
        with session_scope(self.ctx.engine) as s:
            current = s.get(LedgerEntry, entry.id, with_for_update=True)
            if current is None or current.state != entry.state or current.staged_hash != entry.staged_hash:
                return True  # changed meanwhile: the next run looks again
            ledger.transition(s, current, "held", reason=reason, run_id=self.ctx.run_id)
        self.out.add("held", number, detail=f"invoice {number}: {reason}")
        return True

    def _stop(self, stop: DivisionStopped, left: int) -> None:
        ctx = self.ctx
        reason = (
            f"posting to Exact division {self.division} stopped for this try: {stop.reason}. Exact blocks apps "
            "that collect errors, so nothing more is sent to this division in this try. Fix the cause, then clear "
            "the failed post task (Clear -> only failed): it sends the invoices still open; so does the next run"
        )
        with session_scope(ctx.engine) as s:
            s.add(
                AuditLog(
                    tenant=ctx.tenant.name,
                    flow=FLOW,
                    action=STOP_ACTION,
                    division=self.division,
                    http_status=stop.status,
                    outcome="stopped",
                    message=reason[:4000],
                    run_id=ctx.run_id,
                    attempt=1,
                )
            )
        self._count_stop(reason, left)
        runtime.send_alert(
            ctx.tenant,
            f"{ctx.tenant.name}/{FLOW}/division {self.division}: posting stopped, Exact refused",
            f"Run {ctx.run_id}: {reason}.\n{left} invoice(s) of division {self.division} were left waiting "
            "(pending); once the cause is fixed (e.g. division access or licence in Exact, or the app's blocked "
            "status), clearing the failed post task posts them, and so does the next run.",
        )

    def _count_stop(self, reason: str, left: int) -> None:
        self.out.add("failed", f"division {self.division}", detail=f"division {self.division}: {reason}")
        if left:
            self.out.add("not_sent", n=left)

    # -- one invoice ---------------------------------------------------------------------------------------------
    def _load(self, entry_id: int) -> tuple[LedgerEntry, dict[str, Any], str | None] | None:
        """The entry as it is now (expunged), its newest staged version and its vendor's Exact account."""
        with session_scope(self.ctx.engine) as s:
            entry = s.get(LedgerEntry, entry_id)
            if entry is None:
                return None
            payload = ledger.staged_payload(s, entry)
            link = find_link(s, self.ctx.tenant.name, self.division, _vendor(payload))
            s.expunge(entry)
            return entry, payload, (link.exact_account_id if link is not None else None)

    def found(self, entry_id: int, number: str, match: Match, how: str, *, expect_state: str | None = None) -> None:
        row = match.row
        target_ref = str(row.get("EntryNumber")) if row.get("EntryNumber") is not None else None
        if match.kind == "by_hand":
            how += " (an entry keyed by hand with the same YourRef, supplier, amount and date)"
        if ledger.finish(
            self.ctx.engine,
            entry_id,
            "posted",
            reason=how,
            target_id=str(row.get("EntryID")),
            target_ref=target_ref,
            run_id=self.ctx.run_id,
            lease=self.lease,
            audit_events=take_deferred(self.ctx.audit),
            expect_state=expect_state,
        ):
            self.out.add("posted", number, detail=f"invoice {number}: {how} (entry {target_ref})")

    def unclear(
        self, entry_id: int, source_id: str, number: str, match: Match, *, expect_state: str | None = None
    ) -> None:
        reason = (
            f"an earlier attempt's outcome is unknown and Exact holds an entry that may be this invoice: "
            f"{match.note}. Not posted again and not marked posted: check in Exact whether that entry is this "
            f"invoice (if it is, nothing needs posting; if not, post it by hand or correct the Exact entry, then "
            f"{_requeue_hint(self.ctx, source_id)})"
        )
        if ledger.finish(
            self.ctx.engine,
            entry_id,
            "failed",
            reason=reason,
            run_id=self.ctx.run_id,
            lease=self.lease,
            audit_events=take_deferred(self.ctx.audit),
            expect_state=expect_state,
        ):
            self.out.add("failed", number, detail=f"invoice {number}: {reason}")

    def search(self, entry: LedgerEntry, target: Target, number: str) -> Match | None:
        refs = _your_refs(self.ctx, entry.source_id, [target.your_ref])
        try:
            return find_entry(
                self.hook,
                target.division,
                refs,
                target.supplier,
                external_ref(entry.source_id),
                invoice_number=target.invoice_number or entry.source_ref,
                amount=target.amount,
                entry_date=target.entry_date,
            )
        except RejectedError as exc:
            self._audit_search_error(entry, target.division, number, exc)
            self._refused(exc, what="looking up an invoice")
            raise

    def _audit_search_error(self, entry: LedgerEntry, division: int, number: str, exc: RejectedError) -> None:
        with session_scope(self.ctx.engine) as s:
            s.add(
                AuditLog(
                    tenant=self.ctx.tenant.name,
                    flow=FLOW,
                    action=SEARCH_ACTION,
                    division=division,
                    source_id=entry.source_id,
                    source_ref=number,
                    method="GET",
                    url=INVOICE_ENDPOINT,
                    http_status=exc.status,
                    outcome="rejected",
                    message=exc.message[:4000],
                    run_id=self.ctx.run_id,
                    attempt=max(entry.attempts, 1),
                )
            )

    def _refused(self, exc: RejectedError, *, what: str, current_done: bool = False) -> None:
        """Count an error answer; a division-wide one stops the batch (raises :class:`DivisionStopped`)."""
        self.errors += 1
        if exc.status in DIVISION_WIDE_STATUSES:
            raise DivisionStopped(
                f"Exact refused division {self.division} while {what} (HTTP {exc.status}: {exc.message})",
                exc.status,
                current_done=current_done,
            ) from exc

    def _target(self, entry: LedgerEntry, planned: PlannedEntry | None, account: str | None) -> Target | None:
        """Where an earlier write went: as kept when it was sent, else (entries from before that was kept) where
        this version would go."""
        kept = entry.attempt_target or {}
        if kept.get("supplier"):
            division = entry.attempt_division if entry.attempt_division is not None else self.division
            return Target(
                division=int(division),
                supplier=str(kept["supplier"]),
                your_ref=kept.get("your_ref"),
                amount=kept.get("amount"),
                entry_date=kept.get("entry_date"),
                invoice_number=kept.get("invoice_number"),
            )
        if planned is not None:
            return Target.of(planned)
        if account:
            return Target(division=self.division, supplier=account, invoice_number=entry.source_ref)
        return None

    def _load_chunk(self, entry_ids: list[int]) -> dict[int, Loaded]:
        """:meth:`_load` for up to :data:`CHUNK` invoices in one transaction (links looked up once per vendor).
        Read ahead of their turn: every decision taken from them is guarded by the state and version read here
        (``ledger.begin_post`` / ``finish(expect_state=, expect_hash=)``)."""
        out: dict[int, Loaded] = {}
        with session_scope(self.ctx.engine) as s:
            rows = ledger.entries_with_payloads(s, self.ctx.tenant.name, FLOW, states=ledger.STATES, ids=entry_ids)
            for entry, payload in rows:
                vendor = _vendor(payload)
                if vendor.id not in self._accounts:
                    link = find_link(s, self.ctx.tenant.name, self.division, vendor)
                    self._accounts[vendor.id] = link.exact_account_id if link is not None else None
                s.expunge(entry)
                out[entry.id] = (entry, payload, self._accounts[vendor.id])
        return out

    def post_one(self, entry_id: int, loaded: Loaded | None = None) -> None:
        ctx = self.ctx
        if loaded is None:
            loaded = self._load(entry_id)
        if loaded is None:
            return
        entry, payload, account = loaded
        source_id = entry.source_id
        number = entry.source_ref or source_id
        if entry.state not in POST_STATES or entry.division != self.division:
            ctx.logger.info(
                "invoice %s: now %s in division %s (changed since the batch was listed); skipped",
                number,
                entry.state,
                entry.division,
            )
            return

        planned: PlannedEntry | None = None
        problem: str | None = None
        try:
            invoice = parse_invoice(payload)
            number = invoice.invoice_number
            if account:
                planned = plan_entry(
                    invoice, division=self.division, supplier_id=account, rules=self.rules, master=self.master()
                )
        except InvoiceDataError as exc:
            problem = f"{DATA_PREFIX}{exc}"
        except EntryInvalid as exc:
            problem = f"{CHECK_PREFIX}{exc}"

        searched = False
        if ledger.unresolved(entry):
            # an earlier write may have reached Exact: look where it went before anything else
            target = self._target(entry, planned, account)
            if target is None:
                ctx.logger.warning(
                    "invoice %s: an earlier attempt's outcome is unknown and its vendor is not mapped; left %s",
                    number,
                    entry.state,
                )
                return
            try:
                match = self.search(entry, target, number)
            except RejectedError as exc:
                self.out.add(
                    "failed",
                    number,
                    detail=f"invoice {number}: could not look it up in Exact ({exc}); left {entry.state}",
                )
                return
            searched = True
            if match is not None and match.kind in ("ours", "by_hand"):
                self.found(
                    entry_id, number, match, "found in Exact after an interrupted attempt", expect_state=entry.state
                )
                return
            if match is not None:
                self.unclear(entry_id, source_id, number, match, expect_state=entry.state)
                return

        if not account:
            ctx.logger.warning("invoice %s: vendor not mapped yet; left for the map stage", number)
            return
        if problem is not None:
            if entry.state == "posting":
                # never parked without an answer from Exact: it stays posting (a person must look), counted failed
                self.out.add(
                    "failed",
                    number,
                    detail=(
                        f"invoice {number}: left in posting (an earlier attempt's outcome is unknown"
                        f"{', and Exact holds no entry for it' if searched else ''}); its current version cannot "
                        f"be posted: {problem}"
                    ),
                )
                return
            with session_scope(ctx.engine) as s:
                current = s.get(LedgerEntry, entry_id, with_for_update=True)
                if current is None or current.state != entry.state or current.staged_hash != entry.staged_hash:
                    return  # changed meanwhile
                ledger.transition(s, current, "quarantined", reason=problem, run_id=ctx.run_id)
            self.out.add("quarantined", number, detail=f"invoice {number}: {problem}")
            return
        assert planned is not None
        released = _released_after_hold(ctx, entry)
        if not searched and entry.state == "pending" and self._looked(entry, planned, number, released):
            return

        try:
            begun, _ = ledger.begin_post(
                ctx.engine,
                entry_id,
                ctx.run_id,
                states=(entry.state,),
                staged_hash=entry.staged_hash,
                target=Target.of(planned).to_json(),
                division=planned.division,
                lease=self.lease,
                # a lost mark is recovered by the next run's look before posting (store.db), which finds an entry
                # by supplier + YourRef; one released after a duplicate hold posts without looking: synced
                durable=released or not (planned.your_ref or "").strip(),
            )
        except ledger.StateChanged as exc:
            ctx.logger.info("invoice %s: %s; skipped", number, exc)
            return
        with deferred(ctx.audit):  # the POST's audit row is committed with its outcome (ledger.finish)
            self._send(entry_id, source_id, number, planned, attempt=begun.attempts)

    def _send(self, entry_id: int, source_id: str, number: str, planned: PlannedEntry, *, attempt: int) -> None:
        ctx = self.ctx
        audit_ctx = ctx.audit_ctx(POST_ACTION, division=self.division, source_id=source_id, source_ref=number)
        audit_ctx.attempt = attempt  # the ledger's attempt number for this invoice
        target = Target.of(planned)
        for attempt_here in (1, 2):
            if self.lease is not None:
                if attempt_here > 1:
                    self.lease.renew()  # fenced: a stage that lost its lease raises below
                self.lease.check()  # nothing leaves once the lease is lost (or about to expire)
            try:
                created = self.hook.post(self.division, INVOICE_ENDPOINT, planned.body(), audit_ctx=audit_ctx)
            except RejectedError as exc:
                if exc.status in VALIDATION_STATUSES:
                    reason = (
                        f"{EXACT_PREFIX}{exc.message} — fix the cause in Exact (or the invoice in JAGGAER), then "
                        f"{_requeue_hint(ctx, source_id)}"
                    )
                    state = "quarantined"
                else:
                    reason = (
                        f"Exact answered HTTP {exc.status}: {exc.message} — not sent again as is; fix the cause, then "
                        f"{_requeue_hint(ctx, source_id)}"
                    )
                    state = "failed"
                ledger.finish(
                    ctx.engine,
                    entry_id,
                    state,
                    reason=reason,
                    run_id=ctx.run_id,
                    clear_target=True,
                    lease=self.lease,
                    audit_events=take_deferred(self.ctx.audit),
                )
                self.out.add(state, number, detail=f"invoice {number}: {reason}")
                # counts the error; a division-wide refusal (403, 404, ...) stops the batch here
                self._refused(exc, what=f"posting invoice {number}", current_done=True)
                return
            except AmbiguousWriteError as exc:
                if exc.status is not None and exc.status >= 400:
                    self.errors += 1
                ctx.logger.warning("invoice %s: %s; looking in Exact before sending again", number, exc)
                try:
                    match = find_entry(
                        self.hook,
                        target.division,
                        _your_refs(ctx, source_id, [target.your_ref]),
                        target.supplier,
                        planned.external_ref,
                        invoice_number=planned.invoice_number,
                        amount=target.amount,
                        entry_date=target.entry_date,
                    )
                except RejectedError as search_exc:
                    entry = _expunged(ctx, entry_id)
                    if entry is not None:
                        self._audit_search_error(entry, target.division, number, search_exc)
                    self.out.add(
                        "ambiguous",
                        number,
                        detail=f"invoice {number}: outcome unknown ({exc}) and the search failed ({search_exc})",
                    )
                    self._refused(search_exc, what=f"looking up invoice {number}", current_done=True)
                    return
                if match is not None and match.kind in ("ours", "by_hand"):
                    self.found(entry_id, number, match, "posted; the answer was lost, found in Exact")
                    return
                if match is not None:
                    self.unclear(entry_id, source_id, number, match)
                    return
                if attempt_here == 1 and self.errors < MAX_ERRORS_PER_RUN:
                    continue
                self.out.add(
                    "ambiguous",
                    number,
                    detail=f"invoice {number}: outcome unknown ({exc}); the next run looks in Exact first",
                )
                return
            except (TokenChainBroken, RateBudgetExhausted):
                # nothing was processed by Exact (a 401 or a budget stop), and any earlier write of this invoice
                # was looked up before this one: the invoice simply waits
                ledger.finish(
                    ctx.engine,
                    entry_id,
                    "pending",
                    reason="not sent",
                    run_id=ctx.run_id,
                    clear_target=True,
                    lease=self.lease,
                    audit_events=take_deferred(self.ctx.audit),
                )
                raise
            except TransientError:
                # outcome unknown (e.g. still rate limited after waiting): stays posting, looked up next time
                raise
            entry_number = created.get("EntryNumber")
            ledger.finish(
                ctx.engine,
                entry_id,
                "posted",
                target_id=str(created.get("EntryID")),
                target_ref=str(entry_number) if entry_number is not None else None,
                run_id=ctx.run_id,
                lease=self.lease,
                audit_events=take_deferred(self.ctx.audit),
            )
            self.out.add("posted", number)
            return


def _expunged(ctx: FlowContext, entry_id: int) -> LedgerEntry | None:
    with session_scope(ctx.engine) as s:
        entry = s.get(LedgerEntry, entry_id)
        if entry is not None:
            s.expunge(entry)
        return entry


def _work(ctx: FlowContext, division: int) -> Iterator[list[int]]:
    """The batch's entry ids, :data:`CHUNK` at a time: those left ``posting`` first (resolved before anything new is
    sent), then the new ones, each in ledger order (streamed: no list of the whole batch)."""
    for states in (("posting",), ("pending",)):
        yield from ledger.iter_id_chunks(
            ctx.engine, ctx.tenant.name, FLOW, states=states, division=division, source_ids=id_filter(ctx), size=CHUNK
        )


def post(ctx: FlowContext, master: Mapping[str, Any] | None = None) -> Outcomes:
    """The post stage for ``ctx.division``. ``master``: the validate task's master data (read again if absent)."""
    out = Outcomes()
    if ctx.dry_run:
        return out
    division = ctx.division
    assert division is not None, "post runs per division"
    with session_scope(ctx.engine) as s:
        total = ledger.count_entries(
            s, ctx.tenant.name, FLOW, states=POST_STATES, division=division, source_ids=id_filter(ctx)
        )
    if not total:
        return out
    lease = ctx.posting_lease(division)
    try:
        lease.acquire()
    except LeaseBusy as busy:
        # another post stage is sending for this division: this one sends nothing and says why
        ctx.logger.warning("%s", busy)
        out.add("busy", f"division {division}", detail=str(busy))
        out.add("not_sent", n=total)
        return out
    lease.start_heartbeat()
    try:
        poster = Poster(ctx, division, MasterData.from_dict(dict(master)) if master else None, lease)
        poster.run(_work(ctx, division), total)
    finally:
        lease.release()
    return poster.out
