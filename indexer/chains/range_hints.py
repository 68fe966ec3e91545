"""PURE: what a provider's eth_getLogs refusal says about the range to ask for next (#19 item 1).

The one place that reads refusal texts (rpc.py marks the error with the hint; evm.py sizes the
next request from it), with the real providers' wording as test vectors:
- Alchemy: "... this block range should work: [0x0, 0x3e7]" -> `SuggestedRange` (its size);
- a stated maximum: Tron's "exceed max block range: 5000", QuickNode's "eth_getLogs is limited
  to a 10,000 range", "max is 1k blocks" -> `MaxRange` (a ceiling that holds from now on);
- Infura's "query returned more than 10000 results" -> `ResultCap`;
- any other "range too large" wording, a response-size or query timeout, and -32005 ("limit
  exceeded", EIP-1474) -> `RangeTooLarge` (halve);
- -32005 that is about something a smaller range does not fix (Tron: a batch over maxBatchSize,
  the node's filter count) and every other error -> None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUGGESTED = re.compile(r"block range[^\[]{0,40}\[(0x[0-9a-fA-F]+),\s*(0x[0-9a-fA-F]+)\]")
_MAX = re.compile(
    r"(?:exceed max(?:imum)? block range:?|limited to (?:a )?|max(?:imum)? (?:block range )?is )"
    r"\s*(\d[\d,]*)(k?)",
    re.IGNORECASE,
)
_RESULTS = re.compile(r"more than (\d+) results", re.IGNORECASE)
_TOO_LARGE = re.compile(
    r"(block range|range too large|exceeds max|too many results|query returned more than|"
    r"limit exceeded|response size|query timeout|range is too large|eth_getLogs is limited)",
    re.IGNORECASE,
)
_NOT_RANGE_32005 = re.compile(r"^(batch size |exceed max log filters)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SuggestedRange:
    """The provider named a range that it accepts: [start, end] inclusive."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class MaxRange:
    """The provider stated its largest accepted range, in blocks."""

    blocks: int


@dataclass(frozen=True, slots=True)
class ResultCap:
    """The provider refused because the reply would exceed `limit` logs."""

    limit: int


@dataclass(frozen=True, slots=True)
class RangeTooLarge:
    """The provider refused the range without a usable number."""


RangeHint = SuggestedRange | MaxRange | ResultCap | RangeTooLarge


def classify_range_error(code: int | None, message: str) -> RangeHint | None:
    """The hint in an error reply, or None when the error is not about the range's size."""
    if code == -32005 and _NOT_RANGE_32005.search(message):
        return None
    results = _RESULTS.search(message)
    if results is None and code != -32005 and not _TOO_LARGE.search(message):
        return None
    if (m := _SUGGESTED.search(message)) is not None:
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        if end >= start:
            return SuggestedRange(start, end)
    if (m := _MAX.search(message)) is not None:
        blocks = int(m.group(1).replace(",", "")) * (1000 if m.group(2).lower() == "k" else 1)
        if blocks >= 1:
            return MaxRange(blocks)
    if results is not None:
        return ResultCap(int(results.group(1)))
    return RangeTooLarge()
