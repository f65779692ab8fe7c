"""Tenant file: duplicate keys refused naming both lines, every problem (field and cross-field) in one pass,
``vat_codes`` keys are tax rates, tenant names may contain hyphens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_connector.config import load_tenants
from ml_connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

THREE_KINDS = """\
tenants:
  demo:
    exact:
      conn_id: exact_demo
      divisions: [111111, 222222]
    jaggaer:
      conn_id: jaggaer_demo
      business_units: {UK-MFG: 111111, UK-NEW: 333333}
    invoice_poll:
      journal: "60"
      journal: "70"
      overlap_hours: -1
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_tenants(path)
    return info.value.problems


def test_config_check_prints_a_duplicate_key_a_field_error_and_a_cross_field_error_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(THREE_KINDS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from ml_connector.cli import main; main()", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}:11: duplicate key 'journal' (also on line 10): YAML would keep only this one; remove one of them",
        f"{path}:12: tenant 'demo': invoice_poll.overlap_hours: Input should be greater than or equal to 0",
        f"{path}:8: tenant 'demo': jaggaer.business_units.UK-NEW: jaggaer.business_units['UK-NEW'] routes to "
        "division 333333, which is not in exact.divisions [111111, 222222]",
    ]


def test_duplicate_keys_anywhere_are_refused(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "tenants:\n"
        "  a:\n    exact: {conn_id: e, divisions: [1]}\n    jaggaer: {conn_id: j}\n"
        "  a:\n    exact: {conn_id: e2, divisions: [1]}\n    jaggaer: {conn_id: j}\n"
        "    jaggaer: {conn_id: j3}\n",
    )
    assert problems[0].endswith(
        ":5: duplicate key 'a' (also on line 2): YAML would keep only this one; remove one of them"
    )
    assert "duplicate key 'jaggaer' (also on line 7)" in problems[1] and ":8:" in problems[1]
    assert len(problems) == 2


def test_a_valid_file_with_a_duplicate_key_is_still_refused(tmp_path: Path) -> None:
    """The reproduced case: `journal: "60"` then `journal: "70"` used to pass with 70."""
    text = (REPO / "include" / "config" / "tenants.yaml").read_text(encoding="utf-8")
    text = text.replace('      journal: "60"\n', '      journal: "60"\n      journal: "70"\n')
    (problem,) = _problems(tmp_path, text)
    assert "duplicate key 'journal'" in problem


def test_cross_field_errors_are_reported_next_to_field_errors(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1, 2]}\n"
        "    jaggaer: {conn_id: j, business_units: {B: 9}}\n"
        "    po_push: {divisions: [1, 7], po_number_format: 'PO-{order_number}', timezone: Nowhere/City}\n",
    )
    text = "\n".join(problems)
    assert "po_push.timezone: unknown time zone 'Nowhere/City'" in text
    assert "routes to division 9" in text
    assert "po_push.divisions has 7" in text
    assert "'PO-{order_number}' has no {division}" in text
    assert len(problems) == 4


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ('"twenty"', "key 'twenty' is not a tax rate"),
        ('"120"', "key '120' is not between 0 and 100"),
        ('"-5"', "key '-5' is not between 0 and 100"),
        ('"x%"', "key 'x%' is not a tax rate"),
    ],
)
def test_vat_code_keys_must_be_rates(tmp_path: Path, key: str, message: str) -> None:
    problems = _problems(
        tmp_path,
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1]}\n    jaggaer: {conn_id: j}\n"
        f"    invoice_poll:\n      vat_codes:\n        {key}: '1'\n",
    )
    assert len(problems) == 1 and ":7: tenant 't': invoice_poll.vat_codes" in problems[0] and message in problems[0]


def test_vat_code_keys_may_be_numbers_and_must_not_repeat_a_rate(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1]}\n    jaggaer: {conn_id: j}\n"
        "    invoice_poll:\n      vat_codes: {20: '1', 17.5: '4', '0 %': '3'}\n",
        encoding="utf-8",
    )
    assert load_tenants(path)["t"].invoice_poll.vat_codes == {"20": "1", "17.5": "4", "0 %": "3"}
    problems = _problems(
        tmp_path,
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1]}\n    jaggaer: {conn_id: j}\n"
        "    invoice_poll:\n      vat_codes: {'20': '1', '20.0': '2'}\n",
    )
    assert len(problems) == 1 and "keys '20' and '20.0' are the same rate" in problems[0]


def test_tenant_names_may_contain_hyphens(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  acme-uk:\n    exact: {conn_id: exact_acme, divisions: [1]}\n    jaggaer: {conn_id: j}\n",
        encoding="utf-8",
    )
    assert load_tenants(path)["acme-uk"].name == "acme-uk"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("Acme UK", "acme-uk"), ("1st", "t-1st"), ("acme.uk", "acme-uk"), ("a" * 42, "a" * 41)],
)
def test_a_bad_tenant_name_says_why_and_what_to_use(tmp_path: Path, name: str, suggestion: str) -> None:
    (problem,) = _problems(
        tmp_path, f"tenants:\n  '{name}':\n    exact: {{conn_id: e, divisions: [1]}}\n    jaggaer: {{conn_id: j}}\n"
    )
    assert f"tenant {name!r}: tenant name: {name!r} cannot be a tenant name" in problem
    assert f"(e.g. {suggestion!r})" in problem and "DAG ids and Airflow pool names" in problem
