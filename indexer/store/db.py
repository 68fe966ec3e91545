"""PostgreSQL connectivity: the embedded server (pgserver), pools, what counts as the database
being unavailable, and versioned migrations."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil
import structlog
from asyncpg.pool import PoolConnectionProxy

from indexer.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

Conn = asyncpg.Connection | PoolConnectionProxy

_MIGRATION_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK = 0x55534431  # advisory lock key ("USD1") serialising concurrent migrators


CONNECTION_ERRORS = (
    OSError,  # includes TimeoutError (connect / command timeout) and ConnectionError
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
CONNECT_TIMEOUT = 10.0  # seconds to open a connection (a black-holed server must not hang callers)


@contextlib.contextmanager
def unavailable_on_disconnect() -> Iterator[None]:
    """Connection-level failures of the body (server gone, refused, reset, shutting down) become
    `DatabaseUnavailable`; query errors (constraints, timeouts, bad SQL) pass through unchanged."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc


class PostmasterState(enum.Enum):
    """What `postmaster.pid` says about a data directory's server, checked against the process table."""

    ABSENT = "absent"  # no postmaster.pid: never started, or stopped cleanly
    RUNNING = "running"  # a live postgres for this data directory
    DEAD = "dead"  # the pid is gone: PostgreSQL overwrites such a stale file itself
    EXITING = "exiting"  # killed, not yet reaped (zombie) or its backends still attached: wait
    FOREIGN = "foreign"  # the pid is another process's, nothing attached: the stale file must go


@dataclass(frozen=True, slots=True)
class Postmaster:
    state: PostmasterState
    pid: int | None = None


def _shm_attached(shmid: int) -> bool:
    """Whether processes are still attached to the server's SysV interlock segment (Linux)."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        cols = row.split()
        if len(cols) > 6 and cols[1] == str(shmid):
            return int(cols[6]) > 0
    return False


def postmaster(pgdata: Path) -> Postmaster:
    """Read `pgdata/postmaster.pid` and check its pid is really this data directory's postgres.
    A live server always has its SysV interlock segment attached, so FOREIGN (the only state in
    which the file is removed) can never describe a running server of this data directory."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except FileNotFoundError:
        return Postmaster(PostmasterState.ABSENT)
    except (OSError, ValueError, IndexError):  # being written: look again shortly
        return Postmaster(PostmasterState.EXITING)
    shm = lines[6].split() if len(lines) > 6 else []
    attached = len(shm) == 2 and shm[1].isdigit() and _shm_attached(int(shm[1]))
    try:
        proc = psutil.Process(pid)
        zombie = proc.status() == psutil.STATUS_ZOMBIE
        ours = not zombie and proc.name() == "postgres" and str(pgdata) in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return Postmaster(PostmasterState.EXITING if attached else PostmasterState.DEAD, pid)
    if ours:
        return Postmaster(PostmasterState.RUNNING, pid)
    if zombie or attached:
        return Postmaster(PostmasterState.EXITING, pid)
    return Postmaster(PostmasterState.FOREIGN, pid)


