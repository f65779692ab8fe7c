"""J1P invoices: list envelope, 1-based paging, both filter styles, returnCode variants, detail with splits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jaggaer_support import INVOICES, JaggaerHandle

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _window(days_back: int) -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lo = today - timedelta(days=days_back)
    return lo, lo + timedelta(days=1)


def _fiql(lo: datetime, hi: datetime) -> str:
    return f"lastUpdate=ge={_iso(lo)};lastUpdate=lt={_iso(hi)}"


def _splits(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for group in node.get("splittableFieldSetGroupList", {}).get("splittableFieldSetGroup", []):
        for index_set in group["splittableFieldIndexSet"]:
            for idx in index_set["splittableFieldIndexList"]["splittableFieldIndex"]:
                fields = {f["internalName"]: f.get("value") for f in idx["customFieldValueList"]["customFieldValue"]}
                out.append({"type": index_set["distributionType"], "value": idx["distributionValue"], **fields})
    return out


# ---------------------------------------------------------------------------------------------------------------
# list and paging


def test_first_page_envelope(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    body = jaggaer_sandbox.get(INVOICES, demo_token).json()
    assert body["returnCode"] == 0
    assert body["returnMessage"] == ""
    assert body["totRecords"] == 68
    assert body["returnedRecords"] == 37
    assert body["startAt"] == 1
    items = body["jiinvoiceList"]["jiinvoice"]
    assert len(items) == 37
    assert all(set(i) == {"header"} for i in items)  # header only, no lines
    ids = [i["header"]["invoiceId"] for i in items]
    assert ids == sorted(ids)


def test_paging_until_start_minus_one_reaches_total(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(page_size=7)
    starts, seen, start = [], [], 1
    while True:
        body = jaggaer_sandbox.get(INVOICES, demo_token, start=start).json()
        assert body["startAt"] == start
        assert body["returnedRecords"] <= 7
        starts.append(start)
        seen += [i["header"]["invoiceId"] for i in body["jiinvoiceList"]["jiinvoice"]]
        start += body["returnedRecords"]
        if start - 1 >= body["totRecords"]:
            break
    assert starts == [1, 8, 15, 22, 29, 36, 43, 50, 57, 64]
    assert len(seen) == len(set(seen)) == 68
    assert seen == sorted(seen)


def test_start_past_the_end_and_empty_list_key(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    body = jaggaer_sandbox.get(INVOICES, demo_token, start=69).json()
    assert body["returnCode"] == 0
    assert body["returnedRecords"] == 0
    assert body["totRecords"] == 68
    assert "jiinvoiceList" not in body  # default: the key is left out
    jaggaer_sandbox.settings(empty_list_key="empty")
    body = jaggaer_sandbox.get(INVOICES, demo_token, start=69).json()
    assert body["jiinvoiceList"] == {"jiinvoice": []}


@pytest.mark.parametrize("start", ["0", "-3", "abc"])
def test_bad_start_is_an_application_error(jaggaer_sandbox: JaggaerHandle, demo_token: str, start: str) -> None:
    r = jaggaer_sandbox.get(INVOICES, demo_token, start=start)
    assert r.status_code == 200
    assert r.json()["returnCode"] == 2
    assert "start" in r.json()["returnMessage"]


def test_fiql_day_window(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    all_headers = jaggaer_sandbox.all_invoice_headers(demo_token)
    total = 0
    for days_back in range(0, 12):
        lo, hi = _window(days_back)
        got = jaggaer_sandbox.all_invoice_headers(demo_token, flt=_fiql(lo, hi))
        expected = [h["invoiceId"] for h in all_headers if lo <= _ts(h["lastUpdate"]) < hi]
        assert [h["invoiceId"] for h in got] == expected
        total += len(got)
    assert total == 68  # the seed spreads lastUpdate over the last ~10 days
    lo, hi = _window(1)
    assert 2 <= len(jaggaer_sandbox.all_invoice_headers(demo_token, flt=_fiql(lo, hi))) <= 20


def test_fiql_other_fields(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    got = jaggaer_sandbox.all_invoice_headers(demo_token, flt="workflowStatus==Completed;paymentStatus==Payable")
    assert got
    assert {(h["workflowStatus"], h["paymentStatus"]) for h in got} == {("Completed", "Payable")}
    credit = jaggaer_sandbox.all_invoice_headers(demo_token, flt="invoiceType=='Credit memo'")
    assert len(credit) == 8


@pytest.mark.parametrize(
    "flt, fragment",
    [
        ("lastUpdate=ge=yesterday", "Invalid date"),
        ("colour==red", "Unsupported filter field"),
        ("lastUpdate>>2026", "Invalid filter"),
        ("workflowStatus=ge=Completed", "not supported"),
    ],
)
def test_bad_filters_are_200_with_returncode(
    jaggaer_sandbox: JaggaerHandle, demo_token: str, flt: str, fragment: str
) -> None:
    r = jaggaer_sandbox.get(INVOICES, demo_token, flt=flt)
    assert r.status_code == 200
    assert r.json()["returnCode"] == 2
    assert fragment in r.json()["returnMessage"]


def test_params_filter_style(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    lo, hi = _window(2)
    fiql = [h["invoiceId"] for h in jaggaer_sandbox.all_invoice_headers(demo_token, flt=_fiql(lo, hi))]
    # in fiql mode the params are refused...
    r = jaggaer_sandbox.get(INVOICES, demo_token, lastUpdateFrom=_iso(lo)).json()
    assert r["returnCode"] == 2 and "lastUpdateFrom" in r["returnMessage"]
    jaggaer_sandbox.settings(invoice_filter_style="params")
    got = jaggaer_sandbox.all_invoice_headers(demo_token, lastUpdateFrom=_iso(lo), lastUpdateTo=_iso(hi))
    assert [h["invoiceId"] for h in got] == fiql
    # ...and in params mode flt is refused
    r = jaggaer_sandbox.get(INVOICES, demo_token, flt=_fiql(lo, hi)).json()
    assert r["returnCode"] == 2 and "flt" in r["returnMessage"]
    # an offset timestamp works too
    got = jaggaer_sandbox.all_invoice_headers(
        demo_token, lastUpdateFrom=lo.isoformat(), lastUpdateTo=hi.astimezone().isoformat()
    )
    assert [h["invoiceId"] for h in got] == fiql


def test_return_code_as_string(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(return_code_type="string")
    assert jaggaer_sandbox.get(INVOICES, demo_token).json()["returnCode"] == "0"
    assert jaggaer_sandbox.get(f"{INVOICES}/1", demo_token).json()["returnCode"] == "2"
    assert jaggaer_sandbox.get(INVOICES, demo_token, flt="x==y").json()["returnCode"] == "2"


def test_success_with_warnings(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(success_return_code=1, return_code_type="string")
    body = jaggaer_sandbox.get(INVOICES, demo_token).json()
    assert body["returnCode"] == "1"
    assert body["returnMessage"]
    assert body["returnedRecords"] == 37
    first = body["jiinvoiceList"]["jiinvoice"][0]["header"]["invoiceId"]
    detail = jaggaer_sandbox.get(f"{INVOICES}/{first}", demo_token).json()
    assert detail["returnCode"] == "1"
    assert detail["header"]["invoiceId"] == first


# ---------------------------------------------------------------------------------------------------------------
# headers


def test_header_fields(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    headers = jaggaer_sandbox.all_invoice_headers(demo_token)
    for h in headers:
        assert isinstance(h["invoiceId"], int)
        assert re.match(r"^I\d{5}$", h["invoiceNumber"])
        assert h["supplierInvoiceNumber"]
        assert h["invoiceType"] in {"Invoice", "Credit memo"}
        for key in ("lastUpdate", "invoiceDate", "dueDate", "accountingDate"):
            assert TS.match(h[key]), (key, h[key])
        assert h["workflowStatus"] in {"Completed", "Pending"}
        assert h["paymentStatus"] in {"Payable", "InProcess", "Paid"}
        assert h["businessUnit"] in {"UK-MFG", "UK-SVC"}
        assert h["nonPOInvoice"] in {"true", "false"}  # a string, not a boolean
        assert set(h["supplier"]) >= {"id", "name", "duns"}
        assert h["total"]["currency"] == "GBP"
        for key in ("taxCharge1", "taxCharge2", "shippingCharge", "handlingCharge", "discountAmount"):
            assert isinstance(h[key], int | float)
        if h["invoiceType"] == "Credit memo":
            assert h["total"]["value"] < 0
        else:
            assert h["total"]["value"] > 0
    states = {(h["workflowStatus"], h["paymentStatus"]) for h in headers}
    assert len(states) == 6
    assert sum(h["invoiceType"] == "Credit memo" for h in headers) == 8
    # some vendors have no Exact counterpart: no supplierNumber
    assert 2 <= sum("supplierNumber" not in h["supplier"] for h in headers) <= 10
    # some were edited after they were created
    assert sum(h["invoiceCreateDate"][:10] < h["lastUpdate"][:10] for h in headers) >= 3
    # matched vendors carry the Exact account code
    assert {h["supplier"]["supplierNumber"] for h in headers if "supplierNumber" in h["supplier"]} <= {
        str(c) for c in range(1001, 1061)
    }


def test_categories_and_bad_data_invoice(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    headers = jaggaer_sandbox.all_invoice_headers(demo_token)
    categories = {
        cf["customFieldValueList"]["customFieldValue"][0].get("value")
        for h in headers
        for cf in h["customFieldValueSetList"]["customFieldValueSet"]
        if cf["name"] == "InvoiceCategory"
    }
    assert len(categories) >= 5
    bad = [h for h in headers if h["supplierInvoiceNumber"] == "INV-CC900-0001"]
    assert len(bad) == 1
    detail = jaggaer_sandbox.get(f"{INVOICES}/{bad[0]['invoiceId']}", demo_token).json()
    assert {s["CostCenter"] for line in detail["lineList"]["invoiceLine"] for s in _splits(line)} == {"CC900"}


# ---------------------------------------------------------------------------------------------------------------
# detail


def test_unknown_invoice_is_200_with_returncode(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    for ident in ("999", "abc"):
        r = jaggaer_sandbox.get(f"{INVOICES}/{ident}", demo_token)
        assert r.status_code == 200
        body = r.json()
        assert body["returnCode"] == 2
        assert body["returnMessage"]
        assert "header" not in body


def test_detail_lines_and_splits(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    headers = jaggaer_sandbox.all_invoice_headers(demo_token)
    line_counts, sixty_forty, header_split, po_lines = set(), 0, 0, 0
    for h in headers:
        detail = jaggaer_sandbox.get(f"{INVOICES}/{h['invoiceId']}", demo_token).json()
        assert detail["header"]["invoiceId"] == h["invoiceId"]
        lines = detail["lineList"]["invoiceLine"]
        line_counts.add(len(lines))
        head = _splits(detail["header"])
        header_split += bool(head)
        for line in lines:
            assert {"lineId", "lineNumber", "item", "quantity", "unitPrice", "taxable"} <= set(line)
            assert set(line["item"]) >= {"description", "unitOfMeasure", "productType"}
            assert line["taxable"] in {"true", "false"}
            splits = _splits(line)
            assert splits or head, "every line is accounted for by its own or the header's splits"
            if splits:
                assert sum(s["value"] for s in splits) == 100
                assert all(s["type"] == "PercentOfPrice" for s in splits)
                assert all(s["CostCenter"] and s["GLAccount"] for s in splits)
                sixty_forty += sorted(s["value"] for s in splits) == [40, 60]
            if "poNumber" in line:
                po_lines += 1
                assert "poLineNumber" in line
    assert line_counts >= {1, 2, 3, 4}
    assert max(line_counts) <= 6
    assert sixty_forty >= 3
    assert header_split >= 3
    assert po_lines >= 10


def test_amount_split_variant(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    jaggaer_sandbox.settings(split_distribution="amount", split_field_cost_centre="CostCentre")
    checked = 0
    for h in jaggaer_sandbox.all_invoice_headers(demo_token)[:25]:
        detail = jaggaer_sandbox.get(f"{INVOICES}/{h['invoiceId']}", demo_token).json()
        for line in detail["lineList"]["invoiceLine"]:
            splits = _splits(line)
            if splits:
                assert all(s["type"] == "AmountOfPrice" and "CostCentre" in s for s in splits)
                assert round(sum(s["value"] for s in splits), 2) == line["extendedPrice"]
                checked += 1
    assert checked > 10


def test_admin_create_and_edit_move_last_update(jaggaer_sandbox: JaggaerHandle, demo_token: str) -> None:
    created = jaggaer_sandbox.admin(
        "POST",
        "/invoices",
        json={
            "supplier_number": "1005",
            "business_unit": "UK-SVC",
            "supplier_invoice_number": "SANDBOX-1",
            "lines": [
                {"description": "Widget", "quantity": 3, "unit_price": "10.00", "vat_code": "1"},
                {
                    "description": "Service",
                    "quantity": 1,
                    "unit_price": "99.99",
                    "vat_code": "2",
                    "splits": [
                        {"cost_centre": "CC100", "gl_account": "7500", "percent": 60},
                        {"cost_centre": "CC300", "gl_account": "7500", "percent": 40},
                    ],
                },
            ],
            "shipping": "5.00",
        },
    )
    inv_id = created["summary"]["invoiceId"]
    assert inv_id > max(
        h["invoiceId"] for h in jaggaer_sandbox.all_invoice_headers(demo_token) if h["invoiceId"] != inv_id
    )
    detail = jaggaer_sandbox.get(f"{INVOICES}/{inv_id}", demo_token).json()
    assert detail["header"]["supplier"]["supplierNumber"] == "1005"
    assert detail["header"]["total"]["value"] == pytest.approx(30 + 6 + 99.99 + 5.00 + 5)  # 20% and 5% VAT
    first_update = _ts(detail["header"]["lastUpdate"])

    jaggaer_sandbox.advance(2 * 86400)
    edited = jaggaer_sandbox.admin("PATCH", f"/invoices/{inv_id}", json={"payment_status": "Paid"})
    assert edited["summary"]["paymentStatus"] == "Paid"
    moved = _ts(edited["j1p"]["header"]["lastUpdate"])
    assert moved - first_update >= timedelta(days=2)
    lo = moved.replace(hour=0, minute=0, second=0, microsecond=0)
    fresh = jaggaer_sandbox.token()  # the old one expired while the clock moved
    window = jaggaer_sandbox.all_invoice_headers(fresh, flt=_fiql(lo, lo + timedelta(days=1)))
    assert [h["invoiceId"] for h in window] == [inv_id]


def test_admin_credit_memo_is_negative(jaggaer_sandbox: JaggaerHandle) -> None:
    created = jaggaer_sandbox.admin(
        "POST",
        "/invoices",
        json={"invoice_type": "Credit memo", "lines": [{"quantity": 2, "unit_price": "50", "vat_code": "1"}]},
    )
    assert created["j1p"]["header"]["total"]["value"] == -120
    assert created["j1p"]["lineList"]["invoiceLine"][0]["unitPrice"] == -50


def test_admin_rejects_bad_input(jaggaer_sandbox: JaggaerHandle) -> None:
    r = jaggaer_sandbox.http.post(
        jaggaer_sandbox.url + "/_admin/invoices",
        json={"lines": [{"unit_price": 1, "splits": [{"cost_centre": "CC1", "gl_account": "7000", "percent": 50}]}]},
        timeout=10,
    )
    assert r.status_code == 422
    r = jaggaer_sandbox.http.post(
        jaggaer_sandbox.url + "/_admin/invoices", json={"supplier_number": "nope"}, timeout=10
    )
    assert r.status_code == 404
