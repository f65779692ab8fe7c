"""Code mappings: JAGGAER values → Exact codes, from the tenant file with admin overrides (``CodeMap`` rows).

Kinds (``CodeMap.kind``):

``gl_account``     JAGGAER invoice type (``Invoice``, ``Credit memo``) → Exact GL account code
``cost_center``    JAGGAER cost centre (from an accounting split) → Exact cost centre code (unmapped: used as is)
``vat_code``       tax rate in percent as written (``20``, ``5``, ``0``, ``17.5``) → Exact VAT code
``business_unit``  JAGGAER business unit → Exact division number
``currency``       JAGGAER currency → Exact currency code (unmapped: used as is)

Every mapping goes one way only: JAGGAER to Exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from ml_connector.config.tenant import TenantConfig
from ml_connector.store.models import CodeMap

KINDS: tuple[str, ...] = ("gl_account", "cost_center", "vat_code", "business_unit", "currency")
#: The tenant-file setting each kind's defaults come from (``None``: no default; an unmapped value is used as is).
DEFAULT_SOURCES: dict[str, str | None] = {
    "gl_account": "invoice_poll.gl_by_invoice_type",
    "cost_center": None,
    "vat_code": "invoice_poll.vat_codes",
    "business_unit": "jaggaer.business_units",
    "currency": None,
}


def normalize_rate(value: str | Decimal | int | float) -> str:
    """``"20.00"`` → ``"20"``, ``"17.50"`` → ``"17.5"``, ``" 5 % "`` → ``"5"``. Raises ``ValueError``."""
    text = str(value).strip().rstrip("%").strip()
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a tax rate in percent (e.g. 20, 5, 0, 17.5)") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise ValueError(f"{value!r} is not a tax rate between 0 and 100")
    out = f"{rate.normalize():f}"
    return "0" if out in ("-0", "0") else out


def normalize_source(kind: str, value: str) -> str:
    """The stored form of a source value (rates normalised, everything else trimmed)."""
    if kind == "vat_code":
        return normalize_rate(value)
    return value.strip()


def validate_target(kind: str, value: str) -> str:
    """Check a target value for its kind; returns the stored form. Raises ``ValueError``."""
    value = value.strip()
    if not value:
        raise ValueError("the Exact value is empty")
    if kind == "business_unit":
        try:
            division = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an Exact division number") from None
        if division <= 0:
            raise ValueError(f"{value!r} is not an Exact division number")
        return str(division)
    if kind == "currency" and (len(value) != 3 or not value.isalpha()):
        raise ValueError(f"{value!r} is not a three-letter currency code")
    return value


def tenant_defaults(tenant: TenantConfig) -> dict[str, dict[str, str]]:
    """What the tenant file maps, per kind, before ``CodeMap`` overrides (keys in their stored form)."""
    return {
        "gl_account": dict(tenant.invoice_poll.gl_by_invoice_type),
        "cost_center": {},
        "vat_code": {normalize_rate(k): v for k, v in tenant.invoice_poll.vat_codes.items()},
        "business_unit": {k: str(v) for k, v in tenant.jaggaer.business_units.items()},
        "currency": {},
    }


@dataclass
class CodeRules:
    """Everything the invoice poll maps, resolved for one tenant (tenant file + ``CodeMap`` overrides)."""

    tenant: TenantConfig
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, tenant: TenantConfig) -> CodeRules:
        overrides: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for row in session.scalars(select(CodeMap).where(CodeMap.tenant == tenant.name)):
            overrides.setdefault(row.kind, {})[row.source_value] = row.target_value
        return cls(tenant=tenant, overrides=overrides)

    # -- helpers -------------------------------------------------------------------------------------------
    def _override(self, kind: str, source: str) -> str | None:
        table = self.overrides.get(kind, {})
        if source in table:
            return table[source]
        folded = source.casefold()
        for key, value in table.items():
            if key.casefold() == folded:
                return value
        return None

    @staticmethod
    def _lookup(table: dict[str, str], source: str) -> str | None:
        if source in table:
            return table[source]
        folded = source.casefold()
        for key, value in table.items():
            if key.casefold() == folded:
                return value
        return None

    # -- the mappings ----------------------------------------------------------------------------------------
    def gl_for_type(self, invoice_type: str) -> tuple[str | None, str]:
        """(GL account code, where it came from) for a JAGGAER invoice type."""
        code = self._override("gl_account", invoice_type)
        if code:
            return code, f"code map gl_account[{invoice_type!r}]"
        code = self._lookup(self.tenant.invoice_poll.gl_by_invoice_type, invoice_type)
        return code, f"invoice_poll.gl_by_invoice_type[{invoice_type!r}]"

    def default_cost_center(self, invoice_type: str) -> str | None:
        return self._lookup(self.tenant.invoice_poll.default_cost_center_by_invoice_type, invoice_type)

    def cost_center(self, jaggaer_code: str) -> str:
        return self._override("cost_center", jaggaer_code) or jaggaer_code

    def vat_for_rate(self, rate: Decimal) -> tuple[str | None, str]:
        key = normalize_rate(rate)
        code = self._override("vat_code", key)
        if code:
            return code, f"code map vat_code[{key!r}]"
        configured = {normalize_rate(k): v for k, v in self.tenant.invoice_poll.vat_codes.items()}
        return configured.get(key), f"invoice_poll.vat_codes[{key!r}]"

    def division_for_bu(self, business_unit: str | None) -> int | None:
        if not business_unit:
            return None
        override = self._override("business_unit", business_unit)
        if override:
            return int(override)
        division = self.tenant.jaggaer.business_units.get(business_unit)
        if division is None:
            division = self._lookup({k: str(v) for k, v in self.tenant.jaggaer.business_units.items()}, business_unit)
        return int(division) if division is not None else None

    def bad_route(self, business_unit: str | None, divisions: list[int]) -> str | None:
        """Why ``business_unit`` routes nowhere usable when a code map sends it outside ``divisions`` (maps made
        before imports were checked against the tenant), with the commands that fix it; ``None`` otherwise. For the
        invoice poll's "not routed" quarantine reason."""
        if not business_unit:
            return None
        override = self._override("business_unit", business_unit)
        if override is None or int(override) in divisions:
            return None
        tenant = self.tenant.name
        return (
            f"code map business_unit[{business_unit!r}] routes to division {override}, which is not one of the "
            f"tenant's divisions {sorted(divisions)}: fix it with `mlc mappings set code --tenant {tenant} --kind "
            f"business_unit --source '{business_unit}' --target <division>` or remove it with `mlc mappings delete "
            f"code --tenant {tenant} --kind business_unit --source '{business_unit}'`"
        )

    def currency(self, jaggaer_currency: str) -> str:
        return self._override("currency", jaggaer_currency) or jaggaer_currency

    def resolve(self, kind: str, source: str) -> str | None:
        """The Exact value a run uses for ``source`` of ``kind`` (``None``: unmapped, the record stops)."""
        if kind == "gl_account":
            return self.gl_for_type(source)[0]
        if kind == "vat_code":
            return self.vat_for_rate(Decimal(normalize_rate(source)))[0]
        if kind == "business_unit":
            division = self.division_for_bu(source)
            return str(division) if division is not None else None
        if kind == "cost_center":
            return self.cost_center(source)
        if kind == "currency":
            return self.currency(source)
        raise ValueError(f"unknown code map kind {kind!r}")
