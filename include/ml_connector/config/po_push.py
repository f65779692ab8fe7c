"""Tenant settings of the PO push flow (Exact Online purchase orders -> JAGGAER POs)."""

from __future__ import annotations

from pydantic import Field

from ml_connector.config.common import CronExpr, Section, TimeZoneName


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
    po_number_format: str = "{division}-{order_number}"
    currencies: list[str] = Field(default_factory=lambda: ["GBP", "EUR", "USD"])
    gl_rules: GlRules = Field(default_factory=GlRules)
    cancel_in_jaggaer: bool = True
