"""The daemon's depeg recorder: feeds the pure tracker (`indexer.depegs`) from the market
service's readings and writes changed episodes to PostgreSQL (`indexer.store.depeg_queries`).

`on_reading(venue, unix_time, deviation_bps | None)` is the market service's callback (None: the
read failed); it never blocks and never touches the database. `run(stop)` first loads the open
episodes so a restart continues them (readings that arrive before that wait in a bounded buffer,
then are replayed), then writes what changed whenever something did. A store failure is logged
once (`depeg_store_failed`) and its recovery once (`depeg_store_recovered`); meanwhile changes
stay pending (coalesced per episode, at most `max_pending`; past that the oldest closed ones are
dropped, logged once).
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from indexer.config import MarketConfig
from indexer.depegs import DepegTracker, Episode, Thresholds
from indexer.store import depeg_queries as dq

_Logger = Any
_Key = tuple[str, str | None, datetime]


class DepegRecorder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        thresholds: Thresholds,
        *,
        logger: _Logger | None = None,
        retry_seconds: float = 2.0,
        max_buffered: int = 10_000,
        max_pending: int = 10_000,
    ) -> None:
        self._pool = pool
        self._thresholds = thresholds
        self._log = logger if logger is not None else structlog.get_logger("indexer.depegs")
        self._retry = retry_seconds
        self._tracker: DepegTracker | None = None  # None until the open episodes are loaded
        self._buffer: collections.deque[tuple[str, datetime, Decimal | None]] = collections.deque(
            maxlen=max_buffered
        )
        self._pending: dict[_Key, Episode] = {}
        self._max_pending = max_pending
        self._dirty = asyncio.Event()
        self._failing = False
        self._dropped = 0

    @property
    def tracker(self) -> DepegTracker | None:
        return self._tracker

    def on_reading(self, venue: str, unix_time: float, bps: Decimal | None) -> None:
        at = datetime.fromtimestamp(unix_time, UTC)
        if self._tracker is None:
            self._buffer.append((venue, at, bps))
            return
        self._apply(self._tracker, venue, at, bps)

    def _apply(self, tracker: DepegTracker, venue: str, at: datetime, bps: Decimal | None) -> None:
        changed = tracker.venue_down(venue, at) if bps is None else tracker.observe(venue, at, bps)
        for e in changed:
            key = (e.scope, e.venue, e.started_at)
            fresh = key not in self._pending
            self._pending[key] = e  # a key already pending keeps its place: writes stay in order
            if fresh:
                self._bound()
        if changed:
            self._dirty.set()

    def _bound(self) -> None:
        while len(self._pending) > self._max_pending:
            victim = next((k for k, e in self._pending.items() if not e.open), None)
            if victim is None:
                return
            del self._pending[victim]
            if self._dropped == 0:
                self._log.warning("depeg_pending_dropped", max_pending=self._max_pending)
            self._dropped += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Load the open episodes (retrying), then write changes until `stop` (a last flush then)."""
        while self._tracker is None:
            try:
                async with self._pool.acquire() as conn:
                    open_eps = await dq.load_open(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._failed(exc)
                if await self._sleep_or_stop(stop):
                    return
                continue
            self._recovered()
            tracker = DepegTracker(self._thresholds, open_eps)
            self._tracker = tracker
            if open_eps:
                self._log.info("depeg_episodes_resumed", count=len(open_eps))
            while self._buffer:
                self._apply(tracker, *self._buffer.popleft())
        while not stop.is_set():
            if self._pending:
                if not await self.flush() and await self._sleep_or_stop(stop):
                    break
                continue
            waiter = asyncio.create_task(self._dirty.wait())
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            self._dirty.clear()
        await self.flush()

    async def flush(self) -> bool:
        """Write the pending changes; True when none is left."""
        if not self._pending:
            return True
        batch = dict(self._pending)
        try:
            async with self._pool.acquire() as conn:
                await dq.upsert(conn, list(batch.values()))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._failed(exc)
            return False
        for k, e in batch.items():
            if self._pending.get(k) is e:  # not changed again meanwhile
                del self._pending[k]
        self._recovered()
        return not self._pending

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            self._log.warning("depeg_store_failed", error=f"{type(exc).__name__}: {exc}")

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self._log.info("depeg_store_recovered", pending=len(self._pending))

    async def _sleep_or_stop(self, stop: asyncio.Event) -> bool:
        try:
            async with asyncio.timeout(self._retry):
                await stop.wait()
        except TimeoutError:
            return False
        return True


def thresholds(market: MarketConfig) -> Thresholds:
    """The tracker's thresholds from `market.depeg_threshold_bps` / `depeg_hysteresis_bps`."""
    return Thresholds(Decimal(market.depeg_threshold_bps), Decimal(market.depeg_hysteresis_bps))