def _live_handle(pid: int) -> bool:
    """Whether a pgserver handle's process still runs. A pid reused by an unrelated process counts
    as live: that only leaves the server running (the safe side), where guessing wrong the other
    way would stop it under a live user."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class EmbeddedNotReady(Exception):
    """The embedded server cannot be (re)started yet: its previous instance is still exiting."""


@dataclass
class EmbeddedPostgres:
    """The `pgserver` PostgreSQL under `data_dir/pg`, started, restarted and stopped by its owner.

    pgserver shares one server among the processes that use a data directory: each registers its
    pid in `pg/.handle_pids.json` and the last one out stops the server. A process killed with
    SIGKILL never deregisters, so its pid would keep the server running after every later clean
    stop; `start` and `stop` first drop the handles of processes that no longer exist. A server
    left running by a killed run is adopted; a `postmaster.pid` whose pid is dead or now another
    process's is cleared (PostgreSQL itself refuses to start past the latter)."""

    data_dir: Path
    _server: Any = None

    @property
    def pgdata(self) -> Path:
        return (self.data_dir / "pg").resolve()  # as pgserver and the postmaster's command line name it

    async def start(self) -> str:
        # pgserver falls back to /tmp/runtime-<uid> without XDG_RUNTIME_DIR and warns; that is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(self._start)

    def _start(self) -> str:
        import pgserver  # heavy import, only when embedded mode is used

        dropped, others, before = self._tidy()
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        uri = str(self._server.get_uri())
        where = {"pgdata": str(self.pgdata), "pid": self._server.get_pid()}
        if before.state != PostmasterState.RUNNING:
            log.info("embedded_postgres_started", **where)
        elif others:
            log.info("embedded_postgres_shared", used_by=others, **where)
        else:  # running, and nobody alive uses it: left behind by a killed run
            log.warning("embedded_postgres_adopted", dead_handles=dropped, **where)
        return uri

    def _tidy(self) -> tuple[list[int], list[int], Postmaster]:
        """Under pgserver's own lock: drop the handles of dead processes and a stale
        `postmaster.pid`; returns (dropped pids, other live pids, the server's state)."""
        from pgserver.postgres_server import PostgresServer

        handles = self.pgdata / ".handle_pids.json"
        with PostgresServer._lock:
            try:
                pids = [int(p) for p in orjson.loads(handles.read_bytes())]
            except (OSError, ValueError, TypeError):
                pids = []
            others = [p for p in pids if p != os.getpid()]
            dropped = [p for p in others if not _live_handle(p)]
            if dropped:
                handles.write_bytes(orjson.dumps([p for p in pids if p not in dropped]))
            pm = postmaster(self.pgdata)
            if pm.state == PostmasterState.FOREIGN:
                (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
                log.warning("embedded_postgres_stale_pid_removed", pgdata=str(self.pgdata), pid=pm.pid)
            return dropped, [p for p in others if p not in dropped], pm

    def alive(self) -> bool:
        return self._server is not None and postmaster(self.pgdata).state == PostmasterState.RUNNING

    async def restart(self) -> str:
        """Start the server again after it died; returns its URI. `EmbeddedNotReady` while the
        dead instance is still exiting (its pid not reaped or its backends still attached)."""
        return await asyncio.to_thread(self._restart)

    def _restart(self) -> str:
        from pgserver.postgres_server import PostgresServer

        assert self._server is not None, "restart before start"
        _, _, pm = self._tidy()
        if pm.state == PostmasterState.EXITING:
            raise EmbeddedNotReady(f"the previous server (pid {pm.pid}) is still exiting")
        with PostgresServer._lock:
            self._server.ensure_postgres_running()  # starts it unless another process already did
        return str(self._server.get_uri())

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(self._stop, server)

    def _stop(self, server: Any) -> None:
        dropped, others, _ = self._tidy()
        server.cleanup()  # stops the server unless another live process still uses it
        pm = postmaster(self.pgdata)
        if pm.state in (PostmasterState.RUNNING, PostmasterState.EXITING):
            log.info("embedded_postgres_left_running", pgdata=str(self.pgdata), pid=pm.pid, used_by=others)
        else:
            log.info("embedded_postgres_stopped", pgdata=str(self.pgdata), dead_handles=dropped)


def migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("indexer.store").joinpath("migrations").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(out)


async def migrate(conn: Conn) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; returns applied versions."""
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(version)
            log.info("migration_applied", version=version, name=name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    """`min_size` connections are opened at once; none is kept as a floor afterwards (asyncpg
    would otherwise retry a lost floor in the background, logging a traceback per attempt, while
    `DatabaseKeeper` already watches the server)."""
    pool = await asyncpg.create_pool(
        dsn,
        init_size=min_size,
        min_size=0,
        max_size=max_size,
        command_timeout=60,
        timeout=CONNECT_TIMEOUT,
    )
    assert pool is not None
    return pool


POOL_CLOSE_TIMEOUT = 10.0


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close gracefully; connections stuck on a vanished server are terminated after a while."""
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
    except TimeoutError:
        pool.terminate()
