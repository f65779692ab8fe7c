"""Tenant settings of the invoice poll flow (approved JAGGAER invoices -> Exact purchase entries)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from ml_connector.config.common import CronExpr, Section, TimeZoneName


class PostStates(Section):
    workflow: list[str] = Field(default_factory=lambda: ["Completed"])
    payment: list[str] = Field(default_factory=lambda: ["Payable", "Paid"])


class InvoicePollConfig(Section):
    enabled: bool = True
    schedule: CronExpr = "0 2 * * *"
    timezone: TimeZoneName = "Europe/London"
    # Extra hours read before the run's window, so an invoice updated at the edge is not missed.
    overlap_hours: float = Field(default=6.0, ge=0, le=24 * 14)
    post_states: PostStates = Field(default_factory=PostStates)
    unmatched_vendor: Literal["halt", "create", "skip"] = "halt"
    # Exact purchase journal code (a string, e.g. "60"), per division or one for all.
    journal: str = "60"
    journal_by_division: dict[int, str] = Field(default_factory=dict)
    # JAGGAER invoice type -> Exact GL account code (one direction only).
    gl_by_invoice_type: dict[str, str] = Field(default_factory=dict)
    # Invoice type -> cost centre used when a line's accounting split names none.
    default_cost_center_by_invoice_type: dict[str, str] = Field(default_factory=dict)
    # JAGGAER tax rate in percent (as written, e.g. "20") -> Exact VAT code.
    vat_codes: dict[str, str] = Field(default_factory=dict)
    rounding_tolerance: Decimal = Field(default=Decimal("0.02"), ge=0)
