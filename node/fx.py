"""Currency conversion at the regulator's reference rates.

An fx.rate entry ``{date, base, quote, rate}`` says 1 ``base`` = ``rate`` ``quote``.
Converting X -> Y on a date uses the latest rate on or before that date for the pair
(X, Y), or ``1 / rate`` of (Y, X); when both exist the later date wins, and on the
same date the direct pair. With no such rate there is no conversion (the caller
refuses the entry as unprocessable: a rate is never guessed).

Arithmetic is ``Decimal`` in an explicit context of 50 digits; a converted amount is
quantized to the target currency's ISO 4217 minor units, ROUND_HALF_EVEN.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal
from typing import Final

from node.codes import CURRENCY_MINOR_UNITS

DECIMAL_CONTEXT: Final = Context(prec=50, rounding=ROUND_HALF_EVEN)
ONE: Final = Decimal(1)

RateTable = Mapping[tuple[str, str], list[tuple[date, Decimal]]]
"""(base, quote) -> [(date, rate)] sorted by date."""


def insert_rate(
    table: dict[tuple[str, str], list[tuple[date, Decimal]]],
    base: str,
    quote: str,
    on: date,
    rate: Decimal,
) -> None:
    """Add a rate, keeping the pair's list sorted by date (the caller refuses duplicates)."""
    bisect.insort(table.setdefault((base, quote), []), (on, rate))


def is_rate_published(table: RateTable, base: str, quote: str, on: date) -> bool:
    rates = table.get((base, quote), [])
    i = bisect.bisect_left(rates, (on,))  # (on,) sorts before every (on, rate)
    return i < len(rates) and rates[i][0] == on


def _latest(table: RateTable, pair: tuple[str, str], on: date) -> tuple[date, Decimal] | None:
    rates = table.get(pair)
    if not rates:
        return None
    pos = bisect.bisect_right([d for d, _ in rates], on)
    return rates[pos - 1] if pos else None


def compute_factor(table: RateTable, source: str, target: str, on: date) -> Decimal | None:
    """How many ``target`` units one ``source`` unit is worth on ``on``; None with no rate."""
    if source == target:
        return ONE
    direct = _latest(table, (source, target), on)
    inverse = _latest(table, (target, source), on)
    if direct is not None and (inverse is None or direct[0] >= inverse[0]):
        return direct[1]
    if inverse is not None:
        return DECIMAL_CONTEXT.divide(ONE, inverse[1])
    return None


def quantize_to(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-even to the currency's minor units."""
    exponent = Decimal(1).scaleb(-CURRENCY_MINOR_UNITS.get(currency, 2))
    return amount.quantize(exponent, rounding=ROUND_HALF_EVEN, context=DECIMAL_CONTEXT)


def quantize_cap(amount: Decimal, currency: str) -> Decimal:
    """A limit rounded down to minor units: for an amount in minor units, ``x > cap`` holds
    exactly when ``x > quantize_cap(cap)``, so the shown cap is the one applied."""
    exponent = Decimal(1).scaleb(-CURRENCY_MINOR_UNITS.get(currency, 2))
    return amount.quantize(exponent, rounding=ROUND_DOWN, context=DECIMAL_CONTEXT)


def compute_converted(amount: Decimal, factor: Decimal, target: str) -> Decimal:
    """``amount`` x ``factor`` in the ``target`` currency's minor units."""
    return quantize_to(DECIMAL_CONTEXT.multiply(amount, factor), target)
