"""PURE: eth_getLogs range sizing.

Two rules, both sans-I/O:
- `ChunkSizer` (the backfill's step): size each request by the results it returns. The density
  (logs per block) of the last few ranges read predicts how many blocks hold about
  `target_logs`; `max_block_range` is only the ceiling. Before anything has been read, a short
  probe (`PROBE_BLOCKS`) measures the density instead of risking the whole ceiling in one reply.
- `AdaptiveRange` (inside one fetch): when a provider still refuses, take its hint
  (indexer/chains/range_hints.py): the range it suggests, the maximum it states (kept as the new
  ceiling), else halve; grow back by doubling after a run of successes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import assert_never

from indexer.chains.range_hints import MaxRange, RangeHint, RangeTooLarge, ResultCap, SuggestedRange

PROBE_BLOCKS = 16  # the first requests' size, before any density is known
DENSITY_WINDOW = 8  # ranges the density is learned from (recent history: chains change pace)
# When the provider rate-limits (requests are what is scarce), each fetch spans about this many
# logs: five requests at 90% of the common result cap, under one header batch on a dense chain.
SCARCE_TARGET = 45_000
# Calls per JSON-RPC batch (headers, logs by hash, receipts). A backfill fetch checks the header of
# each height it read logs at, and of its two ends: a scarce fetch stays within one such batch.
HEADER_BATCH = 100
CAP_FILL_PCT = 90  # a capped provider's replies are aimed at this share of its cap
# Infura's and most providers' eth_getLogs result cap: while requests are scarce and no cap was
# met yet, a request is not risked on a reply above it.
COMMON_RESULT_CAP = 10_000


def size_for_density(
    *, blocks_seen: int, logs_seen: int, target_logs: int, ceiling: int, floor: int = 1
) -> int:
    """Blocks per eth_getLogs request so one reply holds about `target_logs` logs.

    Density is `logs_seen` over `blocks_seen`; with no logs seen, the ceiling is used. The result
    is always in [floor, ceiling].
    """
    if ceiling < 1 or floor < 1 or floor > ceiling or target_logs < 1:
        raise ValueError("need 1 <= floor <= ceiling and target_logs >= 1")
    if blocks_seen <= 0 or logs_seen <= 0:
        return ceiling
    return max(floor, min(ceiling, (target_logs * blocks_seen) // logs_seen))


@dataclass
class ChunkSizer:
    """The backfill's request size, learned from the results of the last `DENSITY_WINDOW` ranges."""

    target_logs: int
    ceiling: int
    _seen: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=DENSITY_WINDOW))

    def __post_init__(self) -> None:
        if self.target_logs < 1 or self.ceiling < 1:
            raise ValueError("target_logs and ceiling must be >= 1")

    def observe(self, blocks: int, logs: int) -> None:
        """A range of `blocks` heights returned `logs` results."""
        if blocks > 0:
            self._seen.append((blocks, max(0, logs)))

    @property
    def probing(self) -> bool:
        """Nothing read yet: the next fetch is the probe."""
        return not self._seen

    def next(self, *, scarce: bool = False) -> int:
        """Heights for the next fetch; `scarce`: the provider rate-limits, so fewer, fuller
        requests beat more concurrent ones (`SCARCE_TARGET`), and a fetch's header checks fit
        in one batch (`HEADER_BATCH`: 102 dense heights would cost a second request for two)."""
        if not self._seen:
            return min(self.ceiling, PROBE_BLOCKS)
        blocks, logs = sum(b for b, _ in self._seen), sum(n for _, n in self._seen)
        target = max(self.target_logs, SCARCE_TARGET) if scarce else self.target_logs
        span = size_for_density(blocks_seen=blocks, logs_seen=logs, target_logs=target, ceiling=self.ceiling)
        # A height holds at least one log: at most min(blocks, logs) of them need a header.
        occupied = min(blocks, logs)
        if not scarce or occupied <= 0:
            return span
        return min(span, (HEADER_BATCH - 2) * blocks // occupied)


@dataclass
class AdaptiveRange:
    """One fetch's request size. A result cap, once a provider refused over it, is remembered:
    requests are then sized to `CAP_FILL_PCT` of it from the density of the last reply, and never
    grow past that."""

    maximum: int
    current: int = 0
    grow_after: int = 3
    result_cap: int | None = None
    _streak: int = 0
    _last: tuple[int, int] = (0, 0)  # (blocks, logs) of the last reply

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("maximum must be >= 1")
        if self.current <= 0 or self.current > self.maximum:
            self.current = self.maximum

    def _fit(self, cap: int | None = None) -> int | None:
        """Blocks that hold about CAP_FILL_PCT of the cap (the learned one by default) at the
        last reply's density."""
        blocks, logs = self._last
        cap = self.result_cap if cap is None else cap
        if cap is None or blocks <= 0 or logs <= 0:
            return None
        return max(1, (cap * CAP_FILL_PCT * blocks) // (100 * logs))

    def step(self, *, scarce: bool = False) -> int:
        """Blocks for the next request. `scarce` (the provider rate-limits) with no cap met
        yet: sized to CAP_FILL_PCT of `COMMON_RESULT_CAP`, since a refusal costs a request."""
        if scarce and self.result_cap is None:
            fit = self._fit(COMMON_RESULT_CAP)
            if fit is not None:
                return min(self.current, fit)
        return self.current

    def refused(self, size: int, hint: RangeHint | None = None) -> int:
        """A request of `size` blocks was refused; returns the new size (>= 1, < size when size > 1)."""
        self._streak = 0
        half = max(1, size // 2)
        match hint:
            case SuggestedRange():
                new = hint.size if hint.size < size else half
            case MaxRange():
                new = hint.blocks if hint.blocks < size else half
                self.maximum = max(1, min(self.maximum, new))
            case ResultCap():
                self.result_cap = hint.limit
                fit = self._fit()
                new = fit if fit is not None and fit < size else half
            case RangeTooLarge() | None:
                new = half
            case _:
                assert_never(hint)
        self.current = max(1, min(self.current, new))
        return self.current

    def succeeded(self, size: int, logs: int = 0) -> int:
        self._last = (size, logs)
        if size >= self.current:
            self._streak += 1
            if self._streak >= self.grow_after:
                self._streak = 0
                fit = self._fit()
                grown = self.current * 2 if fit is None else max(self.current, fit)
                self.current = min(self.maximum, grown)
        return self.current
