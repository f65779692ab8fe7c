"""``mlc mappings import codes --check-exact``: GL account, cost-centre and VAT targets are checked against the
master data of the tenant's divisions in the Exact sandbox; one unknown code imports nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from ml_connector.cli.mappings_cmd import app
from ml_connector.store.db import session_scope
from ml_connector.store.models import CodeMap


def _import(world: Any, path: Path, *extra: str) -> Any:
    env = {"MLC_DB_URL": world.engine.url.render_as_string(hide_password=False)}
    return CliRunner().invoke(app, ["import", "codes", str(path), "--tenant", "demo", *extra], env=env)


def _rows(world: Any) -> int:
    with session_scope(world.engine) as s:
        return s.scalar(select(func.count()).select_from(CodeMap)) or 0


def test_targets_unknown_to_exact_are_refused_naming_the_row(sqlite_world: Any, tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text(
        "kind,source_value,target_value,note\n"
        "gl_account,Invoice,7000,\n"
        "gl_account,Credit memo,7998,typo\n"
        "cost_center,CC900,CC100,\n"
        "cost_center,CC901,CC999,\n"
        "vat_code,20,1,\n"
        "vat_code,5,77,\n"
        "vat_code,17.5,9,old rate\n",
        encoding="utf-8",
    )
    result = _import(sqlite_world, path, "--check-exact")
    assert result.exit_code == 1, result.output
    out = result.output
    assert "row 3, column 'target_value': GL account '7998' does not exist in Exact" in out
    assert "row 5, column 'target_value': cost centre 'CC999' does not exist in Exact" in out
    assert "row 7, column 'target_value': VAT code '77' does not exist in Exact" in out
    assert "row 8, column 'target_value': VAT code '9' is blocked (or inactive) in Exact" in out
    assert "row 2" not in out and "row 4" not in out and "row 6" not in out
    assert _rows(sqlite_world) == 0

    # without --check-exact the same file is only checked on its own (no call to Exact)
    calls = sqlite_world.exact_calls()
    assert _import(sqlite_world, path).exit_code == 0
    assert sqlite_world.exact_calls() == calls and _rows(sqlite_world) == 7

    good = tmp_path / "good.csv"
    good.write_text("kind,source_value,target_value,note\ngl_account,Invoice,7000,\nvat_code,20,1,\n", encoding="utf-8")
    assert _import(sqlite_world, good, "--check-exact").exit_code == 0
