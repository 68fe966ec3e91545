"""Chain ownership through a PostgreSQL advisory lock: one process indexes a chain at a time; any
other process configured for it waits as a hot standby and takes over within seconds of the
owner's death (its session ends, PostgreSQL releases the lock).

The lock is only a liveness device. Safety does not depend on it: every commit checks the stored
cursor under `SELECT ... FOR UPDATE`, so two writers can never interleave batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from indexer.store.db import unavailable_on_disconnect

log = structlog.get_logger(__name__)

LOCK_CLASS = 0x55534431  # "USD1"
RELEASE_TIMEOUT = 5.0  # unlocking over a connection to a vanished server must not hang


class ChainLease:
    def __init__(self, pool: asyncpg.Pool, chain: str, *, check_interval: float = 1.0) -> None:
        self.pool = pool
        self.chain = chain
        self.check_interval = check_interval
        self._conn: PoolConnectionProxy | None = None
        self._checked = 0.0

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def try_acquire(self) -> bool:
        """Take the lock if free. A lock held before the database restarted is gone with its
        session: after an outage the follower `release`s and takes it again here (or stands by if
        another process got it first)."""
        if self._conn is not None:
            return True
        with unavailable_on_disconnect():
            conn = await self.pool.acquire()
            try:
                got = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, f"usd1-indexer:{self.chain}"
                )
            except BaseException:
                await self._return(conn)
                raise
        if got:
            self._conn = conn
            self._checked = time.monotonic()
            log.info("chain_lease_acquired", chain=self.chain)
            return True
        await self._return(conn)
        return False

    async def _return(self, conn: PoolConnectionProxy) -> None:
        """Back to the pool; a connection to a server that went away is closed, not reset."""
        with contextlib.suppress(Exception):
            await self.pool.release(conn, timeout=RELEASE_TIMEOUT)

    async def still_held(self) -> bool:
        """Cheap liveness check of the lock's session (at most every `check_interval`)."""
        if self._conn is None:
            return False
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return True
        try:
            held = await asyncio.wait_for(
                self._conn.fetchval(
                    "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = $1::oid"
                    " AND objid = hashtext($2)::oid",
                    LOCK_CLASS,
                    f"usd1-indexer:{self.chain}",
                ),
                timeout=5,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            held = False
        self._checked = now
        if not held:
            log.warning("chain_lease_lost", chain=self.chain)
            await self.release()
        return bool(held)

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A connection lost with its server is already detached from the pool: nothing to unlock.
        with contextlib.suppress(Exception):
            await conn.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))",
                LOCK_CLASS,
                f"usd1-indexer:{self.chain}",
                timeout=RELEASE_TIMEOUT,
            )
        await self._return(conn)
