"""The tenant-file settings the VAT and currency rules read (issue 11): ``invoice_poll.vat_codes_by_taxable`` and
``invoice_poll.currencies_by_division``, and the located errors a wrong value gets (file, line, tenant, field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_connector.config import load_tenants
from ml_connector.errors import ConfigError

GOOD = """\
tenants:
  t:
    exact: {conn_id: e, divisions: [111111, 222222]}
    jaggaer: {conn_id: j}
    invoice_poll:
      vat_codes: {"20": "1", "0": "3"}
      vat_codes_by_taxable: {true: "1", false: " 3 "}
      currencies_by_division:
        111111: [GBP, eur]
"""

BAD = """\
tenants:
  t:
    exact: {conn_id: e, divisions: [111111]}
    jaggaer: {conn_id: j}
    invoice_poll:
      vat_codes_by_taxable: {true: "", maybe: "2"}
      currencies_by_division:
        111111: [GBP, POUNDS]
  u:
    exact: {conn_id: e, divisions: [111111]}
    jaggaer: {conn_id: j}
    invoice_poll:
      currencies_by_division:
        111111: [GBP]
        333333: [EUR]
"""


def test_the_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(GOOD)
    cfg = load_tenants(path)["t"].invoice_poll
    assert cfg.vat_codes_by_taxable == {True: "1", False: "3"}
    assert cfg.currencies_by_division == {111111: ["GBP", "EUR"]}


def test_they_are_optional() -> None:
    from invoice_poll_support import demo_tenant

    cfg = demo_tenant().invoice_poll
    assert cfg.vat_codes_by_taxable == {} and cfg.currencies_by_division == {}


def test_wrong_values_are_named_with_file_line_tenant_and_field(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(BAD)
    with pytest.raises(ConfigError) as info:
        load_tenants(path)
    problems = info.value.problems
    assert any(
        p.startswith(f"{path}:6: tenant 't': invoice_poll.vat_codes_by_taxable: key 'maybe' is not true or false")
        for p in problems
    ), problems
    assert any(
        p.startswith(f"{path}:7: tenant 't': invoice_poll.currencies_by_division: division 111111: 'POUNDS' is not")
        and "ISO 4217 currency code" in p
        for p in problems
    ), problems
    assert any(
        p.startswith(f"{path}:15: tenant 'u': invoice_poll.currencies_by_division[333333]: division 333333 is not in")
        for p in problems
    ), problems


def test_an_empty_vat_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(BAD.replace("maybe", "false"))
    with pytest.raises(ConfigError, match=r"the VAT code for taxable true is empty"):
        load_tenants(path)
