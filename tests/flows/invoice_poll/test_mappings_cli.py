"""``mlc mappings``: list, export, import (validated, all or nothing), set, delete — on the connector store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from ml_connector.cli.mappings_cmd import app
from ml_connector.store.db import session_scope
from ml_connector.store.models import CodeMap, VendorMap

GUID = "f9759f89-5178-5372-89ec-7d11fae93a97"


@pytest.fixture
def cli(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLC_DB_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
        return result

    return run


def test_set_list_export_import_delete_round_trip(cli: Any, engine: Any, tmp_path: Path) -> None:
    cli("set", "vendor", "--tenant", "demo", "--division", "111111", "--jaggaer-id", "59001", "--exact-code", "1003")
    cli("set", "vendor", "--division", "222222", "--jaggaer-number", "X-9", "--exact-account-id", GUID)
    cli("set", "code", "--kind", "vat_code", "--source", "20.00", "--target", "1", "--note", "standard rate")
    cli("set", "code", "--kind", "cost_center", "--source", "CC900", "--target", "CC200")
    listed = cli("list").output
    assert "JAGGAER 59001" in listed and "Exact 1003" in listed and "vat_code" in listed and "'20' -> '1'" in listed

    vendors, codes = tmp_path / "vendors.csv", tmp_path / "codes.csv"
    cli("export", "vendors", "--output", str(vendors))
    cli("export", "codes", "--output", str(codes))
    assert vendors.read_text().splitlines()[0].startswith("division,jaggaer_supplier_id,")
    assert "vat_code,20,1,standard rate" in codes.read_text()

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM mlc_vendor_map"))
        conn.execute(text("DELETE FROM mlc_code_map"))
    assert "2 created, 0 updated" in cli("import", "vendors", str(vendors)).output
    assert "2 created, 0 updated" in cli("import", "codes", str(codes)).output
    assert "0 created, 2 updated" in cli("import", "codes", str(codes)).output
    with session_scope(engine) as s:
        rows = {
            (r.division, r.jaggaer_supplier_id, r.jaggaer_supplier_number, r.exact_code, r.exact_account_id)
            for r in s.scalars(select(VendorMap))
        }
        assert rows == {(111111, "59001", None, "1003", None), (222222, None, "X-9", None, GUID)}
        assert s.scalar(select(CodeMap.target_value).where(CodeMap.source_value == "CC900")) == "CC200"

    cli("delete", "vendor", "--division", "111111", "--jaggaer-id", "59001")
    cli("delete", "code", "--kind", "vat_code", "--source", "20")
    cli("delete", "code", "--kind", "vat_code", "--source", "20", ok=False)
    assert "1 link(s)" in cli("list", "--what", "vendors").output


def test_import_names_row_and_column_and_imports_nothing(cli: Any, engine: Any, tmp_path: Path) -> None:
    bad = tmp_path / "vendors.csv"
    bad.write_text(
        "division,jaggaer_supplier_id,exact_code,exact_account_id,colour\n"
        "111111,50001,1001,,\n"  # fine
        "999,50002,1002,,\n"  # not a division of the tenant
        "111111,,1003,,\n"  # no JAGGAER side
        "111111,50004,,not-a-guid,\n"  # bad GUID
        "111111,50001,1005,,\n"  # the same vendor twice
    )
    result = cli("import", "vendors", str(bad), ok=False)
    out = result.output
    assert "row 1, column 'colour': unknown column" in out
    assert "row 3, column 'division': 999 is not one of the tenant's divisions" in out
    assert "row 4, column 'jaggaer_supplier_id': empty" in out
    assert "row 5, column 'exact_account_id': 'not-a-guid' is not a GUID" in out
    assert "row 6: the same JAGGAER vendor as row 2" in out
    assert "nothing imported (5 problem(s))" in out

    codes = tmp_path / "codes.csv"
    codes.write_text("kind,source_value,target_value\ngl_account,Invoice,7100\nvat_code,lots,1\nbusiness_unit,X,abc\n")
    out = cli("import", "codes", str(codes), ok=False).output
    assert "row 3, column 'source_value': 'lots' is not a tax rate" in out
    assert "row 4, column 'target_value': 'abc' is not an Exact division number" in out
    with session_scope(engine) as s:
        assert s.scalars(select(VendorMap)).first() is None
        assert s.scalars(select(CodeMap)).first() is None  # the good gl_account row was not imported either


def test_a_conflict_found_while_writing_rolls_the_whole_import_back(cli: Any, engine: Any, tmp_path: Path) -> None:
    cli("set", "vendor", "--division", "111111", "--jaggaer-id", "1", "--exact-account-id", GUID)
    csv = tmp_path / "v.csv"
    csv.write_text(f"division,jaggaer_supplier_id,exact_code,exact_account_id\n111111,2,1002,\n111111,3,,{GUID}\n")
    out = cli("import", "vendors", str(csv), ok=False).output
    assert "row 3: Exact account" in out and "already linked to JAGGAER vendor 1" in out
    with session_scope(engine) as s:
        assert [r.jaggaer_supplier_id for r in s.scalars(select(VendorMap))] == ["1"]


def test_set_refuses_what_cannot_work(cli: Any) -> None:
    assert (
        "not one of tenant demo's divisions"
        in cli("set", "vendor", "--division", "5", "--jaggaer-id", "1", "--exact-code", "1", ok=False).output
    )
    assert (
        "--kind must be one of" in cli("set", "code", "--kind", "gl", "--source", "a", "--target", "b", ok=False).output
    )
    assert (
        "not one of tenant demo's divisions"
        in cli("set", "code", "--kind", "business_unit", "--source", "UK-X", "--target", "333333", ok=False).output
    )
    assert (
        "name the Exact supplier" in cli("set", "vendor", "--division", "111111", "--jaggaer-id", "1", ok=False).output
    )
