"""ISO 4217: the currency codes an Exact purchase entry may carry, checked locally so a bad code costs no Exact call.

The active codes of ISO 4217 (list 1, 2024 amendments; funds and precious-metal codes such as XAU left out: no
supplier invoices in them). Exact Online's currency table holds the same codes.
"""

from __future__ import annotations

_ISO_4217 = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
    HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
    USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL"""

ISO_4217: frozenset[str] = frozenset(_ISO_4217.split())


def is_iso_currency(code: str) -> bool:
    """``"GBP"`` → True; ``"gbp"``, ``"£"``, ``"XYZ"`` → False (codes are upper case, as Exact spells them)."""
    return code in ISO_4217
