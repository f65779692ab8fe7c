"""Classify the three sides (:mod:`.sources`) into the reconciliation's categories, with pandas.

Matching, in this order (each entry is used once):

1. the ledger's target: an invoice the connector posted is matched to the entry it created (``EntryID``), whatever
   happened to supplier or ``YourRef`` since;
2. supplier and ``YourRef``: the invoice's Exact supplier (vendor map) and supplier invoice number against the
   entry's account and ``YourRef`` (trimmed, case-insensitive).

A matched pair is ``matched`` when the gross amounts agree to the cent and the dates agree, else
``amount_or_date_differs``. An invoice left over is ``posted_not_in_exact`` when the ledger holds its entry, else
``jaggaer_only`` with the ledger's state and reason. Posted records of the division whose staged invoice is dated
in the period but that JAGGAER no longer lists as approved, and whose entry is gone, are ``posted_not_in_exact``
as well. An entry left over is ``exact_only``: keyed by hand when it carries no JAGGAER reference.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_connector.reconcile import (
    COLUMNS,
    DIFFERS,
    EXACT_ONLY,
    JAGGAER_ONLY,
    MATCHED,
    POSTED_MISSING,
)
from ml_connector.reconcile.sources import Period, norm_ref

_JAGGAER_REF = "JAGGAER:"


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=object)


def classify(
    division: int,
    period: Period,
    invoices: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    records: list[dict[str, Any]],
) -> pd.DataFrame:
    """One row per invoice, entry or orphaned ledger record, columns :data:`COLUMNS`."""
    j = _frame(
        invoices,
        [
            "jaggaer_invoice_id",
            "jaggaer_invoice_number",
            "your_ref",
            "supplier",
            "jaggaer_supplier_id",
            "account_id",
            "exact_supplier_code",
            "jaggaer_date",
            "jaggaer_amount",
            "currency",
        ],
    )
    e = _frame(
        entries,
        [
            "exact_entry_id",
            "exact_entry_number",
            "exact_date",
            "account_id",
            "exact_supplier_code",
            "exact_supplier",
            "exact_your_ref",
            "external_ref",
            "exact_currency",
            "exact_amount",
        ],
    )
    led = _frame(
        records,
        [
            "jaggaer_invoice_id",
            "ledger_number",
            "ledger_state",
            "ledger_reason",
            "target_id",
            "target_ref",
            "staged_date",
            "staged_ref",
            "staged_amount",
            "staged_supplier",
        ],
    )
    j = j.merge(led, on="jaggaer_invoice_id", how="left")
    j["key"] = j["your_ref"].map(norm_ref)
    e["key"] = e["exact_your_ref"].map(norm_ref)
    e = e.set_index("exact_entry_id", drop=False)
    used: set[str] = set()
    pairs: dict[str, str] = {}  # invoice id -> entry id

    # 1. the ledger's target
    for _, inv in j[j["target_id"].notna()].iterrows():
        target = inv["target_id"]
        if target in e.index and target not in used:
            pairs[inv["jaggaer_invoice_id"]] = target
            used.add(target)
    # 2. supplier + YourRef (a merge; an entry is used once, first come first served in invoice order)
    rest = j[~j["jaggaer_invoice_id"].isin(pairs) & j["account_id"].notna() & (j["key"] != "")]
    free = e[~e["exact_entry_id"].isin(used)]
    candidates = rest[["jaggaer_invoice_id", "account_id", "key"]].merge(
        free[["exact_entry_id", "account_id", "key"]], on=["account_id", "key"], how="inner"
    )
    for _, pair in candidates.iterrows():
        if pair["jaggaer_invoice_id"] in pairs or pair["exact_entry_id"] in used:
            continue
        pairs[pair["jaggaer_invoice_id"]] = pair["exact_entry_id"]
        used.add(pair["exact_entry_id"])

    out: list[dict[str, Any]] = []
    for _, inv in j.iterrows():
        row = _invoice_row(division, inv)
        entry_id = pairs.get(inv["jaggaer_invoice_id"])
        if entry_id is not None:
            ent = e.loc[entry_id]
            row.update(_entry_cols(ent))
            row["exact_supplier_code"] = row["exact_supplier_code"] or ent["exact_supplier_code"]
            diffs = _differences(inv, ent)
            row["category"] = DIFFERS if diffs else MATCHED
            row["note"] = "; ".join(diffs)
        elif _present(inv["target_id"]) and inv["ledger_state"] == "posted":
            row["category"] = POSTED_MISSING
            row["exact_entry_number"] = inv["target_ref"]
            row["exact_entry_id"] = inv["target_id"]
            row["note"] = (
                f"posted by the connector as Exact entry {inv['target_ref'] or inv['target_id']}, which is no "
                f"longer in the purchase journal for {period} (deleted, or re-dated outside the period, in Exact)"
            )
        else:
            row["category"] = JAGGAER_ONLY
            row["note"] = _ledger_note(inv)
        out.append(row)

    # posted records whose invoice JAGGAER no longer lists as approved in this period, and whose entry is gone
    listed = set(j["jaggaer_invoice_id"])
    orphans = led[
        ~led["jaggaer_invoice_id"].isin(listed)
        & (led["ledger_state"] == "posted")
        & led["target_id"].notna()
        & ~led["target_id"].isin(e.index)
        & led["staged_date"].map(lambda d: d in period)
    ]
    for _, rec in orphans.iterrows():
        out.append(
            {
                **dict.fromkeys(COLUMNS),
                "category": POSTED_MISSING,
                "division": division,
                "jaggaer_invoice_number": rec["ledger_number"],
                "jaggaer_invoice_id": rec["jaggaer_invoice_id"],
                "supplier": rec["staged_supplier"],
                "your_ref": rec["staged_ref"],
                "jaggaer_date": rec["staged_date"],
                "jaggaer_amount": rec["staged_amount"],
                "exact_entry_number": rec["target_ref"],
                "exact_entry_id": rec["target_id"],
                "ledger_state": "posted",
                "note": (
                    f"posted by the connector as Exact entry {rec['target_ref'] or rec['target_id']}, which is no "
                    "longer in Exact; JAGGAER no longer lists the invoice as approved in this period either"
                ),
            }
        )

    by_target = {r["target_id"]: r for r in records if r.get("target_id")}  # posted records carry their division
    for _, ent in e[~e["exact_entry_id"].isin(used)].iterrows():
        row = {**dict.fromkeys(COLUMNS), "category": EXACT_ONLY, "division": division, **_entry_cols(ent)}
        row["supplier"] = ent["exact_supplier"]
        row["exact_supplier_code"] = ent["exact_supplier_code"]
        row["your_ref"] = ent["exact_your_ref"]
        row["currency"] = ent["exact_currency"]
        row["note"] = _exact_only_note(ent, by_target.get(ent["exact_entry_id"]))
        if ent["exact_entry_id"] in by_target:
            rec = by_target[ent["exact_entry_id"]]
            row.update(
                jaggaer_invoice_id=rec["jaggaer_invoice_id"],
                jaggaer_invoice_number=rec["ledger_number"],
                ledger_state=rec["ledger_state"],
            )
        out.append(row)

    frame = pd.DataFrame(out, columns=list(COLUMNS), dtype=object)
    order = {c: i for i, c in enumerate((DIFFERS, POSTED_MISSING, JAGGAER_ONLY, EXACT_ONLY, MATCHED))}
    frame["_o"] = frame["category"].map(order)
    frame = frame.sort_values(["_o", "jaggaer_invoice_number", "exact_entry_number"], na_position="last", kind="stable")
    return frame.drop(columns="_o").reset_index(drop=True)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and value == value


def _val(value: Any) -> Any:
    return value if _present(value) else None


def _invoice_row(division: int, inv: pd.Series) -> dict[str, Any]:
    return {
        **dict.fromkeys(COLUMNS),
        "division": division,
        "jaggaer_invoice_number": _val(inv["jaggaer_invoice_number"]),
        "jaggaer_invoice_id": inv["jaggaer_invoice_id"],
        "supplier": _val(inv["supplier"]),
        "exact_supplier_code": _val(inv["exact_supplier_code"]),
        "your_ref": _val(inv["your_ref"]),
        "jaggaer_date": _val(inv["jaggaer_date"]),
        "jaggaer_amount": _val(inv["jaggaer_amount"]),
        "currency": _val(inv["currency"]),
        "ledger_state": _val(inv["ledger_state"]),
    }


def _entry_cols(ent: pd.Series) -> dict[str, Any]:
    return {
        "exact_date": _val(ent["exact_date"]),
        "exact_amount": _val(ent["exact_amount"]),
        "exact_entry_number": _val(ent["exact_entry_number"]),
        "exact_entry_id": ent["exact_entry_id"],
    }


def _differences(inv: pd.Series, ent: pd.Series) -> list[str]:
    out = []
    mine, theirs = _val(inv["jaggaer_amount"]), _val(ent["exact_amount"])
    if mine is None or theirs is None or mine != theirs:
        out.append(
            f"amount: JAGGAER {mine if mine is not None else '?'}, Exact {theirs if theirs is not None else '?'}"
        )
    if _val(inv["jaggaer_date"]) != _val(ent["exact_date"]):
        out.append(f"date: JAGGAER {_val(inv['jaggaer_date']) or '?'}, Exact {_val(ent['exact_date']) or '?'}")
    return out


def _ledger_note(inv: pd.Series) -> str:
    state = _val(inv["ledger_state"])
    if state is None:
        return "not in the ledger: the invoice poll has not read this invoice yet (it is read by the next run)"
    reason = _val(inv["ledger_reason"])
    return f"ledger: {state}" + (f": {reason}" if reason else "")


def _exact_only_note(ent: pd.Series, record: dict[str, Any] | None) -> str:
    ext = _val(ent["external_ref"])
    if record is not None:
        return (
            f"posted by the connector for JAGGAER invoice {record['ledger_number'] or record['jaggaer_invoice_id']} "
            f"(ledger: {record['ledger_state']}), which JAGGAER no longer lists as an approved invoice of this period "
            "and division"
        )
    if not ext:
        return "keyed by hand in Exact (no JAGGAER reference on the entry)"
    if ext.startswith(_JAGGAER_REF):
        return f"carries JAGGAER reference {ext} that this connector's ledger does not know: posted elsewhere"
    return f"posted elsewhere (external reference {ext})"
