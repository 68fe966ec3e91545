"""Keeps the database reachable for a long-running process (`run`, `serve`, `backfill`).

A probe connection of its own (outside the pool, so a busy pool never looks like an outage) runs
`SELECT 1` every second. The first failure marks the database down: one log line
`database_unavailable`, `usd1_database_up` 0. While it is down:
- embedded PostgreSQL: once its postmaster is gone, start it again (`usd1_database_restarts_total`),
  retrying with backoff while the dead instance is still exiting;
- a configured DSN: reconnect with backoff (0.5 s doubling up to 10 s).
The first success after that: one line `database_recovered` (down_seconds, restarts), up 1, and
the pool's connections renewed. Past `database.unavailable_limit` the process is unhealthy
(`/healthz` 503; one line `database_unavailable_limit_exceeded`) and, with
`database.exit_on_unavailable`, it stops and exits non-zero so an orchestrator replaces it.

Callers that hit a connection failure `report` it (which wakes the probe) or, in a loop that
cannot progress without the database, await `outage` (it returns once the database is back).
Without `run` (a one-shot command, an app in a test), the keeper is passive: requests' own
failures and successes are its observations.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import asyncpg
import structlog

from indexer.metrics import Metrics
from indexer.store.db import CONNECTION_ERRORS, EmbeddedNotReady, EmbeddedPostgres

log = structlog.get_logger(__name__)


# ---- pure core -----------------------------------------------------------------------------------
class Transition(enum.Enum):
    DOWN = "down"  # the first failure after being up
    UP = "up"  # the first success after being down
    LIMIT = "limit"  # down for `unavailable_limit` seconds


@dataclass(frozen=True, slots=True)
class Health:
    down_since: float | None = None  # monotonic time of the first failure of this outage
    limit_passed: bool = False


def observe(h: Health, ok: bool, now: float, limit: float) -> tuple[Health, Transition | None]:
    """PURE: fold one observation (the database answered or not) into the health state."""
    if ok:
        return (Health(), Transition.UP) if h.down_since is not None else (h, None)
    if h.down_since is None:
        return Health(now), Transition.DOWN
    if not h.limit_passed and now - h.down_since >= limit:
        return Health(h.down_since, True), Transition.LIMIT
    return h, None


def retry_delay(failures: int, first: float, most: float) -> float:
    """PURE: seconds before the next attempt after `failures` consecutive failures (>= 1)."""
    return min(most, first * 2 ** max(0, failures - 1))


# ---- the keeper ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeeperSettings:
    unavailable_limit: float = 300.0
    exit_on_unavailable: bool = False
    probe_interval: float = 1.0  # between probes while up
    probe_timeout: float = 5.0
    retry_first: float = 0.5  # while down: first retry after this, doubling ...
    retry_max: float = 10.0  # ... up to this


class DatabaseKeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str | None,
        metrics: Metrics | None = None,
        settings: KeeperSettings = KeeperSettings(),
        embedded: EmbeddedPostgres | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.dsn = dsn  # None: probe through the pool (a passive keeper made for an app alone)
        self.metrics = metrics
        self.s = settings
        self.embedded = embedded
        self.clock = clock
        self.gave_up = False  # stopped the process after `unavailable_limit` (exit_on_unavailable)
        self._health = Health()
        self._probe: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._up.set()
        self._stop: asyncio.Event | None = None
        self._outage_restarts = 0
        self._restart_failure_logged = False
        self._last_error = ""
        if metrics is not None:
            metrics.db_up.set(1)  # made on a pool that just connected

    # ---- state -----------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return self._health.down_since is None

    @property
    def watching(self) -> bool:
        """Whether `run` is probing (then a known outage can be answered without trying)."""
        return self._stop is not None

    @property
    def healthy(self) -> bool:
        """False once the database has been unreachable for longer than `unavailable_limit`."""
        return not self._health.limit_passed

    def unavailable_for(self) -> float:
        since = self._health.down_since
        return 0.0 if since is None else self.clock() - since

    def describe(self) -> str:
        return (
            f"database unreachable for {self.unavailable_for():.0f} s "
            f"(limit {self.s.unavailable_limit:g} s): {self._last_error}"
        )

    # ---- what callers tell it --------------------------------------------------------------
    def report(self, exc: BaseException) -> None:
        """A caller's operation failed at the connection level."""
        if self.watching:
            if self.available:
                self._wake.set()  # probe now; while down, the retry schedule stands
        else:
            self._observe(False, exc)

    def note_ok(self) -> None:
        """A caller's operation succeeded (a passive keeper's only news that it is back)."""
        if not self.watching and not self.available:
            self._observe(True, None)

    async def outage(self, exc: BaseException, stop: asyncio.Event) -> bool:
        """After a caller's connection failure: False if the database answers a probe right away
        (not an outage: the caller retries as for any error); else wait until it is back (or
        `stop`) and return True."""
        self.report(exc)
        if await self.check():
            return False
        await self.wait_available(stop)
        return True

    async def wait_available(self, stop: asyncio.Event) -> None:
        if not self._up.is_set():
            await _first(self._up, stop)

    # ---- probing ---------------------------------------------------------------------------
    async def check(self) -> bool:
        """Probe now (concurrent callers share one probe); returns whether the database answered."""
        async with self._lock:
            error = await self._ping()
            if self._observe(error is None, error) == Transition.UP:
                await self.pool.expire_connections()  # replace connections opened before the outage
            return error is None

    async def _ping(self) -> BaseException | None:
        timeout = self.s.probe_timeout
        try:
            if self.dsn is None:
                await self.pool.fetchval("SELECT 1", timeout=timeout)
                return None
            if self._probe is None or self._probe.is_closed():
                self._probe = await asyncpg.connect(self.dsn, timeout=timeout)
            await self._probe.fetchval("SELECT 1", timeout=timeout)
            return None
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:  # refused, auth, too many, ...
            self._drop_probe()
            return exc

    def _drop_probe(self) -> None:
        if self._probe is not None:
            self._probe.terminate()
            self._probe = None

    def _observe(self, ok: bool, error: BaseException | None) -> Transition | None:
        if error is not None:
            self._last_error = f"{type(error).__name__}: {error}"
        down_for = self.unavailable_for()
        self._health, t = observe(self._health, ok, self.clock(), self.s.unavailable_limit)
        m = self.metrics
        match t:
            case None:
                pass
            case Transition.DOWN:
                self._up.clear()
                if m is not None:
                    m.db_up.set(0)
                log.warning(
                    "database_unavailable", error=self._last_error, embedded=self.embedded is not None
                )
            case Transition.UP:
                self._up.set()
                if m is not None:
                    m.db_up.set(1)
                log.info(
                    "database_recovered", down_seconds=round(down_for, 3), restarts=self._outage_restarts
                )
                self._outage_restarts = 0
                self._restart_failure_logged = False
            case Transition.LIMIT:
                exiting = self.s.exit_on_unavailable and self._stop is not None
                log.error(
                    "database_unavailable_limit_exceeded",
                    limit_seconds=self.s.unavailable_limit,
                    error=self._last_error,
                    exiting=exiting,
                )
                if exiting:
                    assert self._stop is not None
                    self.gave_up = True
                    self._stop.set()
            case _:
                assert_never(t)
        return t

    async def _revive(self) -> bool:
        """The embedded server is gone: start it again. True once it runs."""
        assert self.embedded is not None
        try:
            uri = await self.embedded.restart()
        except EmbeddedNotReady:
            return False  # the dead instance is still exiting: next round
        except Exception as exc:  # pg_ctl failed or timed out, a half-written pid file: retried
            if not self._restart_failure_logged:
                log.warning("embedded_postgres_restart_failed", error=f"{type(exc).__name__}: {exc}")
                self._restart_failure_logged = True
            return False
        self._outage_restarts += 1
        if self.metrics is not None:
            self.metrics.db_restarts.inc()
        if uri != self.dsn:
            self.dsn = uri
            self.pool.set_connect_args(dsn=uri)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until `stop`; restart the embedded server when it died; enforce the limit."""
        self._stop = stop
        failures = 0
        try:
            while not stop.is_set():
                ok = await self.check()
                if not ok and self.embedded is not None and not self.embedded.alive():
                    if await self._revive():
                        ok = await self.check()
                failures = 0 if ok else failures + 1
                delay = (
                    self.s.probe_interval
                    if ok
                    else retry_delay(failures, self.s.retry_first, self.s.retry_max)
                )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), timeout=delay)
        finally:
            self._stop = None
            self._drop_probe()


async def _first(*events: asyncio.Event) -> None:
    tasks = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
