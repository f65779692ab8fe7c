"""Exact's validation messages in the sandbox's two languages, and the reference tables a write is checked
against (ISO currencies, the longest account code)."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "mandatory_journal": "Mandatory: Diary",
        "invalid_journal": "Invalid reference: Journal",
        "not_purchase_journal": "Invalid reference: Journal {0} is not a purchase journal",
        "mandatory_supplier": "Mandatory: Relationship",
        "invalid_supplier": "Invalid reference: Relationship",
        "not_supplier": "Relationship is not a supplier: {0}",
        "blocked_supplier": "Relationship is blocked: {0}",
        "no_lines": "Mandatory: Lines",
        "mandatory_gl": "Mandatory: G/L account",
        "invalid_gl": "Invalid reference: G/L account",
        "blocked_gl": "G/L account is blocked: {0}",
        "mandatory_amount": "Mandatory: Amount",
        "invalid_amount": "Invalid value: Amount",
        "invalid_cc": "Invalid reference: Cost center",
        "invalid_cu": "Invalid reference: Cost unit",
        "invalid_vat": "Invalid reference: VAT code",
        "blocked_vat": "VAT code is blocked: {0}",
        "mandatory_date": "Mandatory: Entry date",
        "invalid_date": "Invalid value: Entry date",
        "closed_period": "Period is closed: {0}",
        "mandatory_name": "Mandatory: Name",
        "duplicate_code": "Code already exists: {0}",
        "code_too_long": "Invalid value: Code (at most 18 characters): {0}",
        "invalid_currency": "Invalid reference: Currency {0}",
    },
    "nl": {
        "mandatory_journal": "Verplicht: Dagboek",
        "invalid_journal": "Ongeldige referentie: Dagboek",
        "not_purchase_journal": "Ongeldige referentie: Dagboek {0} is geen inkoopdagboek",
        "mandatory_supplier": "Verplicht: Relatie",
        "invalid_supplier": "Ongeldige referentie: Relatie",
        "not_supplier": "Relatie is geen leverancier: {0}",
        "blocked_supplier": "Relatie is geblokkeerd: {0}",
        "no_lines": "Verplicht: Regels",
        "mandatory_gl": "Verplicht: Grootboekrekening",
        "invalid_gl": "Ongeldige referentie: Grootboekrekening",
        "blocked_gl": "Grootboekrekening is geblokkeerd: {0}",
        "mandatory_amount": "Verplicht: Bedrag",
        "invalid_amount": "Ongeldige waarde: Bedrag",
        "invalid_cc": "Ongeldige referentie: Kostenplaats",
        "invalid_cu": "Ongeldige referentie: Kostendrager",
        "invalid_vat": "Ongeldige referentie: Btw-code",
        "blocked_vat": "Btw-code is geblokkeerd: {0}",
        "mandatory_date": "Verplicht: Boekdatum",
        "invalid_date": "Ongeldige waarde: Boekdatum",
        "closed_period": "Periode is afgesloten: {0}",
        "mandatory_name": "Verplicht: Naam",
        "duplicate_code": "Code bestaat al: {0}",
        "code_too_long": "Ongeldige waarde: Code (maximaal 18 tekens): {0}",
        "invalid_currency": "Ongeldige referentie: Valuta {0}",
    },
}


# ISO 4217 currency codes in use (Exact's currency table): PurchaseEntries.Currency must be one of them.
_ISO_CURRENCY_TEXT = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
    USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL"""
ISO_CURRENCIES = frozenset(_ISO_CURRENCY_TEXT.split())
ACCOUNT_CODE_MAX = 18
