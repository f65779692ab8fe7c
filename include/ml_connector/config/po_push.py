"""Tenant settings of the PO push flow (Exact Online purchase orders -> JAGGAER POs)."""

from __future__ import annotations

import string

from pydantic import Field, field_validator

from ml_connector.config.common import CronExpr, DailyShare, Section, TimeZoneName

#: The fields ``po_number_format`` may use.
PO_NUMBER_FIELDS = ("division", "order_number", "tenant")


def po_number_fields(fmt: str) -> set[str]:
    """The field names a ``po_number_format`` uses (``{division}-{order_number:06d}`` → division, order_number).
    Raises ``ValueError`` when it is not a valid format string."""
    names: set[str] = set()
    for _, name, _, _ in string.Formatter().parse(fmt):
        if name is not None:
            names.add(name.split(".", 1)[0].split("[", 1)[0])
    return names


class GlRules(Section):
    """Which GL account and cost centre a PO line is booked to in JAGGAER, first match wins:
    the item group, then the line's cost centre, then the default."""

    by_item_group: dict[str, str] = Field(default_factory=dict)
    by_cost_center: dict[str, str] = Field(default_factory=dict)
    default_gl_account: str | None = None
    default_cost_center: str | None = None


class PoPushConfig(Section):
    enabled: bool = True
    schedule: CronExpr = "*/15 * * * *"
    timezone: TimeZoneName = "UTC"
    # Exact divisions whose POs go to JAGGAER; empty means every division of the tenant.
    divisions: list[int] = Field(default_factory=list)
    # JAGGAER PONumber must be unique per customer; two divisions can share order numbers, hence the prefix.
    # Must contain {order_number}; with more than one PO division also {division} (checked by TenantConfig).
    po_number_format: str = "{division}-{order_number}"
    currencies: list[str] = Field(default_factory=lambda: ["GBP", "EUR", "USD"])
    gl_rules: GlRules = Field(default_factory=GlRules)
    cancel_in_jaggaer: bool = True
    # A supplier code used in several divisions is one JAGGAER supplier, upserted once per run: with the master
    # data (name, VAT, address, ...) of this division when it has the code, else of the first PO division listed
    # that has it. Unset: the first PO division. Must be one of the PO divisions (checked by TenantConfig).
    supplier_master_division: int | None = None
    # Share of each division's daily Exact calls the PO push may use: it stops while limit x (1 - share) calls are
    # still left, kept for searches (look-ups after an unclear write, a person's mlc commands). docs/po-push.md.
    exact_daily_share: DailyShare = 0.9

    @field_validator("po_number_format")
    @classmethod
    def _po_number_format_is_usable(cls, value: str) -> str:
        hint = "use {division}, {order_number} and {tenant}, e.g. '{division}-{order_number}'"
        try:
            names = po_number_fields(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid format ({exc}); {hint}") from None
        unknown = sorted(repr(n) if n else "{} (a positional field)" for n in names if n not in PO_NUMBER_FIELDS)
        if unknown:
            raise ValueError(f"{value!r} uses unknown field(s) {', '.join(unknown)}; {hint}")
        try:
            value.format(division=111111, order_number=1001, tenant="tenant")
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(f"{value!r} cannot be filled ({type(exc).__name__}: {exc}); {hint}") from None
        if "order_number" not in names:
            raise ValueError(f"{value!r} has no {{order_number}}: every order would get the same JAGGAER PONumber")
        return value
