"""Pure classifier for providers' eth_getLogs refusal texts (issue #19 item 1).

Reads the hint a provider gives when a log query is too big:
- Alchemy: "... try with this block range [0x1,0x2]" -> the suggested range size
- Infura: "query returned more than 10000 results" -> a result cap
- others: "block range too large" / "range is too large" -> generic shrink
- Tron: code -32005 "exceed max block range" -> generic shrink
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALCHEMY = re.compile(r"block range[^\[]{0,40}\[(0x[0-9a-fA-F]+),\s*(0x[0-9a-fA-F]+)\]")
_RESULTS = re.compile(r"more than (\d+) results")
_GENERIC = ("block range too large", "range is too large", "exceed max block range")


@dataclass(frozen=True, slots=True)
class SuggestedRange:
    """The provider named a range that it accepts: [start, end] inclusive."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class ResultCap:
    """The provider refused because the reply exceeds `limit` logs."""

    limit: int


@dataclass(frozen=True, slots=True)
class RangeTooLarge:
    """The provider refused the range without a usable number."""


RangeHint = SuggestedRange | ResultCap | RangeTooLarge


def classify_range_error(code: int | None, message: str) -> RangeHint | None:
    """Return the hint in a refusal, or None when the error is not about range size."""
    m = _ALCHEMY.search(message)
    if m is not None:
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        if end >= start:
            return SuggestedRange(start, end)
    m = _RESULTS.search(message)
    if m is not None:
        return ResultCap(int(m.group(1)))
    low = message.lower()
    if code == -32005 and "block range" in low:
        return RangeTooLarge()
    if any(g in low for g in _GENERIC):
        return RangeTooLarge()
    return None
