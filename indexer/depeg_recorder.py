"""The daemon's depeg recorder: feeds the pure tracker (`indexer.depegs`) from the market
service's readings and writes changed episodes to PostgreSQL (`indexer.store.depeg_queries`).

`on_reading(venue, unix_time, deviation_bps | None)` is the market service's callback (None: the
read failed); it never blocks and never touches the database. `run(stop)` takes the depeg lease
(one recording process per database; the others stand by, `depeg_recorder_standby`), loads the
open episodes so a restart continues them (readings that arrive meanwhile wait in a bounded
buffer, then are replayed), then writes what changed whenever something did. A store failure is logged
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
from indexer.errors import DatabaseUnavailable
from indexer.store import depeg_queries as dq
from indexer.sync.lease import ChainLease

_Logger = Any
LEASE = "@depegs"  # the advisory-lock name (chain names cannot start with "@")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
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
        self._active: bool | None = None  # True: holds the lease; False: standing by; None: not known yet
        self._standing_by = False

    @property
    def tracker(self) -> DepegTracker | None:
        return self._tracker

    def on_reading(self, venue: str, unix_time: float, bps: Decimal | None) -> None:
        if self._active is False:
            return  # standing by: the recording process has its own readings
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
        """Record until `stop` (a last flush then). Only the process holding the depeg lease (a
        PostgreSQL advisory lock, as chains use) records: with several daemons on one database
        (split by chain, hot standbys) the others stand by and ignore their readings."""
        lease = ChainLease(self._pool, LEASE, check_interval=self._retry)
        try:
            while not stop.is_set():
                try:
                    got = await lease.try_acquire() and await lease.still_held()
                except (DatabaseUnavailable, *DB_ERRORS) as exc:
                    # The database is away: keep tracking (changes wait in `pending`), try again.
                    self._failed(exc)
                    if await self._sleep_or_stop(stop):
                        return
                    continue
                if not got:
                    self._standby()
                    if not self._standing_by:
                        self._standing_by = True
                        self._log.info("depeg_recorder_standby", reason="another process records depegs")
                    if await self._sleep_or_stop(stop):
                        return
                    continue
                self._active = True
                if self._standing_by:
                    self._standing_by = False
                    self._log.info("depeg_recorder_active")
                if self._tracker is None and not await self._load():
                    if await self._sleep_or_stop(stop):
                        return
                    continue
                if self._pending:
                    if not await self.flush() and await self._sleep_or_stop(stop):
                        break
                    continue
                await self._wait_dirty(stop)
            if lease.held:
                await self.flush()
        finally:
            await lease.release()

    async def _load(self) -> bool:
        """Load the open episodes and start the tracker from them (then replay buffered readings)."""
        try:
            async with self._pool.acquire() as conn:
                open_eps = await dq.load_open(conn)
        except DB_ERRORS as exc:
            self._failed(exc)
            return False
        self._recovered()
        tracker = DepegTracker(self._thresholds, open_eps)
        self._tracker = tracker
        if open_eps:
            self._log.info("depeg_episodes_resumed", count=len(open_eps))
        while self._buffer:
            self._apply(tracker, *self._buffer.popleft())
        return True

    def _standby(self) -> None:
        """Not recording: forget the tracker and what was not written (the recording process
        continues from the store)."""
        self._active = False
        self._tracker = None
        self._buffer.clear()
        self._pending.clear()

    async def _wait_dirty(self, stop: asyncio.Event) -> None:
        """Until something changed, `stop`, or the next lease check is due."""
        waiter = asyncio.create_task(self._dirty.wait())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED, timeout=self._retry)
        finally:
            waiter.cancel()
            stopper.cancel()
        self._dirty.clear()

    async def flush(self) -> bool:
        """Write the pending changes; True when none is left."""
        if not self._pending:
            return True
        batch = dict(self._pending)
        try:
            async with self._pool.acquire() as conn:
                await dq.upsert(conn, list(batch.values()))
        except asyncpg.UniqueViolationError:
            # Another process recorded meanwhile (it held the lease while this one was cut off):
            # its rows win; start again from the store.
            self._log.warning("depeg_store_conflict", pending=len(self._pending))
            self._tracker = None
            self._pending.clear()
            return False
        except DB_ERRORS as exc:
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
