"""PostgreSQL connectivity: the embedded server (pgserver), pools and versioned migrations."""

from __future__ import annotations

import asyncio
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

Conn = asyncpg.Connection | PoolConnectionProxy

_MIGRATION_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK = 0x55534431  # advisory lock key ("USD1") serialising concurrent migrators


@dataclass
class EmbeddedPostgres:
    """The `pgserver` PostgreSQL under `data_dir/pg`, started and stopped by its owner."""

    data_dir: Path
    _server: Any = None

    async def start(self) -> str:
        import pgserver  # heavy import, only when embedded mode is used

        # pgserver falls back to /tmp/runtime-<uid> without XDG_RUNTIME_DIR and warns; that is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        pgdata = self.data_dir / "pg"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")
        uri = str(self._server.get_uri())
        log.info("embedded_postgres_started", pgdata=str(pgdata))
        return uri

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
            log.info("embedded_postgres_stopped")


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
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=60)
    assert pool is not None
    return pool
