"""One tenant: which connections, divisions, mappings, flows and alerts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ml_connector.config.common import Section
from ml_connector.config.invoice_poll import InvoicePollConfig
from ml_connector.config.po_push import PoPushConfig, po_number_fields

VendorKey = Literal["supplier_number", "vat_number", "coc_number", "name"]


class ExactSection(Section):
    conn_id: str
    # Divisions are pinned here: Exact's CurrentDivision changes when the user switches in the web UI.
    divisions: list[int] = Field(min_length=1)


class JaggaerSection(Section):
    conn_id: str
    # JAGGAER business unit -> Exact division its invoices are posted to.
    business_units: dict[str, int] = Field(default_factory=dict)


class VendorMatch(Section):
    """Which fields link a JAGGAER vendor to an Exact supplier account, tried in order."""

    keys: list[VendorKey] = Field(default_factory=lambda: ["supplier_number", "vat_number"], min_length=1)


class Alerts(Section):
    channels: list[Literal["log", "email", "slack", "webhook"]] = Field(default_factory=lambda: ["log"])
    email_to: list[str] = Field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    slack_conn_id: str | None = None
    webhook_conn_id: str | None = None

    @model_validator(mode="after")
    def _channels_have_targets(self) -> Alerts:
        if "email" in self.channels and not self.email_to:
            raise ValueError("channel 'email' needs email_to (a list of addresses)")
        if "slack" in self.channels and not self.slack_conn_id:
            raise ValueError(
                "channel 'slack' needs slack_conn_id (an HTTP connection whose password holds the Slack webhook URL)"
            )
        if "webhook" in self.channels and not self.webhook_conn_id:
            raise ValueError("channel 'webhook' needs webhook_conn_id (an HTTP connection)")
        return self


class TenantConfig(Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    display_name: str | None = None
    exact: ExactSection
    jaggaer: JaggaerSection
    vendor_match: VendorMatch = Field(default_factory=VendorMatch)
    alerts: Alerts = Field(default_factory=Alerts)
    po_push: PoPushConfig = Field(default_factory=PoPushConfig)
    invoice_poll: InvoicePollConfig = Field(default_factory=InvoicePollConfig)

    @model_validator(mode="after")
    def _divisions_are_the_tenants(self) -> TenantConfig:
        known = set(self.exact.divisions)
        for bu, division in self.jaggaer.business_units.items():
            if division not in known:
                raise ValueError(
                    f"jaggaer.business_units[{bu!r}] routes to division {division}, "
                    f"which is not in exact.divisions {sorted(known)}"
                )
        for division in self.po_push.divisions:
            if division not in known:
                raise ValueError(f"po_push.divisions has {division}, which is not in exact.divisions {sorted(known)}")
        master = self.po_push.supplier_master_division
        if master is not None and master not in self.po_divisions:
            raise ValueError(
                f"po_push.supplier_master_division is {master}, which is not one of the PO divisions "
                f"{self.po_divisions}"
            )
        fmt = self.po_push.po_number_format
        if len(self.po_divisions) > 1 and "division" not in po_number_fields(fmt):
            # Order numbers repeat across divisions: without {division} two orders would share one PONumber and
            # the second would overwrite the first's PO in JAGGAER. Reported at the field (file line) itself.
            message = (
                f"{fmt!r} has no {{division}}, but the tenant pushes POs from {len(self.po_divisions)} divisions "
                f"{self.po_divisions}, whose order numbers repeat; use e.g. '{{division}}-{{order_number}}'"
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", message),
                        loc=("po_push", "po_number_format"),
                        input=fmt,
                    )
                ],
            )
        return self

    @model_validator(mode="after")
    def _currency_divisions_are_the_tenants(self) -> TenantConfig:
        known = set(self.exact.divisions)
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error",
                    f"division {division} is not in exact.divisions {sorted(known)}: list only the tenant's divisions",
                ),
                loc=("invoice_poll", "currencies_by_division", division),
                input=division,
            )
            for division in self.invoice_poll.currencies_by_division
            if division not in known
        ]
        if errors:  # reported at the division's own line of the file
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def po_divisions(self) -> list[int]:
        return list(self.po_push.divisions or self.exact.divisions)

    def journal_for(self, division: int) -> str:
        return self.invoice_poll.journal_by_division.get(division, self.invoice_poll.journal)
