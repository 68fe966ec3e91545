"""The daemon records depeg episodes from its real market poller: an order-book venue served by a
local exchange stand-in goes off peg, the episode appears in /api/v1/depegs; the daemon restarts
while it is still off and continues the same episode; the book recovers and the episode closes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from indexer.config import Config
from indexer.daemon import run_daemon, serve_http
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.token import TestToken
from tests.integration.test_evm_pipeline import make_config

pytestmark = pytest.mark.integration


class Book:
    """A Binance depth endpoint quoting USD1 at `mid` (USDT, quoted at $1)."""

    def __init__(self) -> None:
        self.mid = "1.0000"

    async def handle(self, request: web.Request) -> web.Response:
        bid, ask = f"{float(self.mid) - 0.0001:.4f}", f"{float(self.mid) + 0.0001:.4f}"
        return web.json_response({"lastUpdateId": 1, "bids": [[bid, "50000"]], "asks": [[ask, "50000"]]})


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[Book, str]]:
    book = Book()
    app = web.Application()
    app.router.add_get("/api/v3/depth", book.handle)
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield book, f"http://127.0.0.1:{port}/api/v3/depth?symbol=USD1USDT&limit=100"


async def _episodes(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with http.get(f"{base}/api/v1/depegs", params={"scope": "venue"}) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return list(body["episodes"])


async def _until(cond: Any, limit: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        got = await cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


async def test_daemon_records_and_continues_an_episode(
    anvil: Anvil, token: TestToken, exchange: tuple[Book, str], dsn: str, tmp_path: Path
) -> None:
    book, url = exchange
    port = free_port()
    base = make_config(anvil.url, token.address, dsn, tmp_path).model_dump(mode="json")
    cfg = Config.model_validate(
        {
            **base,
            "http": {"listen": f"127.0.0.1:{port}"},
            "venues": [
                {
                    "name": "binance-usd1",
                    "kind": "orderbook",
                    "exchange": "binance",
                    "url": url,
                    "interval": "50ms",
                }
            ],
        }
    )
    api = f"http://127.0.0.1:{port}"

    async def life(step: Any) -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(run_daemon(cfg, stop, on_ready=lambda _rt, _p: ready.set()))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            async with aiohttp.ClientSession() as http:
                await step(http)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    book.mid = "0.9940"  # 60 bps below the peg

    async def first(http: aiohttp.ClientSession) -> None:
        async def opened() -> Any:
            return [e for e in await _episodes(http, api) if e["open"]]

        [ep] = await _until(opened, 20, "an open episode")
        assert ep["venue"] == "binance-usd1" and -61 < float(ep["peak_bps"]) < -59
        # The page shows the market service's latest reading of the venue (the daemon wires it in).
        async with http.get(api + "/") as r:
            html = await r.text()
        row = re.search(r'<tr data-venue="binance-usd1" data-kind="orderbook">(.*?)</tr>', html, re.S)
        assert row is not None, "no venue row on the page"
        bps = re.search(r'class="deviation" data-bps="([-0-9.]+)"', row.group(1))
        assert bps is not None and -61 < float(bps.group(1)) < -59
        assert '<td class="status">up</td>' in row.group(1)

    await life(first)
    book.mid = "0.9900"  # deeper while the daemon is down and after it restarts

    async def second(http: aiohttp.ClientSession) -> None:
        async def deeper() -> Any:
            eps = await _episodes(http, api)
            return eps if float(eps[0]["peak_bps"]) < -99 else None

        eps = await _until(deeper, 20, "the peak to follow the deeper price")
        assert len(eps) == 1 and eps[0]["open"], eps  # the same episode, continued
        book.mid = "1.0000"

        async def closed() -> Any:
            eps = await _episodes(http, api)
            return eps if not eps[0]["open"] else None

        eps = await _until(closed, 20, "recovery to close the episode")
        assert len(eps) == 1 and float(eps[0]["duration_seconds"]) > 0

    await life(second)
