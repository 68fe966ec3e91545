"""Exact integer base units <-> decimal strings, checked against Python's Decimal."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.units import amount_json, to_decimal_str, to_float


@pytest.mark.parametrize(
    ("raw", "decimals", "expected"),
    [
        (0, 18, "0"),
        (0, 0, "0"),
        (1, 18, "0.000000000000000001"),
        (10**18, 18, "1"),
        (15 * 10**17, 18, "1.5"),
        (123456789012345678901234567890, 18, "123456789012.34567890123456789"),
        (2**256 - 1, 18, "115792089237316195423570985008687907853269984665640564039457.584007913129639935"),
        (-1, 18, "-0.000000000000000001"),
        (-2000001, 6, "-2.000001"),
        (-(10**6), 6, "-1"),
        (1_500_000, 6, "1.5"),
        (10_075_158_576, 6, "10075.158576"),  # USDT balance at block 18,000,000 (realdata README)
        (108_716_177_741_318, 6, "108716177.741318"),  # USDC at block 17,300,000 (realdata README)
        (100, 0, "100"),
        (-7, 0, "-7"),
        (5, 1, "0.5"),
        (10, 1, "1"),
    ],
)
def test_to_decimal_str(raw: int, decimals: int, expected: str) -> None:
    assert to_decimal_str(raw, decimals) == expected


def test_negative_decimals_are_refused() -> None:
    with pytest.raises(ValueError, match="decimals"):
        to_decimal_str(1, -1)


def test_amount_json() -> None:
    assert amount_json(-1_500_000, 6) == {"raw": "-1500000", "amount": "-1.5"}
    assert amount_json(0, 18) == {"raw": "0", "amount": "0"}


def test_to_float() -> None:
    assert to_float(15 * 10**17, 18) == 1.5
    assert to_float(-2_000_001, 6) == -2.000001
    assert to_float(0, 18) == 0.0


def _reference(raw: int, decimals: int) -> str:
    """Decimal's own exact rendering, trailing zeros trimmed, never in exponent form."""
    with localcontext() as ctx:
        ctx.prec = 200
        d = Decimal(raw).scaleb(-decimals)
        text = f"{d:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@settings(max_examples=500)
@given(raw=st.integers(-(2**256), 2**256), decimals=st.integers(0, 36))
def test_round_trip_against_decimal(raw: int, decimals: int) -> None:
    s = to_decimal_str(raw, decimals)
    assert s == _reference(raw, decimals)
    # Parsing it back gives the exact raw amount.
    with localcontext() as ctx:
        ctx.prec = 200
        assert Decimal(s).scaleb(decimals) == raw
    assert "e" not in s.lower()
    assert not s.endswith(".") and (s == "0" or "." not in s or not s.endswith("0"))


@settings(max_examples=300)
@given(raw=st.integers(-(2**256), 2**256), decimals=st.integers(0, 36))
def test_to_float_is_the_nearest_float(raw: int, decimals: int) -> None:
    # float(Fraction) is correctly rounded: the reference for "nearest double".
    assert to_float(raw, decimals) == float(Fraction(raw, 10**decimals))
