"""Invoices as J1P JSON (shapes follow the public UCLA samples: ``invoice_list.json``, ``invoice_sample.json``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.jaggaer.model import ZERO, Invoice, InvoiceLine, Split, fmt_date, fmt_ts, money, num
from sandbox.jaggaer.settings import JaggaerSettings

CATEGORY_LABELS = {
    "raw": "Raw materials",
    "components": "Bought-in components",
    "subcontract": "Subcontract operations",
    "consumables": "Consumables",
    "carriage": "Carriage inwards",
    "maintenance": "Repairs & maintenance",
    "professional": "Professional services",
    "it": "IT services",
}


def custom_field(name: str, label: str, value: str | None, description: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if value is not None:
        entry["value"] = value
        if description is not None:
            entry["description"] = description
    return {"name": name, "label": label, "customFieldValueList": {"customFieldValue": [entry]}}


def _split_amounts(splits: list[Split], base: Decimal) -> list[Decimal]:
    """Each split's share of ``base``; the last one takes the rounding remainder so they add up exactly."""
    amounts = [money(base * s.percent / Decimal(100)) for s in splits]
    if amounts:
        amounts[-1] = money(base - sum(amounts[:-1], ZERO))
    return amounts


def splits_json(splits: list[Split], base: Decimal, settings: JaggaerSettings) -> dict[str, Any]:
    """``splittableFieldSetGroupList`` for a split set. ``base`` is the net amount being split (line
    ``extendedPrice``, or the invoice's line subtotal for a header split)."""
    amount_mode = settings.split_distribution == "amount"
    values = _split_amounts(splits, base) if amount_mode else [s.percent for s in splits]
    indexes = []
    for i, (split, value) in enumerate(zip(splits, values, strict=True)):
        indexes.append(
            {
                "splitIndex": i,
                "distributionValue": num(value),
                "customFieldValueList": {
                    "customFieldValue": [
                        {
                            "internalName": settings.split_field_cost_centre,
                            "value": split.cost_centre,
                            **({"description": split.cost_centre_name} if split.cost_centre_name else {}),
                        },
                        {
                            "internalName": settings.split_field_gl_account,
                            "value": split.gl_account,
                            **({"description": split.gl_account_name} if split.gl_account_name else {}),
                        },
                    ]
                },
            }
        )
    return {
        "splittableFieldSetGroup": [
            {
                "splittableFieldIndexSet": [
                    {
                        "context": "Line",
                        "distributionType": "AmountOfPrice" if amount_mode else "PercentOfPrice",
                        "splittableFieldIndexList": {"splittableFieldIndex": indexes},
                    }
                ]
            }
        ]
    }


def invoice_header(inv: Invoice, settings: JaggaerSettings) -> dict[str, Any]:
    non_po = not inv.is_po
    header: dict[str, Any] = {
        "invoiceId": inv.invoice_id,
        "validationStatus": "Unneeded",
        "lastUpdate": fmt_ts(inv.last_update),
        "paymentStatus": inv.payment_status,
        "invoiceName": f"{inv.created_at.date().isoformat()} {inv.submitted_by} {inv.invoice_id % 100:02d}",
        "invoiceNumber": inv.invoice_number,
        "originalInvoiceNumber": inv.invoice_number,
        "invoiceType": inv.invoice_type,
        "invoiceLineType": "Non-PO" if non_po else "PO",
        "invoiceSource": inv.invoice_source,
        "invoiceDate": fmt_date(inv.invoice_date),
        "invoiceCreateDate": fmt_date(inv.created_at),
        "dueDate": fmt_date(inv.due_date),
        "termDiscountAmount": 0,
        "invoicedBy": {
            "username": inv.submitted_by,
            "businessUnit": inv.business_unit,
            "email": inv.submitted_by,
        },
        "businessUnit": inv.business_unit,
        "supplier": inv.supplier.ref(),
        "supplierInvoiceNumber": inv.supplier_invoice_number,
        "accountingDate": fmt_date(inv.accounting_date),
        "freightOnBoard": "Destination",
        "matchStatus": inv.match_status or ("Do Not Match" if non_po else "Matched"),
        "workflowStatus": inv.workflow_status,
        "nonPOInvoice": "true" if non_po else "false",
        "containsNonPOLines": "true" if any(not ln.po_number for ln in inv.lines) else "false",
        "customFieldValueSetList": {
            "customFieldValueSet": [
                custom_field(
                    "InvoiceCategory",
                    "Invoice Category",
                    inv.category,
                    CATEGORY_LABELS.get(inv.category or "", inv.category),
                ),
                custom_field("ExternalReference", "External Reference", None),
            ]
        },
    }
    if inv.header_splits:
        header["splittableFieldSetGroupList"] = splits_json(inv.header_splits, inv.subtotal, settings)
    header.update(
        {
            "taxCharge1": num(inv.tax1),
            "taxCharge2": num(inv.tax2),
            "shippingCharge": num(inv.shipping),
            "handlingCharge": num(inv.handling),
            "discountAmount": num(inv.discount),
            "allocationMethod": "Weighted",
            "earlyPaymentDiscount": 0,
            "tax1HeaderChargeDetail": {"currentTax": num(inv.tax1), "engineTax": 0},
            "total": {"currency": inv.currency, "value": num(inv.total)},
        }
    )
    return header


def invoice_line(inv: Invoice, line: InvoiceLine, settings: JaggaerSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "lineId": line.line_id,
        "lineNumber": line.line_number,
        "item": {
            "description": line.description,
            "unitOfMeasure": {
                "dimension": line.unit_of_measure,
                "alternateUnitOfMeasure": [
                    {"type": "system", "dimension": line.unit_of_measure},
                    {"type": "buyer", "dimension": line.unit_of_measure},
                    {"type": "supplier", "dimension": line.unit_of_measure},
                ],
            },
            "productType": line.product_type,
        },
        "businessUnit": inv.business_unit,
    }
    if line.item_code:
        out["item"]["catalogNumber"] = line.item_code
    if line.po_number:
        out["poNumber"] = line.po_number
        out["poLineNumber"] = line.po_line_number or str(line.line_number)
    rate_pct = line.tax_rate * 100
    out.update(
        {
            "quantity": num(line.quantity),
            "unitPrice": num(line.unit_price),
            "extendedPrice": num(line.extended),
            "capitalExpense": "false",
            "taxable": "true" if line.tax_rate > 0 else "false",
            "taxCharge1": num(line.tax),
            "taxCharge2": 0,
            "shippingCharge": 0,
            "handlingCharge": 0,
            "discountAmount": 0,
            "earlyPaymentDiscount": 0,
            "matchStatus": "Matched" if line.po_number else "Do Not Match",
            "customFieldValueSetList": {
                "customFieldValueSet": [
                    custom_field(
                        "TaxCode",
                        "Tax Code",
                        line.vat_code,
                        line.vat_description,
                    ),
                    custom_field(
                        "TaxRate",
                        "Tax Rate %",
                        f"{rate_pct.normalize():f}",
                        None,
                    ),
                ]
            },
        }
    )
    if line.splits:
        out["splittableFieldSetGroupList"] = splits_json(line.splits, line.extended, settings)
    return out


def invoice_detail(inv: Invoice, settings: JaggaerSettings) -> dict[str, Any]:
    return {
        "header": invoice_header(inv, settings),
        "lineList": {"invoiceLine": [invoice_line(inv, line, settings) for line in inv.lines]},
    }
