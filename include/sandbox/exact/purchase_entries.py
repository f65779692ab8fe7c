"""POST ``purchaseentry/PurchaseEntries`` on the Exact sandbox: Exact's checks of journal, supplier, dates,
currency and lines, the totals, and the entry number (taken last: a refused POST consumes none)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import Response

from sandbox.exact.entities import EntitySet, lookups
from sandbox.exact.messages import ISO_CURRENCIES
from sandbox.exact.odata import parse_iso_to_ms
from sandbox.exact.responses import Ctx, HTTPFail
from sandbox.exact.state import ExactState
from sandbox.exact.store import DAY_MS, Division
from sandbox.exact.writes import check_props, created, msg, validation


def post_entry(
    sb: ExactState, ctx: Ctx, spec: EntitySet, div: Division, data: dict[str, Any], prefer: bool
) -> Response:
    line_spec = sb.sets["purchaseentry/PurchaseEntryLines"]
    data = check_props(sb, spec, data, spec.writable)
    raw_lines = data.get("PurchaseEntryLines")
    if isinstance(raw_lines, dict) and "results" in raw_lines:
        raw_lines = raw_lines["results"]
    if raw_lines is not None and not isinstance(raw_lines, list):
        raise HTTPFail(400, "Error processing request stream. 'PurchaseEntryLines' must be a collection.")
    checked_lines = []
    for ln in raw_lines or []:
        if not isinstance(ln, dict):
            raise HTTPFail(400, "Error processing request stream. A line must be an object.")
        checked_lines.append(check_props(sb, line_spec, ln, line_spec.writable))
    raw_lines = checked_lines if raw_lines is not None else None
    journal = data.get("Journal")
    supplier = data.get("Supplier")
    errors: list[str] = []
    lk = lookups(div)
    jrow = None
    if not journal:
        errors.append(msg(sb, "mandatory_journal"))
    else:
        jrow = sb.store.by_code(div.journals, journal)
        if jrow is None or jrow["Code"] != journal:
            errors.append(msg(sb, "invalid_journal"))
            jrow = None
        elif jrow["Type"] != 22:
            errors.append(msg(sb, "not_purchase_journal", journal))
            jrow = None
    acct = None
    if not supplier:
        errors.append(msg(sb, "mandatory_supplier"))
    else:
        acct = div.accounts.get(supplier)
        if acct is None:
            errors.append(msg(sb, "invalid_supplier"))
        elif not acct["IsSupplier"]:
            errors.append(msg(sb, "not_supplier", acct["Code"].strip()))
        elif acct["Blocked"]:
            errors.append(msg(sb, "blocked_supplier", acct["Code"].strip()))
    entry_ms = None
    if not data.get("EntryDate"):
        errors.append(msg(sb, "mandatory_date"))
    else:
        try:
            entry_ms = parse_iso_to_ms(data["EntryDate"], sb.settings().date_timezone)
        except ValueError:
            errors.append(msg(sb, "invalid_date"))
    due_ms = None
    if data.get("DueDate"):
        try:
            due_ms = parse_iso_to_ms(data["DueDate"], sb.settings().date_timezone)
        except ValueError:
            errors.append("Invalid value: Due date")
    if entry_ms is not None and sb.settings().closed_before:
        closed = parse_iso_to_ms(sb.settings().closed_before)
        if entry_ms < closed:
            d = datetime.fromtimestamp(entry_ms / 1000, tz=UTC)
            errors.append(msg(sb, "closed_period", f"{d.year}/{d.month}"))
    currency = data.get("Currency") or "GBP"
    if currency not in ISO_CURRENCIES:
        errors.append(msg(sb, "invalid_currency", currency))
    if not raw_lines:
        errors.append(msg(sb, "no_lines"))
    rate = data.get("Rate", 1.0)
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        errors.append("Invalid value: Rate")
        rate = 1.0
    lines: list[dict[str, Any]] = []
    entry_id = str(uuid.uuid4())
    for n, ln in enumerate(raw_lines or [], start=1):
        gl = None
        if not ln.get("GLAccount"):
            errors.append(msg(sb, "mandatory_gl"))
        else:
            gl = div.gl_accounts.get(ln["GLAccount"])
            if gl is None:
                errors.append(msg(sb, "invalid_gl"))
            elif gl["IsBlocked"]:
                errors.append(msg(sb, "blocked_gl", gl["Code"]))
                gl = None
        amount = ln.get("AmountFC")
        if amount is None or amount == "":
            errors.append(msg(sb, "mandatory_amount"))
            amount = None
        else:
            try:
                if isinstance(amount, bool):
                    raise ValueError
                amount = round(float(amount), 2)
            except (TypeError, ValueError):
                errors.append(msg(sb, "invalid_amount"))
                amount = None
        cc = ln.get("CostCenter")
        if cc:
            row = lk.cc.get(cc)
            if row is None or not row["Active"]:
                errors.append(msg(sb, "invalid_cc"))
        cu = ln.get("CostUnit")
        if cu:
            row = lk.cu.get(cu)
            if row is None or not row["Active"]:
                errors.append(msg(sb, "invalid_cu"))
        vat_code = ln.get("VATCode") or (gl["VATCode"] if gl else None)
        pct = 0.0
        if vat_code:
            vrow = lk.vat.get(str(vat_code))
            if vrow is None:
                errors.append(msg(sb, "invalid_vat"))
            elif vrow["IsBlocked"]:
                errors.append(msg(sb, "blocked_vat", vat_code))
            else:
                pct = vrow["Percentage"]
        vat_amount = None
        if ln.get("VATAmountFC") is not None:
            try:
                vat_amount = round(float(ln["VATAmountFC"]), 2)
            except (TypeError, ValueError):
                errors.append("Invalid value: VAT amount")
        if amount is not None and vat_amount is None:
            vat_amount = round(amount * pct, 2)
        lines.append(
            {
                "ID": str(uuid.uuid4()),
                "EntryID": entry_id,
                "LineNumber": n,
                "GLAccount": gl["ID"] if gl else None,
                "GLAccountCode": gl["Code"] if gl else None,
                "GLAccountDescription": gl["Description"] if gl else None,
                "AmountFC": amount,
                "AmountDC": None if amount is None else round(amount * rate, 2),
                "VATCode": vat_code,
                "VATPercentage": pct,
                "VATAmountFC": vat_amount,
                "VATAmountDC": None if vat_amount is None else round(vat_amount * rate, 2),
                "VATBaseAmountFC": amount,
                "CostCenter": cc or None,
                "CostUnit": cu or None,
                "Description": ln.get("Description"),
                "Quantity": ln.get("Quantity"),
                "Notes": ln.get("Notes"),
                "Division": div.code,
            }
        )
    if errors:
        raise validation(sb, errors)
    assert jrow is not None and acct is not None and entry_ms is not None
    net = round(sum(ln["AmountFC"] for ln in lines), 2)
    vat_total = round(sum(ln["VATAmountFC"] for ln in lines), 2)
    total = round(net + vat_total, 2)
    d = datetime.fromtimestamp(entry_ms / 1000, tz=UTC)
    reporting_year = int(data.get("ReportingYear") or d.year)  # types checked by _check_props
    reporting_period = int(data.get("ReportingPeriod") or d.month)
    seq_key = f"{jrow['Code']}:{d.year}"
    assert div.entry_seq is not None
    # The entry number is taken last: a refused or failed POST never consumes one.
    seq = div.entry_seq.get(seq_key, 0) + 1
    number = int(f"{d.year % 100:02d}{jrow['Code']}{seq:04d}")
    now = sb.store.now_ms()
    terms = (
        int(acct.get("PaymentConditionPurchase") or 30)
        if str(acct.get("PaymentConditionPurchase") or "30").isdigit()
        else 30
    )
    entry = {
        "EntryID": entry_id,
        "EntryNumber": number,
        "InvoiceNumber": number,
        "Journal": jrow["Code"],
        "JournalDescription": jrow["Description"],
        "Supplier": acct["ID"],
        "SupplierName": acct["Name"],
        "EntryDate": entry_ms,
        "DueDate": due_ms if due_ms is not None else entry_ms + terms * DAY_MS,
        "YourRef": data.get("YourRef"),
        "Description": data.get("Description"),
        "PaymentReference": data.get("PaymentReference"),
        "ExternalLinkReference": data.get("ExternalLinkReference"),
        "Currency": currency,
        "Rate": rate,
        "ReportingYear": reporting_year,
        "ReportingPeriod": reporting_period,
        "AmountFC": total,
        "AmountDC": round(total * rate, 2),
        "VATAmountFC": vat_total,
        "VATAmountDC": round(vat_total * rate, 2),
        "Status": 20,
        "StatusDescription": "Open",
        "Type": 31 if total < 0 else 30,
        "TypeDescription": "Purchase credit note" if total < 0 else "Purchase entry",
        "PaymentCondition": acct.get("PaymentConditionPurchase"),
        "Division": div.code,
        "Created": now,
        "Modified": now,
        "_lines": lines,
    }
    response = created(sb, ctx, spec, div, entry, prefer)
    div.purchase_entries.put(entry)
    div.entry_seq[seq_key] = seq
    return response
