"""Exact conversions between integer base units and decimal strings / floats."""

from __future__ import annotations

from decimal import Decimal


def to_decimal_str(raw: int, decimals: int) -> str:
    """Exact decimal rendering of `raw` base units, trailing zeros trimmed (`1.5`, `0`, `-2.000001`)."""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    sign = "-" if raw < 0 else ""
    q, r = divmod(abs(raw), 10**decimals)
    if r == 0 or decimals == 0:
        return f"{sign}{q}"
    frac = str(r).rjust(decimals, "0").rstrip("0")
    return f"{sign}{q}.{frac}"


def to_float(raw: int, decimals: int) -> float:
    """Whole tokens as a float, for metrics only (never for accounting)."""
    return float(Decimal(raw).scaleb(-decimals))


def amount_json(raw: int, decimals: int) -> dict[str, str]:
    return {"raw": str(raw), "amount": to_decimal_str(raw, decimals)}
