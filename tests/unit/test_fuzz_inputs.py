"""Property-based: random mutations of a valid tenant file and of valid mapping CSVs give either a result or
clear, located errors (``file:line: …`` / ``row N…``), never a traceback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from ml_connector.config import load_tenants
from ml_connector.errors import ConfigError
from ml_connector.mappings.csvio import ImportProblems, import_codes, import_vendors

REPO = Path(__file__).resolve().parents[2]
TENANT_TEXT = (REPO / "include" / "config" / "tenants.yaml").read_text(encoding="utf-8")
CODES_CSV = (
    "kind,source_value,target_value,note\n"
    "gl_account,Invoice,7000,standard\n"
    "cost_center,CC900,CC200,moved\n"
    "vat_code,20,1,\n"
    "business_unit,UK-MFG,111111,\n"
    "currency,GBP,GBP,\n"
)
VENDORS_CSV = (
    "division,jaggaer_supplier_id,jaggaer_supplier_number,exact_code,exact_account_id,name,vat_number,coc_number,"
    "email,source,active\n"
    "111111,59001,S-1,1001,,Acme Ltd,GB123456789,12345678,ap@acme.example,import,true\n"
    "222222,,S-2,,f9759f89-5178-5372-89ec-7d11fae93a97,'=Evil,,,,admin,false\n"
)
#: Characters that stress YAML and CSV parsers.
NASTY = st.sampled_from([*":-{}[],&*!|>'\"%@`#\n\t \\=+\r?", "  ", "\n  ", "- ", ": ", "'''", "\ufeff", "\x1f"])
TEXT = st.one_of(NASTY, st.text(max_size=6), st.from_regex(r"-?[0-9]{1,7}(\.[0-9]{1,3})?", fullmatch=True))


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` after 1-4 random edits: delete, duplicate or swap lines; insert, delete or replace characters."""
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        op = draw(st.sampled_from(["del_line", "dup_line", "swap", "insert", "delete", "replace"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "del_line" and len(lines) > 1:
            del lines[i]
            text = "\n".join(lines)
        elif op == "dup_line":
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == "swap":
            j = draw(st.integers(0, max(len(lines) - 1, 0)))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            if op == "insert":
                text = text[:at] + draw(TEXT) + text[at:]
            elif op == "delete":
                text = text[:at] + text[at + draw(st.integers(1, 5)) :]
            else:
                text = text[:at] + draw(TEXT) + text[at + 1 :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(TENANT_TEXT))
def test_tenant_file_mutations_load_or_give_located_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        tenants = load_tenants(path)
    except ConfigError as exc:
        assert exc.problems
        located = re.compile(rf"^{re.escape(str(path))}:\d+: \S")
        for problem in exc.problems:
            assert located.match(problem), problem
            assert "Traceback" not in problem
        return
    assert tenants and all(t.name == name for name, t in tenants.items())


@pytest.fixture
def session(sqlite_engine: Any) -> Any:
    return Session(sqlite_engine)


ROW = re.compile(r"^row \d+(, column .+?)?: \S")


def _import(session: Session, kind: str, text: str) -> None:
    try:
        if kind == "codes":
            result = import_codes(session, "demo", text, divisions=[111111, 222222])
        else:
            result = import_vendors(session, "demo", text, divisions=[111111, 222222])
        assert result.created + result.updated >= 0
    except ImportProblems as exc:
        assert exc.problems
        for problem in exc.problems:
            assert ROW.match(problem), problem
    finally:
        session.rollback()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(CODES_CSV))
def test_code_csv_mutations_import_or_name_the_row(session: Session, text: str) -> None:
    _import(session, "codes", text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(VENDORS_CSV))
def test_vendor_csv_mutations_import_or_name_the_row(session: Session, text: str) -> None:
    _import(session, "vendors", text)
