"""Print what arrived at the sandbox servers during `make demo` (reads their admin state)."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

COUNTS = Path(__file__).resolve().parents[1] / ".airflow" / "demo" / "counts.json"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _table(rows: list[list[Any]], header: list[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)))


def jaggaer(base: str) -> int:
    demo = _get(f"{base}/_admin/state")["tenants"]["demo"]
    pos = list(demo["purchase_orders"].values())
    by_status = Counter(po["status"] for po in pos)
    print(f"JAGGAER received {len(pos)} purchase orders ({', '.join(f'{n} {s}' for s, n in by_status.items())})")
    received = demo.get("suppliers_received") or []
    print(f"JAGGAER received {len(received)} supplier record(s) through TSMSupplierXMLImport")
    rows = [
        [po["poNumber"], po["supplier"].get("name", ""), len(po["lines"]), po["total"], po["status"]]
        for po in sorted(pos, key=lambda p: p["poNumber"])[:8]
    ]
    if rows:
        _table(rows, ["PONumber", "supplier", "lines", "total", "status"])
        if len(pos) > len(rows):
            print(f"  ... and {len(pos) - len(rows)} more")
    return len(pos)


def exact(base: str) -> int:
    entries = _get(f"{base}/_admin/state")["purchase_entries"]
    total = 0
    for division, rows in entries.items():
        total += len(rows)
        kinds = Counter("credit note" if e.get("Type") == 31 else "invoice" for e in rows)
        print(f"Exact division {division} received {len(rows)} purchase entries ({dict(kinds)})")
        table = []
        for e in rows[:5]:
            line = (e.get("PurchaseEntryLines") or [{}])[0]
            table.append(
                [
                    e.get("EntryNumber"),
                    e.get("YourRef"),
                    e.get("AmountDC"),
                    len(e.get("PurchaseEntryLines") or []),
                    line.get("GLAccountCode") or line.get("GLAccount", "")[:8],
                    line.get("CostCenter") or "-",
                    line.get("VATCode") or "-",
                ]
            )
        if table:
            _table(table, ["entry", "YourRef (supplier inv.)", "amount", "lines", "GL (1st line)", "cost ctr", "VAT"])
            if len(rows) > len(table):
                print(f"  ... and {len(rows) - len(table)} more")
    return total


def totals(exact_base: str, jaggaer_base: str) -> None:
    pos = len(_get(f"{jaggaer_base}/_admin/state")["tenants"]["demo"]["purchase_orders"])
    entries = sum(len(v) for v in _get(f"{exact_base}/_admin/state")["purchase_entries"].values())
    before = json.loads(COUNTS.read_text()) if COUNTS.exists() else {}
    for name, now in (("JAGGAER purchase orders", pos), ("Exact purchase entries", entries)):
        was = before.get(name)
        verdict = "unchanged: nothing posted twice" if was == now else f"was {was}"
        print(f"{name}: {now} ({verdict})")


def main(argv: list[str]) -> int:
    what = argv[1]
    if what == "totals":
        totals(argv[2], argv[3])
        return 0
    counts = json.loads(COUNTS.read_text()) if COUNTS.exists() else {}
    if what == "jaggaer":
        counts = {"JAGGAER purchase orders": jaggaer(argv[2])}
    elif what == "exact":
        counts["Exact purchase entries"] = exact(argv[2])
    COUNTS.parent.mkdir(parents=True, exist_ok=True)
    COUNTS.write_text(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
