"""The JAGGAER sandbox's switchable behaviours.

Every guess about JAGGAER (docs/sandbox-jaggaer.md, "What is a guess") is a knob here, so tests can switch the sandbox
between the plausible variants and prove the client tolerates each. Read and patch them at runtime through
``GET|POST /_admin/settings``; ``POST /_admin/reset`` puts them back to the defaults below.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: PO custom fields the demo customers are configured with: what ml-connector sends by default
#: (``include/ml_connector/jaggaer/xml.py`` ``build_po_message``: line fields ``GLAccount`` and ``CostCenter``)
#: and the header field the sandbox's own examples carry (``BusinessUnit``).
DEFAULT_PO_HEADER_FIELDS = ["BusinessUnit"]
DEFAULT_PO_LINE_FIELDS = ["GLAccount", "CostCenter"]


class PoCustomFields(BaseModel):
    """The custom-field names one customer's PO import accepts (``CustomFieldValueSet/@name``)."""

    model_config = ConfigDict(extra="forbid")

    header: list[str] = Field(default_factory=lambda: list(DEFAULT_PO_HEADER_FIELDS))
    line: list[str] = Field(default_factory=lambda: list(DEFAULT_PO_LINE_FIELDS))


def _default_po_custom_fields() -> dict[str, PoCustomFields]:
    return {"*": PoCustomFields()}


class JaggaerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- OAuth (J1P) ---------------------------------------------------------------------------------------
    token_expires_in: int = Field(3600, ge=1, description="access token lifetime (s) on the sandbox clock")
    refresh_expires_in: int = Field(0, ge=0, description="Keycloak's refresh_expires_in (client credentials: 0)")
    broken_401: bool = Field(
        False, description="API 401s without WWW-Authenticate and with 'Content-Type: ; charset=UTF-8'"
    )

    # -- J1P invoices --------------------------------------------------------------------------------------
    invoice_filter_style: Literal["fiql", "params"] = Field(
        "fiql",
        description="fiql: flt=lastUpdate=ge=...;lastUpdate=lt=...  params: lastUpdateFrom=...&lastUpdateTo=...",
    )
    page_size: int = Field(
        37, ge=1, le=10000, description="records per page, chosen by the server (odd on purpose: never assume 50)"
    )
    empty_list_key: Literal["omit", "empty"] = Field(
        "omit", description="empty result: omit 'jiinvoiceList' (omit) or send {'jiinvoice': []} (empty)"
    )
    return_code_type: Literal["number", "string"] = Field(
        "number", description="returnCode as JSON number (0/2) or string ('0'/'2')"
    )
    success_return_code: Literal[0, 1] = Field(
        0, description="1 = every successful J1P answer is 'success with warnings' (returnCode 1)"
    )
    split_distribution: Literal["percent", "amount"] = Field(
        "percent", description="accounting splits as PercentOfPrice or AmountOfPrice"
    )
    split_field_cost_centre: str = Field("CostCenter", min_length=1)
    split_field_gl_account: str = Field("GLAccount", min_length=1)

    # -- eProcurement XML ----------------------------------------------------------------------------------
    po_duplicate_message: str = Field(
        "Purchase order {po_number} already exists",
        description="error text for a repeated PONumber without type='update' ({po_number} is filled in)",
    )
    supplier_success_status: Literal[200, 202] = Field(200, description="StatusCode of a successful supplier sync")
    po_custom_fields: dict[str, PoCustomFields] = Field(
        default_factory=_default_po_custom_fields,
        description=(
            "per customer (tenant key; '*' = every customer not listed): the PO header and line custom-field names "
            "its configuration knows; any other name is refused (400, line ones under ObjectErrors)"
        ),
    )
    trim_values: bool = Field(
        False,
        description=(
            "strip spaces around XML values and FIQL filter values (lenient); default: compared and stored exactly "
            "as sent, so a space-padded Exact code is not the unpadded one"
        ),
    )

    # -- rate limits ---------------------------------------------------------------------------------------
    rate_limit_per_minute: int | None = Field(
        None, ge=1, description="per-tenant requests per sandbox-clock minute (J1P API and XML imports); None=off"
    )
    retry_after: int | None = Field(
        None, ge=0, description="Retry-After seconds on 429s; None ('none') sends no Retry-After"
    )

    @field_validator("retry_after", "rate_limit_per_minute", mode="before")
    @classmethod
    def _none_words(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in {"none", "off", "null", ""}:
            return None
        return v

    def po_fields_for(self, tenant: str) -> PoCustomFields:
        """The custom-field configuration of ``tenant`` (its own entry, else ``'*'``, else the defaults)."""
        return self.po_custom_fields.get(tenant) or self.po_custom_fields.get("*") or PoCustomFields()

    def patch(self, changes: dict[str, Any]) -> JaggaerSettings:
        """A validated copy with ``changes`` applied; raises ``ValueError`` naming unknown/invalid knobs."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        return type(self).model_validate({**self.model_dump(), **changes})
