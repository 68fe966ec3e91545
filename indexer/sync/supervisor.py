"""Owns the followers' tasks: restarts a crashed follower with backoff (counted), never lets one
chain take down the others; a halted chain (finality violation) stays halted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from indexer.errors import FinalityViolation
from indexer.metrics import Metrics
from indexer.sync.follower import Follower

log = structlog.get_logger(__name__)


class Supervisor:
    def __init__(
        self,
        followers: Sequence[Follower],
        metrics: Metrics,
        *,
        restart_backoff: float = 1.0,
        restart_backoff_max: float = 60.0,
        drain_timeout: float = 5.0,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.followers = list(followers)
        self.metrics = metrics
        self.restart_backoff = restart_backoff
        self.restart_backoff_max = restart_backoff_max
        self.drain_timeout = drain_timeout
        self._tick = tick

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._keep(f, stop), name=f"follower:{f.chain}") for f in self.followers]
        tasks.append(asyncio.create_task(self._refresh(stop), name="status-refresh"))
        try:
            await stop.wait()
            # Let in-flight steps finish their transaction (they check `stop` between steps).
            await asyncio.wait(tasks, timeout=self.drain_timeout)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, follower: Follower, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await follower.run(stop)
                return
            except asyncio.CancelledError:
                raise
            except FinalityViolation:
                return  # halted loudly by the follower; a human must look
            except Exception as exc:
                failures = 1 if time.monotonic() - started > self.restart_backoff_max else failures + 1
                delay = min(self.restart_backoff_max, self.restart_backoff * 2 ** (failures - 1))
                follower.status.restarts += 1
                follower.status.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.follower_restarts.labels(follower.chain).inc()
                log.exception("follower_crashed", chain=follower.chain, restart_in=delay, restarts=failures)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _refresh(self, stop: asyncio.Event) -> None:
        """Lag and state are functions of time: re-export them every second."""
        while not stop.is_set():
            for f in self.followers:
                f.export()
            if self._tick is not None:
                self._tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
