"""History API latency at scale: 1M+ synthetic events COPYed into a fresh database, then the real
aiohttp app is queried over HTTP and p50/p99 latencies are printed.

    .venv/bin/python -m bench.api_bench [--events 1200000] [--requests 200] [--dsn DSN]

Without --dsn, a bench-owned embedded PostgreSQL under bench/.cache/pg-api is used. The data:
one EVM chain, ~3.3 events per block, 12 s blocks; one "hot" address is party to ~10k events;
the rest spread over 200k addresses. Not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp

from bench.common import CACHE, BenchPostgres, log
from indexer.api.app import PAGE_CACHE, create_app
from indexer.config import Config
from indexer.daemon import serve_http
from indexer.metrics import Metrics
from indexer.store.db import create_pool, migrate
from indexer.store.store import EVENT_COLUMNS, SUPPLY_COLUMNS, Store

CHAIN = "ethereum"
TOKEN = "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"
ZERO = "0x" + "0" * 40
HOT = "0x" + "ab" * 20
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BLOCK_SECONDS = 12


def addr(i: int) -> str:
    return f"0x{i:040x}"


def generate(
    n_events: int, hot_events: int, seed: int = 1
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (event rows, supply rows), in block order."""
    rng = random.Random(seed)
    hot_p = hot_events / n_events
    minted = burned = mints = burns = transfers = 0
    block = 0
    events: list[tuple[Any, ...]] = []
    supply: list[tuple[Any, ...]] = []
    done = 0
    while done < n_events:
        block += 1
        ts = T0 + timedelta(seconds=block * BLOCK_SECONDS)
        unix = int(ts.timestamp())
        bhash = f"0x{block:064x}"
        for li in range(rng.randint(0, 6)):
            r = rng.random()
            a, b = addr(rng.randrange(1, 200_000)), addr(rng.randrange(1, 200_000))
            if rng.random() < hot_p:
                a, b = (HOT, b) if rng.random() < 0.5 else (a, HOT)
            amount = rng.randrange(1, 10**24)
            if r < 0.1:
                kind, a = "mint", ZERO
                minted += amount
                mints += 1
            elif r < 0.15:
                kind, b = "burn", ZERO
                burned += amount
                burns += 1
            else:
                kind = "transfer"
                transfers += 1
            events.append((CHAIN, block, bhash, f"0x{done:064x}", li, kind, a, b, Decimal(amount), unix))
            done += 1
        if events and events[-1][1] == block:
            supply.append(
                (CHAIN, block, bhash, ts, Decimal(minted), Decimal(burned), mints, burns, transfers)
            )
        if len(events) >= 100_000 or done >= n_events:
            yield events, supply
            events, supply = [], []


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def load(dsn: str, n_events: int) -> tuple[int, int]:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await Store(pool).register_chain(CHAIN, "evm", TOKEN.lower(), 18)
        started = time.perf_counter()
        last_block, hot = 0, 0
        async with pool.acquire() as conn:
            for events, supply in generate(n_events, 10_000):
                await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
                await conn.copy_records_to_table("supply", records=supply, columns=SUPPLY_COLUMNS)
                last_block = events[-1][1]
                hot += sum(1 for e in events if HOT in (e[6], e[7]))
            fin = last_block - 64
            ts = T0 + timedelta(seconds=last_block * BLOCK_SECONDS)
            await conn.execute(
                "INSERT INTO cursors (chain, indexed_number, indexed_hash, indexed_parent, indexed_time,"
                " finalized_number) VALUES ($1, $2, $3, $4, $5, $6)",
                CHAIN,
                last_block,
                f"0x{last_block:064x}",
                f"0x{last_block - 1:064x}",
                ts,
                fin,
            )
            await conn.execute(
                "INSERT INTO balances (chain, address, raw)"
                " SELECT $1, a, sum(d) FROM ("
                "  SELECT to_addr AS a, amount AS d FROM events WHERE chain = $1 AND kind <> 'burn'"
                "  UNION ALL SELECT from_addr, -amount FROM events WHERE chain = $1 AND kind <> 'mint'"
                " ) t GROUP BY a",
                CHAIN,
            )
            await conn.execute("ANALYZE")
        log(
            f"loaded {n_events:,} events ({last_block:,} blocks, hot address in {hot:,}) in {time.perf_counter() - started:.1f}s"
        )
        return last_block, hot
    finally:
        await pool.close()


