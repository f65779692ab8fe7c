"""J1P envelope, paging, filters and invoice normalisation (pure functions, no server)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.errors import RejectedError
from ml_connector.jaggaer import j1p


@pytest.mark.parametrize("code", [0, "0", " 0 ", 0.0, "0.0"])
def test_envelope_ok(code):
    body = {"returnCode": code, "returnMessage": ""}
    assert j1p.check_envelope(body) is body


@pytest.mark.parametrize("code", [1, "1"])
def test_envelope_warning_is_logged(code, caplog):
    with caplog.at_level(logging.WARNING, logger="ml_connector.jaggaer.j1p"):
        j1p.check_envelope({"returnCode": code, "returnMessage": "processed with warnings"})
    assert "processed with warnings" in caplog.text


@pytest.mark.parametrize("code", [2, "2", -1, "ERR", None, "1"])
def test_envelope_error(code):
    body = {"returnCode": code, "returnMessage": "Invalid filter expression"}
    with pytest.raises(RejectedError, match="Invalid filter expression") as info:
        j1p.check_envelope(body, warning_codes=() if code == "1" else ("1",))
    assert info.value.status == 200


def test_envelope_without_return_code_passes():
    body = {"header": {"invoiceId": 1}}
    assert j1p.check_envelope(body) is body


def _pages(total: int, size: int, *, list_key: str = "omit", count_field: bool = True):
    calls: list[int] = []

    def fetch(start: int):
        calls.append(start)
        page = list(range(start, min(start + size, total + 1)))
        body = {"returnCode": 0, "totRecords": total, "startAt": start}
        if count_field:
            body["returnedRecords"] = len(page)
        if page or list_key == "empty":
            body["jiinvoiceList"] = {"jiinvoice": [{"header": {"invoiceId": i}} for i in page]}
        return body

    return fetch, calls


@given(total=st.integers(0, 60), size=st.integers(1, 25), count_field=st.booleans())
def test_paginate_property(total, size, count_field):
    fetch, calls = _pages(total, size, count_field=count_field)
    got = [item["header"]["invoiceId"] for item in j1p.paginate(fetch)]
    assert got == list(range(1, total + 1))
    expected_calls = max(1, -(-total // size))
    # without returnedRecords the end is only seen from an empty page or totRecords
    assert len(calls) == expected_calls
    assert calls == [1 + i * size for i in range(expected_calls)]


def test_paginate_single_object_and_missing_list():
    bodies = iter([{"returnCode": 0, "totRecords": 1, "returnedRecords": 1, "jiinvoiceList": {"jiinvoice": {"a": 1}}}])
    assert list(j1p.paginate(lambda start: next(bodies))) == [{"a": 1}]
    assert list(j1p.paginate(lambda start: {"returnCode": 0, "totRecords": 0, "returnedRecords": 0})) == []
    # string counters (seen in some J1P answers)
    bodies2 = iter([{"totRecords": "1", "returnedRecords": "1", "jiinvoiceList": {"jiinvoice": [{"b": 2}]}}])
    assert list(j1p.paginate(lambda start: next(bodies2))) == [{"b": 2}]


def test_paginate_inconsistent_page_is_an_error():
    with pytest.raises(RejectedError, match="returnedRecords=5"):
        list(j1p.paginate(lambda start: {"totRecords": 10, "returnedRecords": 5}))


def test_filters():
    lo = datetime(2026, 11, 22, tzinfo=UTC)
    hi = datetime(2026, 11, 23, 1, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert j1p.last_update_filter(lo, hi) == {
        "flt": "lastUpdate=ge=2026-11-22T00:00:00.000Z;lastUpdate=lt=2026-11-23T00:00:00.123Z"
    }
    assert j1p.last_update_filter(lo, hi, "params", from_param="from", to_param="to") == {
        "from": "2026-11-22T00:00:00.000Z",
        "to": "2026-11-23T00:00:00.123Z",
    }
    with pytest.raises(ValueError, match="naive"):
        j1p.last_update_filter(datetime(2026, 1, 1), hi)
    with pytest.raises(ValueError, match="ends before"):
        j1p.last_update_filter(hi, lo)
    with pytest.raises(ValueError, match="filter style"):
        j1p.last_update_filter(lo, hi, "odata")  # type: ignore[arg-type]


def test_conversions():
    assert j1p.to_decimal(620.13) == Decimal("620.13")
    assert j1p.to_decimal("1,234.50") == Decimal("1234.50")
    assert j1p.to_decimal({"currency": "GBP", "value": 475}) == Decimal(475)
    assert j1p.to_decimal(None) is None and j1p.to_decimal("") is None
    with pytest.raises(ValueError):
        j1p.to_decimal("abc")
    assert j1p.to_bool("true") is True and j1p.to_bool("FALSE") is False and j1p.to_bool(None) is None
    with pytest.raises(ValueError):
        j1p.to_bool("maybe")
    assert j1p.parse_datetime("2026-11-22T10:15:30.123Z") == datetime(2026, 11, 22, 10, 15, 30, 123000, tzinfo=UTC)
    assert j1p.parse_datetime("2026-11-22T11:15:30+0100") == datetime(2026, 11, 22, 10, 15, 30, tzinfo=UTC)
    assert j1p.parse_datetime(1700000000000) == datetime.fromtimestamp(1700000000, tz=UTC)
    assert j1p.parse_date("2026-11-22T00:00:00.000Z") == date(2026, 11, 22)
    assert j1p.parse_date("2026-11-22") == date(2026, 11, 22)


def test_normalize_invoice():
    detail = {
        "header": {
            "invoiceId": "2428001",
            "lastUpdate": "2026-11-14T04:40:29.780Z",
            "invoiceDate": "2026-11-10T00:00:00.000Z",
            "dueDate": "2026-12-10T00:00:00.000Z",
            "nonPOInvoice": "true",
            "taxCharge1": 20.5,
            "shippingCharge": 0,
            "total": {"currency": "GBP", "value": Decimal("123.45")},
            "customFieldValueSetList": {
                "customFieldValueSet": [
                    {"name": "InvoiceCategory", "customFieldValueList": {"customFieldValue": [{"value": "GOODS"}]}},
                    {"name": "ExternalReference", "customFieldValueList": {"customFieldValue": [{}]}},
                ]
            },
        },
        "lineList": {"invoiceLine": [{"quantity": 2, "unitPrice": "51.475", "taxable": "false"}]},
    }
    out = j1p.normalize_invoice(detail)
    h = out["header"]
    assert h["invoiceId"] == 2428001
    assert h["lastUpdate"] == datetime(2026, 11, 14, 4, 40, 29, 780000, tzinfo=UTC)
    assert h["invoiceDate"] == date(2026, 11, 10)
    assert h["nonPOInvoice"] is True
    assert h["taxCharge1"] == Decimal("20.5") and h["total"]["value"] == Decimal("123.45")
    assert out["lines"] == [{"quantity": Decimal(2), "unitPrice": Decimal("51.475"), "taxable": False}]
    assert j1p.custom_field_values(detail["header"]) == {"InvoiceCategory": "GOODS", "ExternalReference": None}
    with pytest.raises(ValueError, match="nonPOInvoice"):
        j1p.normalize_header({"nonPOInvoice": "perhaps"})


def _live_list(invoice_ids: list[int], page_size: int, on_fetch):
    """A server listing ``invoice_ids`` (sorted) by 1-based offset; ``on_fetch(n, ids)`` may change the list."""
    calls = {"n": 0}

    def fetch(start: int) -> dict:
        calls["n"] += 1
        on_fetch(calls["n"], invoice_ids)
        page = invoice_ids[start - 1 : start - 1 + page_size]
        return {
            "returnCode": 0,
            "totRecords": len(invoice_ids),
            "returnedRecords": len(page),
            "startAt": start,
            "jiinvoiceList": {"jiinvoice": [{"header": {"invoiceId": i}} for i in page]},
        }

    return fetch, calls


def _ids(items) -> list[int]:
    return [it["header"]["invoiceId"] for it in items]


def test_paging_overlap_survives_a_record_leaving_the_window_mid_listing() -> None:
    ids = [1, 2, 3, 4, 5]

    def clerk_edits_invoice_1(n: int, live: list[int]) -> None:
        if n == 2 and 1 in live:
            live.remove(1)  # its lastUpdate moved out of the window after page 1 was read

    fetch, _ = _live_list(ids, 2, clerk_edits_invoice_1)
    got = _ids(j1p.paginate(fetch, id_of=lambda it: it["header"]["invoiceId"]))
    assert sorted(got) == [1, 2, 3, 4, 5]  # nothing skipped (1 was read before it left)
    assert len(got) == len(set(got))  # and nothing twice


def test_paging_backs_up_when_several_records_leave_at_once() -> None:
    ids = list(range(1, 11))

    def bulk_edit(n: int, live: list[int]) -> None:
        if n == 2:
            del live[0:3]

    fetch, calls = _live_list(ids, 3, bulk_edit)
    got = _ids(j1p.paginate(fetch, id_of=lambda it: it["header"]["invoiceId"]))
    assert sorted(got) == list(range(1, 11)) and len(got) == 10
    assert calls["n"] >= 4


def test_an_unchanging_list_costs_one_call_per_page() -> None:
    fetch, calls = _live_list(list(range(1, 65)), 20, lambda n, live: None)
    got = _ids(j1p.paginate(fetch, id_of=lambda it: it["header"]["invoiceId"]))
    assert got == list(range(1, 65)) and calls["n"] == 4  # P = 4 pages
