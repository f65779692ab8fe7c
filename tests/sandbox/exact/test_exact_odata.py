"""The $filter parser and friends, without a server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.exact.odata import (
    BOOL,
    DATETIME,
    GUID,
    INT,
    STR,
    BoolOp,
    Compare,
    Field,
    Literal,
    ODataError,
    compile_filter,
    format_date,
    parse_datetime_literal,
    parse_filter,
    simple_comparison,
)

SCHEMA = {"Timestamp": INT, "EntityType": INT, "Name": STR, "ID": GUID, "Modified": DATETIME, "IsSupplier": BOOL}


def matches(expr: str, row: dict) -> bool:
    return compile_filter(parse_filter(expr), SCHEMA)(row)


def test_literals() -> None:
    assert parse_filter("Timestamp gt 123L") == Compare("gt", Field("Timestamp"), Literal(123, INT))
    g = "6F1C1F0E-5D7B-4A53-9A59-3C0E1B7D2A41"
    assert parse_filter(f"ID eq guid'{g}'").right == Literal(g.lower(), GUID)
    assert parse_filter("Modified ge datetime'2024-01-01T00:00:00'").right.value == 1704067200000
    assert parse_filter("Name eq 'O''Brien'").right == Literal("O'Brien", STR)
    assert parse_filter("IsSupplier eq true").right == Literal(True, BOOL)


def test_precedence_and_parentheses() -> None:
    ast = parse_filter("Timestamp gt 1 or Timestamp lt 0 and EntityType eq 22")
    assert isinstance(ast, BoolOp) and ast.op == "or"
    ast = parse_filter("(Timestamp gt 1 or Timestamp lt 0) and EntityType eq 22")
    assert isinstance(ast, BoolOp) and ast.op == "and"
    assert matches("(Timestamp gt 1 or Timestamp lt 0) and EntityType eq 22", {"Timestamp": 5, "EntityType": 22})
    assert not matches("(Timestamp gt 1 or Timestamp lt 0) and EntityType eq 22", {"Timestamp": 5, "EntityType": 2})
    assert matches("Timestamp gt 1 or Timestamp lt 0 and EntityType eq 22", {"Timestamp": 5, "EntityType": 2})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("Timestamp eq 10", True),
        ("Timestamp ne 10", False),
        ("Timestamp ge 10 and Timestamp le 10", True),
        ("Timestamp lt 10", False),
        ("not (Timestamp gt 10)", True),
        ("Name eq 'ACME LTD'", True),  # case-insensitive, like SQL Server
        ("startswith(Name, 'acme')", True),
        ("substringof('me l', Name)", True),
        ("IsSupplier", True),
        ("IsSupplier eq false", False),
        ("Modified lt datetime'2024-01-02T00:00:00Z'", True),
    ],
)
def test_evaluation(expr: str, expected: bool) -> None:
    row = {"Timestamp": 10, "Name": "Acme Ltd", "IsSupplier": True, "Modified": 1704067200000}
    assert matches(expr, row) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "Timestamp gt",
        "Timestamp gt 1 and",
        "(Timestamp gt 1",
        "Nope eq 1",  # unknown field
        "Modified ge '2024-01-01'",  # string against a datetime
        "ID eq guid'not-a-guid'",
        "Name eq 'unterminated",
        "Timestamp gt 1 Timestamp",
        "frobnicate(Name)",
        "__import__('os')",
    ],
)
def test_errors(expr: str) -> None:
    with pytest.raises(ODataError):
        compile_filter(parse_filter(expr), SCHEMA)


def test_simple_comparison_flips() -> None:
    assert simple_comparison(parse_filter("5 lt Timestamp")) == ("Timestamp", "gt", 5)


def test_dates() -> None:
    assert format_date(1382667872203) == "/Date(1382667872203)/"
    # Server-local wall-clock (the [guess] variant): 1 January, 00:00 UTC is 01:00 in Amsterdam.
    assert format_date(1704067200000, "Europe/Amsterdam") == "/Date(1704070800000)/"
    assert parse_datetime_literal("2024-01-01T01:00:00", "Europe/Amsterdam") == 1704067200000


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_string_literal_round_trip(text: str) -> None:
    escaped = text.replace("'", "''")
    assert parse_filter(f"Name eq '{escaped}'").right == Literal(text, STR)
