"""Session fixtures shared by every test: one embedded PostgreSQL (pgserver) for the run, a fresh
database per test. Set USD1_TEST_DSN to use an existing PostgreSQL server instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from indexer.store.db import create_pool, migrate


def _with_db(dsn: str, db: str) -> str:
    head, sep, tail = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{db}{sep}{tail}"


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("USD1_TEST_DSN"):
        yield os.environ["USD1_TEST_DSN"]
        return
    import pgserver

    data = Path(tmp_path_factory.mktemp("pg")) / "data"
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture
async def dsn(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_db(pg_dsn, name)
    # Best effort: a database left behind in the throwaway test server harms nothing.
    for _ in range(2):
        try:
            admin = await asyncpg.connect(pg_dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            finally:
                await admin.close()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            continue


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=4)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()
