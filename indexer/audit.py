"""PURE: the arithmetic of the background audits (`indexer.sync.audit`): the request budget,
which accounts a round checks, and the digest a re-read range is compared by.

Supply reconciliation sees a lost mint or burn but not a transfer lost between two holders; the
balance audit compares holders' balances with the chain's own, and the range audit compares whole
finalized ranges with what another endpoint serves.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

HOUR = 3600.0
EVM_KEY_ALPHABET = "0123456789abcdef"
B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def round_size(per_hour: int, interval: float) -> int:
    """Requests one round may use so that `per_hour` spreads over the hour's rounds."""
    if per_hour <= 0:
        return 0
    return max(1, math.ceil(per_hour * interval / HOUR))


class HourlyBudget:
    """At most `per_hour` units in any 3600 s window (sliding), and at most `per_round` at once.
    Time is passed in (monotonic seconds), so this stays pure and testable."""

    def __init__(self, per_hour: int, per_round: int) -> None:
        self.per_hour = max(0, per_hour)
        self.per_round = max(0, per_round)
        self._grants: deque[tuple[float, int]] = deque()
        self._used = 0

    def used(self, now: float) -> int:
        while self._grants and self._grants[0][0] <= now - HOUR:
            self._used -= self._grants.popleft()[1]
        return self._used

    def take(self, now: float, want: int) -> int:
        """Grant up to `want` units now; returns how many were granted (0 when spent)."""
        granted = max(0, min(want, self.per_round, self.per_hour - self.used(now)))
        if granted:
            self._grants.append((now, granted))
            self._used += granted
        return granted


def plan_sample(recheck: Sequence[str], top: Sequence[str], randoms: Sequence[str], n: int) -> list[str]:
    """Up to `n` distinct addresses for one round: accounts found wrong before first (so a fix is
    seen), then the largest holders and random ones half and half (either fills in when the
    other runs short)."""
    out: list[str] = []
    seen: set[str] = set()

    def add(addr: str) -> bool:
        if len(out) >= n:
            return False
        if addr not in seen:
            seen.add(addr)
            out.append(addr)
        return True

    for a in recheck:
        if not add(a):
            return out
    share = (n - len(out) + 1) // 2  # the larger half to the largest holders
    tops = [a for a in top if a not in seen][:share]
    for a in tops:
        add(a)
    for a in randoms:
        add(a)
    for a in top:
        add(a)
    return out


def next_offset(offset: int, taken: int, available: int, depth: int) -> int:
    """Where the rotation through the `depth` largest holders continues (wrapping)."""
    span = min(depth, available)
    if span <= 0:
        return 0
    nxt = offset + taken
    return 0 if nxt >= span else nxt


def random_key(kind: str, rng: random.Random) -> str:
    """A random point in the address space of a chain kind, to start a random pick from."""
    if kind == "evm":
        return "0x" + "".join(rng.choice(EVM_KEY_ALPHABET) for _ in range(8))
    return "".join(rng.choice(B58_ALPHABET) for _ in range(8))


EventKey = tuple[int, str, str, int, str, str, str, int]


def event_key(
    block_number: int,
    block_hash: str,
    tx_hash: str,
    log_index: int,
    kind: Any,
    from_addr: str | None,
    to_addr: str | None,
    amount: Any,
) -> EventKey:
    """One event as the digest sees it (store rows and fresh reads normalised alike)."""
    return (
        int(block_number),
        block_hash,
        tx_hash,
        int(log_index),
        str(kind),
        from_addr or "",
        to_addr or "",
        int(amount),
    )


def events_digest(keys: Iterable[EventKey]) -> str:
    """Order-independent sha256 over the events' keys."""
    h = hashlib.sha256()
    for k in sorted(keys):
        h.update(repr(k).encode())
        h.update(b"\n")
    return h.hexdigest()
