"""Money arithmetic of the invoice poll: ``Decimal`` only, amounts in cents, splits that add up exactly.

A JAGGAER line split 60/40 across two cost centres becomes two Exact lines. Rounding each share on its own can
lose or invent a cent (3 x 33.33 % of 100.00 = 99.99), so :func:`allocate` uses the largest-remainder method:
every share is its exact value rounded down to the cent, then the cents still missing go to the shares that lost
the most. The parts always add up to the whole, each part is within one cent of its exact share, and a part never
has the opposite sign of the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | int | str) -> Decimal:
    """Round to the cent, half up (the way invoices are printed)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (a cent amount, any sign) in proportion to ``weights`` (all >= 0, not all 0).

    ``sum(result) == total`` exactly; ``abs(result[i] - exact_i) < 0.01``; ties go to the earlier share.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must not be negative: {list(weights)}")
    weight_sum = sum(weights, Decimal(0))
    if weight_sum == 0:
        raise ValueError("weights add up to zero")
    total = Decimal(total)
    if total != total.quantize(CENT):
        raise ValueError(f"total {total} has more than two decimals")
    sign = -1 if total < 0 else 1
    cents = int(abs(total) / CENT)
    exact = [Decimal(cents) * w / weight_sum for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    missing = cents - sum(floors)
    # the shares that lost the most to the floor get the missing cents (stable: earlier first on ties)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return [(Decimal(sign * c) * CENT).quantize(CENT) for c in floors]


def sum_money(values: Sequence[Decimal]) -> Decimal:
    return sum(values, ZERO)


def round_shares(total: Decimal, shares: Sequence[Decimal]) -> list[Decimal]:
    """Round exact ``shares`` (any signs, adding up to ``total``, a cent amount) to cents that add up to ``total``.

    The signed form of :func:`allocate` for when the shares are already known (e.g. a header tax spread over lines
    of different rates, or over a credit line among debit lines): every share is rounded down to the cent, then
    the cents still missing go to the shares that lost the most (earlier first on ties). Each part is within one
    cent of its share. Raises ``ValueError`` when the shares do not add up to ``total``.
    """
    total = Decimal(total)
    if total != total.quantize(CENT):
        raise ValueError(f"total {total} has more than two decimals")
    if not shares:
        raise ValueError("round_shares needs at least one share")
    scaled = [Decimal(s) / CENT for s in shares]
    floors = [int(x.to_integral_value(rounding=ROUND_FLOOR)) for x in scaled]
    missing = int(total / CENT) - sum(floors)
    if not 0 <= missing <= len(shares):
        raise ValueError(f"shares {list(shares)} do not add up to {total}")
    order = sorted(range(len(shares)), key=lambda i: (-(scaled[i] - floors[i]), i))
    for i in order[:missing]:
        floors[i] += 1
    return [(Decimal(c) * CENT).quantize(CENT) for c in floors]