async def measure(
    dsn: str, requests: int, last_block: int, n_events: int
) -> list[tuple[str, int, float, float, float]]:
    cfg = Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": tempfile.mkdtemp(),
            "chains": [{"name": CHAIN, "kind": "evm", "rpc": ["http://127.0.0.1:9"], "token": TOKEN}],
        }
    )
    pool = await create_pool(dsn, min_size=2, max_size=8)
    app = create_app(cfg, Store(pool), Metrics())
    rows: list[tuple[str, int, float, float, float]] = []
    end = T0 + timedelta(seconds=last_block * BLOCK_SECONDS)
    day = (end - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    day2 = (end - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    try:
        async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"

            async def timed(name: str, paths: list[str], before: Any = None) -> None:
                lat = []
                for p in paths:
                    if before is not None:
                        before()
                    t = time.perf_counter()
                    async with http.get(base + p) as r:
                        await r.read()
                        assert r.status == 200, (p, r.status, await r.text())
                    lat.append((time.perf_counter() - t) * 1000)
                rows.append((name, len(lat), pct(lat, 0.5), pct(lat, 0.99), statistics.fmean(lat)))

            rng = random.Random(2)
            t = f"/api/v1/transfers?chain={CHAIN}"
            await timed("transfers address=hot, first page (100)", [f"{t}&address={HOT}"] * requests)
            # Every page of the hot address (cursor walk), 100 per page.
            paths, cursor = [], None
            while True:
                p = f"{t}&address={HOT}&limit=100" + (f"&cursor={cursor}" if cursor else "")
                paths.append(p)
                async with http.get(base + p) as r:
                    cursor = (await r.json())["next_cursor"]
                if cursor is None:
                    break
            await timed(f"transfers address=hot, all {len(paths)} pages", paths)
            await timed(
                "transfers address=hot, to_block random",
                [f"{t}&address={HOT}&to_block={rng.randrange(last_block)}" for _ in range(requests)],
            )
            await timed(
                "transfers address=random (sparse)",
                [f"{t}&address={addr(rng.randrange(1, 200_000))}" for _ in range(requests)],
            )
            await timed("transfers latest page (chain-wide)", [t] * requests)
            await timed(
                "transfers 1-day window, kind=mint", [f"{t}&since={day}&until={day2}&kind=mint"] * requests
            )
            await timed("transfers min_amount=999999 tokens", [f"{t}&min_amount=999999"] * requests)
            hist = "/api/v1/supply/history?chain=" + CHAIN
            await timed(
                "supply/history 1d x 60",
                [
                    f"{hist}&interval=1d&since={(end - timedelta(days=60)).timestamp():.0f}&until={end.timestamp():.0f}"
                ]
                * requests,
            )
            await timed(
                "supply/history 1h x 1000",
                [
                    f"{hist}&interval=1h&since={(end - timedelta(hours=999)).timestamp():.0f}&until={end.timestamp():.0f}"
                ]
                * requests,
            )
            await timed(
                "accounts hot (finalized sum over ~10k)", [f"/api/v1/accounts/{CHAIN}/{HOT}"] * requests
            )
            await timed(
                "tx by hash",
                [f"/api/v1/tx/{CHAIN}/0x{rng.randrange(n_events):064x}" for _ in range(requests)],
            )
            await timed("supply", ["/api/v1/supply"] * requests)
            await timed(
                "page / (rendered each time)",
                ["/"] * min(requests, 50),
                before=lambda: app[PAGE_CACHE].clear(),
            )
            await timed("page / (cached)", ["/"] * requests)
    finally:
        await pool.close()
    return rows


async def main_async(args: argparse.Namespace) -> None:
    pg: BenchPostgres | None = None
    dsn = args.dsn
    if not dsn:
        pg = BenchPostgres(CACHE / "pg-api").start()
        dsn = pg.fresh_database("api_bench")
    try:
        last_block, _ = await load(dsn, args.events)
        rows = await measure(dsn, args.requests, last_block, args.events)
    finally:
        if pg is not None:
            pg.stop()
    print(f"\nAPI latency over HTTP, {args.events:,} events, sequential requests\n")
    print(f"{'query':<44} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, n, p50, p99, mean in rows:
        print(f"{name:<44} {n:>5} {p50:>8.2f} {p99:>8.2f} {mean:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_200_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--dsn", default=None, help="Use this (empty) database instead of the embedded server.")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
