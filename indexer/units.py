"""Exact conversions between integer base units and decimal strings / floats."""

from __future__ import annotations

import re
from decimal import Decimal

_TOKENS_RE = re.compile(r"^(\d+)(?:\.(\d+))?$")


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


def tokens_to_raw(tokens: str, decimals: int | None) -> int:
    """A non-negative decimal string of whole tokens ("1000", "2.5") in base units, exactly (no
    float, no Decimal context rounding). `decimals` None: only check the spelling (returns the
    whole-token part). A value with more decimal places than `decimals` is refused."""
    m = _TOKENS_RE.match(tokens) if isinstance(tokens, str) else None
    if m is None:
        raise ValueError(f'not a non-negative decimal number of tokens: {tokens!r} (e.g. "1000" or "2.5")')
    whole, frac = m.group(1), (m.group(2) or "").rstrip("0")
    if decimals is None:
        return int(whole)
    if len(frac) > decimals:
        raise ValueError(f"{tokens!r} has more than {decimals} decimal places")
    return int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")


def decimal_places(tokens: str) -> int:
    """Decimal places `tokens_to_raw` needs for `tokens` ("2.50" -> 1)."""
    tokens_to_raw(tokens, None)
    _, _, frac = tokens.partition(".")
    return len(frac.rstrip("0"))
