"""One tenant: which connections, divisions, mappings, flows and alerts."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ml_connector.config.common import Section
from ml_connector.config.cross import cross_field_problems
from ml_connector.config.invoice_poll import InvoicePollConfig
from ml_connector.config.po_push import PoPushConfig


def _suggest_name(value: str) -> str:
    """A valid tenant name close to ``value`` (for the error message)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", value.strip().lower()).strip("-_")
    if not name or not name[0].isalpha():
        name = f"t-{name}".rstrip("-")
    return name[:41]


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


#: Tenant names become DAG ids (``exact_po_push__<name>``, ``jaggaer_invoice_poll__<name>``) and Airflow pool names
#: (``mlc_exact__<name>__<division>``); Airflow allows letters, digits, ``_``, ``-`` and ``.`` in both. Lower case
#: and no dots keep the names unambiguous in ``mlc`` commands and URLs.
TENANT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")


class TenantConfig(Section):
    name: str
    display_name: str | None = None
    exact: ExactSection
    jaggaer: JaggaerSection
    vendor_match: VendorMatch = Field(default_factory=VendorMatch)
    alerts: Alerts = Field(default_factory=Alerts)
    po_push: PoPushConfig = Field(default_factory=PoPushConfig)
    invoice_poll: InvoicePollConfig = Field(default_factory=InvoicePollConfig)

    @field_validator("name")
    @classmethod
    def _name_fits_dag_ids_and_pools(cls, value: str) -> str:
        if not TENANT_NAME.match(value):
            raise ValueError(
                f"{value!r} cannot be a tenant name: use 1-41 lower-case letters, digits, '_' or '-', starting with "
                f"a letter (e.g. {_suggest_name(value)!r}); the name becomes part of DAG ids and Airflow pool names"
            )
        return value

    @model_validator(mode="after")
    def _cross_field_checks(self) -> TenantConfig:
        # The same checks the loader runs on the raw file when fields are invalid (config.cross).
        problems = cross_field_problems(self.model_dump())
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=None)
                    for loc, message in problems
                ],
            )
        return self

    @property
    def po_divisions(self) -> list[int]:
        return list(self.po_push.divisions or self.exact.divisions)

    def journal_for(self, division: int) -> str:
        return self.invoice_poll.journal_by_division.get(division, self.invoice_poll.journal)
