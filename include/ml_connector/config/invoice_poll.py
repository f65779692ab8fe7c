"""Tenant settings of the invoice poll flow (approved JAGGAER invoices -> Exact purchase entries)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from ml_connector.config.common import CronExpr, DailyShare, Section, TimeZoneName


def _rate(value: Any) -> Decimal:
    """A tax rate in percent as written in the file (``20``, ``"17.5"``, ``"5 %"``); raises ``ValueError``."""
    hint = 'use the rate in percent, a number from 0 to 100 (e.g. "20", "5", "17.5")'
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"key {value!r} is not a tax rate: {hint}")
    try:
        rate = Decimal(str(value).strip().rstrip("%").strip())
    except InvalidOperation:
        raise ValueError(f"key {value!r} is not a tax rate: {hint}") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise ValueError(f"key {value!r} is not between 0 and 100: {hint}")
    return rate


def _rate_key(value: Any) -> str:
    _rate(value)
    return str(value).strip()  # kept as written; mappings.codes.normalize_rate compares rates


#: A ``vat_codes`` key: the JAGGAER tax rate in percent (YAML may give it as a number or a string).
RateKey = Annotated[str, BeforeValidator(_rate_key)]


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
    vat_codes: dict[RateKey, str] = Field(default_factory=dict)
    # JAGGAER line ``taxable`` flag -> Exact VAT code, e.g. {true: "1", false: "3"} (optional). For customers whose
    # invoices carry the tax on the header without a rate: a taxable line goes on the ``true`` code, a non-taxable
    # line, charges and the discount on the ``false`` code. A line's own rate custom field still wins; see
    # docs/invoice-poll.md "VAT".
    vat_codes_by_taxable: dict[bool, str] = Field(default_factory=dict)
    # Exact division -> the currencies its purchase entries may be booked in (ISO 4217), e.g. {111111: [GBP, EUR]}.
    # A division not listed accepts every ISO 4217 code. Checked before anything is sent to Exact.
    currencies_by_division: dict[int, list[str]] = Field(default_factory=dict)
    rounding_tolerance: Decimal = Field(default=Decimal("0.02"), ge=0)
    # Share of each division's daily Exact calls (5,000 per app and division) the invoice poll may use: it posts what
    # fits and leaves the rest for the next day while limit x (1 - share) calls are still left, kept for the PO push
    # and for searches. Must be below po_push.exact_daily_share (checked by TenantConfig). docs/invoice-poll.md
    # "Daily budget".
    exact_daily_share: DailyShare = 0.7

    @field_validator("vat_codes_by_taxable", mode="before")
    @classmethod
    def _flags_are_true_or_false(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        out: dict[bool, object] = {}
        for key, code in value.items():
            flag = {"true": True, "false": False}.get(str(key).strip().lower()) if not isinstance(key, bool) else key
            if flag is None:
                raise ValueError(
                    f"key {key!r} is not true or false (the JAGGAER line flag 'taxable'); e.g. {{true: \"1\", "
                    'false: "3"}'
                )
            out[flag] = code
        return out

    @field_validator("vat_codes_by_taxable")
    @classmethod
    def _vat_codes_are_codes(cls, value: dict[bool, str]) -> dict[bool, str]:
        empty = sorted(str(flag).lower() for flag, code in value.items() if not code.strip())
        if empty:
            raise ValueError(f'the VAT code for taxable {", ".join(empty)} is empty: give an Exact VAT code, e.g. "1"')
        return {flag: code.strip() for flag, code in value.items()}

    @field_validator("currencies_by_division")
    @classmethod
    def _currencies_are_iso(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        from ml_connector.currencies import is_iso_currency

        out: dict[int, list[str]] = {}
        for division, codes in value.items():
            bad = [c for c in codes if not is_iso_currency(c.strip().upper())]
            if bad:
                raise ValueError(
                    f"division {division}: {', '.join(repr(c) for c in bad)} is not an ISO 4217 currency code "
                    "(three letters, e.g. GBP, EUR, USD)"
                )
            if not codes:
                raise ValueError(
                    f"division {division}: the list of currencies is empty (leave the division out instead)"
                )
            out[division] = [c.strip().upper() for c in codes]
        return out

    @field_validator("vat_codes")
    @classmethod
    def _one_code_per_rate(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[Decimal, str] = {}
        for key in value:
            rate = _rate(key).normalize()
            if rate in seen:
                raise ValueError(f"keys {seen[rate]!r} and {key!r} are the same rate: keep one")
            seen[rate] = key
        return value
