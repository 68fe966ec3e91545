"""PURE: adaptive eth_getLogs block-range sizing.

Halve the range when a provider refuses it (too many results, range too large, timeout);
grow it back (doubling) after a run of successes, never above the configured maximum.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AdaptiveRange:
    maximum: int
    current: int = 0
    grow_after: int = 3
    _streak: int = 0

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("maximum must be >= 1")
        if self.current <= 0 or self.current > self.maximum:
            self.current = self.maximum

    def refused(self, size: int) -> int:
        """A request of `size` blocks was refused; returns the new size (>= 1)."""
        self._streak = 0
        self.current = max(1, min(self.current, size // 2))
        return self.current

    def succeeded(self, size: int) -> int:
        if size >= self.current:
            self._streak += 1
            if self._streak >= self.grow_after:
                self._streak = 0
                self.current = min(self.maximum, self.current * 2)
        return self.current


def size_for_density(
    *, blocks_seen: int, logs_seen: int, target_logs: int, ceiling: int, floor: int = 1
) -> int:
    """PURE: blocks per eth_getLogs request so one reply holds about `target_logs` logs.

    Density is learned from what was seen so far (`logs_seen` over `blocks_seen`); with nothing
    seen yet, or no logs, the ceiling is used. The result is always in [floor, ceiling].
    """
    if ceiling < 1 or floor < 1 or floor > ceiling or target_logs < 1:
        raise ValueError("need 1 <= floor <= ceiling and target_logs >= 1")
    if blocks_seen <= 0 or logs_seen <= 0:
        return ceiling
    size = (target_logs * blocks_seen) // logs_seen
    return max(floor, min(ceiling, size))
