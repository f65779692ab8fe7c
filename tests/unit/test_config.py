from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_connector.config import load_tenants
from ml_connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "include" / "config" / "tenants.yaml"

BROKEN = """\
tenants:
  demo:
    exact:
      conn_id: exact_demo
      divisions: []
    jaggaer:
      conn_id: jaggaer_demo
    invoice_poll:
      unmatched_vendor: explode
      timezone: Mars/Olympus
      schedul: "0 2 * * *"
  Bad-Name:
    exact: {conn_id: e, divisions: [1]}
"""


def test_demo_tenant_loads() -> None:
    tenants = load_tenants(DEMO)
    demo = tenants["demo"]
    assert demo.exact.divisions == [111111, 222222]
    assert demo.jaggaer.business_units == {"UK-MFG": 111111, "UK-SVC": 222222}
    assert demo.invoice_poll.unmatched_vendor == "halt"
    assert demo.journal_for(222222) == "60"


def test_broken_file_names_file_line_tenant_and_field(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        load_tenants(path)
    problems = info.value.problems
    expected = [
        (5, "'demo'", "exact.divisions"),
        (9, "'demo'", "invoice_poll.unmatched_vendor"),
        (10, "'demo'", "invoice_poll.timezone"),
        (11, "'demo'", "invoice_poll.schedul"),
        (12, "'Bad-Name'", "tenant name"),
        (12, "'Bad-Name'", "jaggaer"),
    ]
    for line, tenant, field in expected:
        assert any(p.startswith(f"{path}:{line}: tenant {tenant}: {field}") for p in problems), (field, problems)
    assert len(problems) == len(expected)


def test_cross_checks_divisions(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1]}\n    jaggaer:\n"
        "      conn_id: j\n      business_units: {BU: 2}\n"
    )
    with pytest.raises(ConfigError, match=r"business_units\['BU'\] routes to division 2"):
        load_tenants(path)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants:\n  demo: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_tenants(bad)
    with pytest.raises(ConfigError, match="cannot read the tenant file"):
        load_tenants(tmp_path / "missing.yaml")


def test_cli_prints_one_line_per_problem_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(BROKEN)
    result = subprocess.run(
        [sys.executable, "-c", "from ml_connector.cli import main; main()", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 6
    assert all(line.startswith(f"{path}:") for line in lines)
    assert "Traceback" not in result.stderr


PO_FORMATS = """\
tenants:
  two:
    exact: {conn_id: e, divisions: [111111, 222222]}
    jaggaer: {conn_id: j}
    po_push:
      po_number_format: "PO-{order_number}"
  nonum:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    po_push:
      po_number_format: "PO-{division}"
  unknown:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    po_push:
      po_number_format: "{order_number}-{branch}"
"""


def test_po_number_format_must_identify_the_order(tmp_path: Path) -> None:
    """Review finding: a format without {division} gives two divisions' orders one JAGGAER PONumber (and the
    second overwrote the first's PO). The loader names file, line, tenant and field."""
    path = tmp_path / "tenants.yaml"
    path.write_text(PO_FORMATS)
    with pytest.raises(ConfigError) as info:
        load_tenants(path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    two, nonum, unknown = problems
    field = "po_push.po_number_format"
    assert two.startswith(f"{path}:6: tenant 'two': {field}: 'PO-{{order_number}}' has no {{division}}")
    assert "2 divisions [111111, 222222]" in two
    assert nonum.startswith(f"{path}:11: tenant 'nonum': po_push.po_number_format:") and "{order_number}" in nonum
    assert unknown.startswith(f"{path}:16: tenant 'unknown': po_push.po_number_format:") and "'branch'" in unknown


def test_po_number_format_without_division_is_fine_for_one_po_division(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  t:\n    exact: {conn_id: e, divisions: [1, 2]}\n    jaggaer: {conn_id: j}\n"
        "    po_push:\n      divisions: [2]\n      po_number_format: 'PO{order_number:06d}'\n"
    )
    assert load_tenants(path)["t"].po_push.po_number_format == "PO{order_number:06d}"


SHARES = """\
tenants:
  ok:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    invoice_poll: {exact_daily_share: "60%"}
  over:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    invoice_poll: {exact_daily_share: 1.5}
  word:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    po_push: {exact_daily_share: most}
  nothing_left:
    exact: {conn_id: e, divisions: [1]}
    jaggaer: {conn_id: j}
    invoice_poll: {exact_daily_share: 0.95}
"""


def test_daily_budget_shares_are_fractions_and_leave_the_po_push_a_reserve(tmp_path: Path) -> None:
    """Each flow's share of a division's daily Exact calls (exact.daily_budget): defaults leave a reserve, a share
    is a fraction (or a percentage) above 0 and at most 1, and the invoice poll's must be below the PO push's."""
    demo = load_tenants(DEMO)["demo"]
    assert (demo.invoice_poll.exact_daily_share, demo.po_push.exact_daily_share) == (0.7, 0.9)
    path = tmp_path / "tenants.yaml"
    path.write_text(SHARES)
    with pytest.raises(ConfigError) as info:
        load_tenants(path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    over, word, nothing_left = problems
    assert over.startswith(f"{path}:9: tenant 'over': invoice_poll.exact_daily_share: ") and "at most 1" in over
    assert word.startswith(f"{path}:13: tenant 'word': po_push.exact_daily_share: 'most' is not a share") and (
        'e.g. 0.7, or "70%"' in word
    )
    assert nothing_left.startswith(f"{path}:17: tenant 'nothing_left': invoice_poll.exact_daily_share: ")
    assert "(0.95) must be below po_push.exact_daily_share (0.9)" in nothing_left
    path.write_text(SHARES.split("  over:")[0])
    assert load_tenants(path)["ok"].invoice_poll.exact_daily_share == 0.6
