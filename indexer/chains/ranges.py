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
