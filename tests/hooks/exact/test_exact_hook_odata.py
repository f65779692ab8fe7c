"""OData helpers: literals, dates, codes, envelopes, error bodies (unit and property-based)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.exact import odata


def unquote_string(literal: str) -> str:
    """An independent reader of OData string literals: the inverse the server applies."""
    assert literal[0] == literal[-1] == "'"
    body = literal[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "'":
            assert body[i + 1] == "'", f"lone quote in {literal!r}"
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@given(st.text())
def test_string_literal_round_trips_and_never_leaves_a_lone_quote(text: str) -> None:
    lit = odata.string(text)
    assert unquote_string(lit) == text
    assert lit.count("'") == 2 + 2 * text.count("'")


def test_literals() -> None:
    g = uuid.UUID("0C5E6F4C-1B9A-4D8F-9E4A-2A9D3B8E7F10")
    assert odata.literal("it's") == "'it''s'"
    assert odata.literal(g) == "guid'0c5e6f4c-1b9a-4d8f-9e4a-2a9d3b8e7f10'"
    assert odata.guid("{0C5E6F4C-1B9A-4D8F-9E4A-2A9D3B8E7F10}") == "guid'0c5e6f4c-1b9a-4d8f-9e4a-2a9d3b8e7f10'"
    assert odata.literal(odata.Int64(123)) == "123L" == odata.int64(123)
    assert odata.literal(5) == "5"
    assert odata.literal(True) == "true" and odata.literal(False) == "false"
    assert odata.literal(None) == "null"
    assert odata.literal(Decimal("12.50")) == "12.50"
    assert odata.literal(datetime(2024, 1, 2, 3, 4, 5)) == "datetime'2024-01-02T03:04:05'"
    cet = datetime(2024, 1, 2, 4, 4, 5, 250000, tzinfo=UTC) + timedelta(0)
    assert odata.literal(cet) == "datetime'2024-01-02T04:04:05.250'"
    assert odata.literal(date(2024, 3, 1)) == "datetime'2024-03-01T00:00:00'"
    assert odata.eq("Code", odata.pad_code(8)) == "Code eq '                 8'"
    with pytest.raises(ValueError):
        odata.guid("not-a-guid' or 1 eq 1")
    with pytest.raises(TypeError):
        odata.literal(object())


aware = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@given(aware)
def test_date_round_trips_through_ms_and_iso(dt: datetime) -> None:
    assert odata.parse_date(odata.format_date(dt)) == dt
    assert odata.parse_date(odata.iso(dt)) == dt
    parsed = odata.parse_date(odata.format_date(dt))
    assert parsed is not None and parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_parse_date_variants() -> None:
    assert odata.parse_date("/Date(1382667872203)/") == datetime(2013, 10, 25, 2, 24, 32, 203000, tzinfo=UTC)
    # an offset suffix names the zone; the ms count is the instant
    assert odata.parse_date("/Date(1382667872203+0100)/") == datetime(2013, 10, 25, 2, 24, 32, 203000, tzinfo=UTC)
    assert odata.parse_date("/Date(-1000)/") == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert odata.parse_date(None) is None
    assert odata.parse_date("2024-01-31T10:00:00Z") == datetime(2024, 1, 31, 10, tzinfo=UTC)
    assert odata.iso(date(2024, 1, 31)) == "2024-01-31"
    with pytest.raises(ValueError):
        odata.parse_date("yesterday")


def test_pad_code() -> None:
    assert odata.pad_code(8) == " " * 17 + "8"
    assert odata.pad_code("  1059 ") == "1059".rjust(18)
    assert len(odata.pad_code("X" * 18)) == 18
    with pytest.raises(ValueError):
        odata.pad_code("X" * 19)
    with pytest.raises(ValueError):
        odata.pad_code("  ")


def test_envelopes_and_next_link() -> None:
    rows = [{"ID": 1}, {"ID": 2}]
    paged = {"d": {"results": rows, "__next": "https://x/api/v1/1/crm/Accounts?$skiptoken=guid'a'"}}
    assert odata.results(paged) == rows
    assert odata.next_link(paged) == "https://x/api/v1/1/crm/Accounts?$skiptoken=guid'a'"
    assert odata.results({"d": rows}) == rows and odata.next_link({"d": rows}) is None
    assert odata.results({"d": {"ID": 3}}) == [{"ID": 3}] and odata.entity({"d": {"ID": 3}}) == {"ID": 3}
    assert odata.results({"d": {"results": []}}) == []
    with pytest.raises(ValueError):
        odata.results({"error": {}})


def test_error_bodies() -> None:
    body = '{"error":{"code":"","message":{"lang":"nl-NL","value":"Verplicht: Dagboek"}}}'
    err = odata.parse_error(body)
    assert err == odata.ODataError(code="", message="Verplicht: Dagboek", lang="nl-NL")
    assert odata.parse_error(b"") is None
    assert odata.parse_error("<html>maintenance</html>") is None
    assert odata.parse_error('{"d": {}}') is None
    assert odata.parse_oauth_error(b'{"error":"invalid_grant","error_description":"Unknown code."}') == (
        "invalid_grant",
        "Unknown code.",
    )
    assert odata.parse_oauth_error(b"") == ("", "")
    assert odata.looks_like_html("text/html; charset=utf-8", b"")
    assert odata.looks_like_html("application/octet-stream", b"  <!DOCTYPE html><html>")
    assert not odata.looks_like_html("application/json", b'{"d": {}}')
