"""Depeg episodes on the real PostgreSQL fixture: upsert on change, and a restart continues an
open episode instead of opening a new one (indexer/depeg_recorder.py, migration 010)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from indexer.depeg_recorder import DepegRecorder
from indexer.depegs import Episode, Thresholds
from indexer.store import depeg_queries as dq
from indexer.store.db import create_pool

T0 = datetime(2026, 2, 10, 12, 0, tzinfo=UTC).timestamp()
D = Decimal
THRESHOLDS = Thresholds(D(50), D(10))


async def _rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT scope, venue, started_at, peak_bps, peak_at, ended_at, duration_seconds"
        " FROM depeg_episodes ORDER BY scope DESC, started_at"
    )


async def _session(pool: asyncpg.Pool, readings: list[tuple[str, float, Decimal | None]]) -> DepegRecorder:
    """One daemon life: start the recorder, feed readings, stop (which flushes)."""
    rec = DepegRecorder(pool, THRESHOLDS, retry_seconds=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    for venue, t, bps in readings:
        rec.on_reading(venue, t, bps)
        await asyncio.sleep(0)
    for _ in range(200):
        if rec.tracker is not None and await rec.flush():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    return rec


async def test_restart_continues_the_open_episode_then_recovery_closes_it(pool: asyncpg.Pool) -> None:
    # First life: the venue goes off peg and the daemon stops while it is still off.
    await _session(pool, [("dex", T0, D("-3")), ("dex", T0 + 60, D("-55.5")), ("dex", T0 + 120, D("-61"))])
    rows = await _rows(pool)
    assert [(r["scope"], r["venue"], r["ended_at"]) for r in rows] == [
        ("venue", "dex", None),
        ("aggregate", None, None),
    ]
    assert rows[0]["peak_bps"] == D("-61") and rows[0]["started_at"].timestamp() == T0 + 60

    # Second life: loads the open episodes; more off-peg points update the same rows.
    rec = await _session(pool, [("dex", T0 + 600, D("-80.25")), ("dex", T0 + 660, D("-70"))])
    assert rec.tracker is not None and len(rec.tracker.open_episodes) == 2
    rows = await _rows(pool)
    assert len(rows) == 2, "a restart must not open a second episode"
    venue = rows[0]
    assert venue["started_at"].timestamp() == T0 + 60  # the original start
    assert venue["peak_bps"] == D("-80.25") and venue["peak_at"].timestamp() == T0 + 600
    assert venue["ended_at"] is None and venue["duration_seconds"] is None

    # Third life: recovery closes both; the duration is computed by the database.
    await _session(pool, [("dex", T0 + 900, D("-45")), ("dex", T0 + 960, D("-12"))])
    rows = await _rows(pool)
    assert len(rows) == 2
    assert all(r["ended_at"].timestamp() == T0 + 960 for r in rows)
    assert rows[0]["duration_seconds"] == D(900)
    assert rows[0]["peak_bps"] == D("-80.25")
    async with pool.acquire() as conn:
        assert await dq.load_open(conn) == []


async def test_closed_rows_never_change_and_one_open_per_venue(pool: asyncpg.Pool) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    closed = Episode("venue", "a", t, D(60), D(70), t, ended_at=later, end_bps=D(1))
    async with pool.acquire() as conn:
        await dq.upsert(conn, [closed])
        # A stale write of the same episode as open does not reopen it.
        await dq.upsert(conn, [Episode("venue", "a", t, D(60), D(99), t)])
        assert (await conn.fetchval("SELECT peak_bps FROM depeg_episodes")) == D(70)
        await dq.upsert(conn, [Episode("venue", "a", later, D(60), D(60), later)])
        with pytest.raises(asyncpg.UniqueViolationError):
            await dq.upsert(
                conn, [Episode("venue", "a", datetime(2026, 1, 3, tzinfo=UTC), D(60), D(60), later)]
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await dq.upsert(conn, [Episode("aggregate", "a", t, D(60), D(60), t)])


async def test_store_failure_is_logged_once_and_recovery_once(pool: asyncpg.Pool) -> None:
    events: list[str] = []

    class Log:
        def warning(self, event: str, **kw: object) -> None:
            events.append(event)

        def info(self, event: str, **kw: object) -> None:
            events.append(event)

    rec = DepegRecorder(pool, THRESHOLDS, logger=Log(), retry_seconds=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    for _ in range(100):
        if rec.tracker is not None:
            break
        await asyncio.sleep(0.01)
    await pool.execute("ALTER TABLE depeg_episodes RENAME TO depeg_episodes_away")
    rec.on_reading("dex", T0, D(90))
    rec.on_reading("dex", T0 + 1, D(95))
    await asyncio.sleep(0.2)  # several failed attempts
    await pool.execute("ALTER TABLE depeg_episodes_away RENAME TO depeg_episodes")
    for _ in range(200):
        if "depeg_store_recovered" in events:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert events == ["depeg_store_failed", "depeg_store_recovered"]
    rows = await _rows(pool)
    assert [(r["scope"], r["peak_bps"]) for r in rows] == [("venue", D(95)), ("aggregate", D(95))]


async def test_pending_changes_stay_bounded_while_the_store_is_down(pool: asyncpg.Pool) -> None:
    events: list[str] = []

    class Log:
        def warning(self, event: str, **kw: object) -> None:
            events.append(event)

        def info(self, event: str, **kw: object) -> None:
            events.append(event)

    rec = DepegRecorder(pool, THRESHOLDS, logger=Log(), retry_seconds=0.01, max_pending=5)
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    for _ in range(100):
        if rec.tracker is not None:
            break
        await asyncio.sleep(0.01)
    await pool.execute("ALTER TABLE depeg_episodes RENAME TO depeg_episodes_away")
    # 20 short episodes on one venue (each opens and closes; with the aggregate: 40 rows).
    for i in range(20):
        rec.on_reading("dex", T0 + 10 * i, D(90))
        rec.on_reading("dex", T0 + 10 * i + 5, D(0))
    # An episode still open when the store comes back is never dropped.
    rec.on_reading("dex", T0 + 1000, D(-70))
    await asyncio.sleep(0.05)
    await pool.execute("ALTER TABLE depeg_episodes_away RENAME TO depeg_episodes")
    for _ in range(200):
        if "depeg_store_recovered" in events:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    # Each logged once (the drop happens at the readings, before the writer's first failed try).
    assert sorted(events) == ["depeg_pending_dropped", "depeg_store_failed", "depeg_store_recovered"]
    rows = await _rows(pool)
    assert len(rows) == 5  # the newest closed ones and the two open ones
    assert sum(r["ended_at"] is None for r in rows) == 2
    assert {r["peak_bps"] for r in rows if r["ended_at"] is None} == {D(-70)}


async def test_one_recorder_per_database_the_other_takes_over(pool: asyncpg.Pool, dsn: str) -> None:
    """Two daemons on one database (split by chain, or a hot standby): one records, the other
    stands by; when the first stops, the second takes over and continues its open episode."""
    other_pool = await create_pool(dsn, min_size=1, max_size=2)
    first = DepegRecorder(pool, THRESHOLDS, retry_seconds=0.05)
    second = DepegRecorder(other_pool, THRESHOLDS, retry_seconds=0.05)
    stop1, stop2 = asyncio.Event(), asyncio.Event()
    t1 = asyncio.create_task(first.run(stop1))
    for _ in range(200):
        if first.tracker is not None:
            break
        await asyncio.sleep(0.01)
    t2 = asyncio.create_task(second.run(stop2))
    try:
        await asyncio.sleep(0.2)
        assert first.tracker is not None and second.tracker is None  # the second stands by
        for rec in (first, second):  # both pollers see the market
            rec.on_reading("dex", T0, D(60))
            rec.on_reading("dex", T0 + 2, D(70))
        assert await first.flush()
        assert second.tracker is None
        stop1.set()
        await t1  # releases the lease
        for _ in range(200):
            if second.tracker is not None:
                break
            await asyncio.sleep(0.01)
        assert second.tracker is not None and ("venue", "dex") in second.tracker.open_episodes
        second.on_reading("dex", T0 + 10, D(85))
        second.on_reading("dex", T0 + 20, D(1))
        assert await second.flush()
    finally:
        stop1.set()
        stop2.set()
        await asyncio.gather(t1, t2)
        await other_pool.close()
    rows = await _rows(pool)
    assert [(r["scope"], r["peak_bps"], r["ended_at"].timestamp()) for r in rows] == [
        ("venue", D(85), T0 + 20),
        ("aggregate", D(85), T0 + 20),
    ]
