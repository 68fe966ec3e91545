"""Live, in-memory view of each chain's follower, read by the HTTP API and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    STARTING = "starting"
    STANDBY = "standby"  # another process holds this chain's lease
    BACKFILL = "backfill"
    LIVE = "live"
    STALLED = "stalled"
    HALTED = "halted"


STATES = tuple(s.value for s in State)


@dataclass
class ChainStatus:
    chain: str
    kind: str
    decimals: int
    lag_budget: float
    stall_after: float
    head: int = -1
    indexed: int = -1
    finalized: int = -1  # the chain's finalized height (by the configured rule)
    indexed_finalized: int = -1  # min(finalized, indexed): what the index holds as final
    phase: State = State.STARTING
    started_at: float = field(default_factory=time.time)
    caught_up_at: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    halted_reason: str | None = None
    supply_head: int = 0
    supply_finalized: int = 0
    mismatch: int | None = None
    mismatch_block: int | None = None
    restarts: int = 0
    indexes_deferred: bool = False  # secondary event indexes dropped for a long backfill
    control_check: dict[str, Any] | None = None  # the last contract-state check (sync.controls)
    audit: dict[str, Any] | None = None  # the last balance audit (indexer.sync.audit)
    range_audit: dict[str, Any] | None = None  # the last range audit

    def lag_seconds(self, now: float | None = None) -> float:
        """Seconds since the follower last confirmed it had indexed the head it observed."""
        now = time.time() if now is None else now
        since = self.caught_up_at if self.caught_up_at is not None else self.started_at
        return max(0.0, now - since)

    def state(self, now: float | None = None) -> State:
        now = time.time() if now is None else now
        if self.phase in (State.HALTED, State.STANDBY):
            return self.phase
        last = self.last_success if self.last_success is not None else self.started_at
        if now - last > self.stall_after:
            return State.STALLED
        return self.phase

    def ready(self, now: float | None = None) -> bool:
        """Live and within the lag budget. A hot standby is ready: it serves the API from the
        same database the owner writes."""
        state = self.state(now)
        return state == State.STANDBY or (state == State.LIVE and self.lag_seconds(now) <= self.lag_budget)
