"""Session fixtures shared by every test: one embedded PostgreSQL (pgserver) for the run, a fresh
database per test. Set USD1_TEST_DSN to use an existing PostgreSQL server instead."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
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


@contextlib.contextmanager
def server_dir() -> Iterator[Path]:
    """A directory for a PostgreSQL server's data, outside pytest's temp root: run as root,
    pgserver starts PostgreSQL as the unprivileged user `pgserver`, and pytest resets its root
    (/tmp/pytest-of-<user>) to mode 0700 whenever another pytest session starts, which cuts a
    running server off from its data directory (it PANICs at its next checkpoint)."""
    path = Path(tempfile.mkdtemp(prefix="usd1-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    if os.environ.get("USD1_TEST_DSN"):
        yield os.environ["USD1_TEST_DSN"]
        return
    import pgserver

    with server_dir() as root:
        server = pgserver.get_server(root / "data", cleanup_mode="stop")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


@pytest.fixture
def pg_tmp() -> Iterator[Path]:
    """A test's own directory for a PostgreSQL server it starts (see `server_dir`)."""
    with server_dir() as path:
        yield path


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
