"""MarketService against a local aiohttp server that serves each exchange's recorded depth format:
healthy books export price/deviation/depth; HTTP 500, timeouts, crossed, empty and malformed
books turn only that venue stale (venue_up 0, series removed, last success kept), logged once
on failure and once on recovery; quote_venue conversion follows the other venue's price."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from indexer.config import Config
from indexer.market.service import MarketService
from indexer.metrics import Metrics
from tests.unit.test_orderbook_parsers import PAYLOADS

pytestmark = pytest.mark.integration

PATHS = {
    "binance": "/api/v3/depth?symbol=USD1USDT&limit=100",
    "coinbase": "/products/USD1-USD/book?level=2",
    "kraken": "/0/public/Depth?pair=USD1USD",
    "okx": "/api/v5/market/books?instId=USD1-USDT&sz=100",
    "bybit": "/v5/market/orderbook?category=spot&symbol=USD1USDT",
}


class RecLog:
    """Structured-log recorder passed to the service (dependency injection, no global config)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _rec(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._rec("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._rec("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._rec("warning", event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._rec("error", event, **kw)

    def count(self, event: str, venue: str) -> int:
        return sum(1 for _, e, kw in self.events if e == event and kw.get("venue") == venue)


class Exchanges:
    def __init__(self) -> None:
        self.mode = dict.fromkeys(PATHS, "ok")

    def payload(self, exchange: str) -> Any:
        p = copy.deepcopy(PAYLOADS[exchange])
        mode = self.mode[exchange]
        if mode == "crossed":
            p["bids"].insert(0, ["1.01", "5", 1])
        elif mode == "empty":
            p["result"]["a"], p["result"]["b"] = [], []
        elif mode == "missing":
            del p["result"]["USD1USD"]["asks"]
        return p

    def app(self) -> web.Application:
        app = web.Application()

        def handler(exchange: str) -> Any:
            async def handle(request: web.Request) -> web.StreamResponse:
                mode = self.mode[exchange]
                if mode == "500":
                    return web.Response(status=500, text="internal error")
                if mode == "slow":
                    await asyncio.sleep(3)
                return web.json_response(self.payload(exchange))

            return handle

        for exchange, path in PATHS.items():
            app.router.add_get(path.split("?")[0], handler(exchange))
        return app


async def _wait(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_orderbook_venues_lifecycle() -> None:
    ex = Exchanges()
    runner = web.AppRunner(ex.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    venues: list[dict[str, Any]] = [
        {
            "name": f"{x}-usd1",
            "kind": "orderbook",
            "exchange": x,
            "url": base + PATHS[x],
            "interval": "50ms",
            "timeout": "300ms",
        }
        for x in PATHS
        if x != "okx"
    ]
    # okx quotes USD1 in USDT; the kraken venue's price stands in for the quote asset's USD price
    venues.append(
        {
            "name": "okx-usd1",
            "kind": "orderbook",
            "exchange": "okx",
            "url": base + PATHS["okx"],
            "interval": "50ms",
            "timeout": "300ms",
            "quote_venue": "kraken-usd1",
        }
    )
    venues[0]["quote_usd"] = 1.0
    cfg = Config.model_validate(
        {
            "chains": [
                {"name": "dev", "kind": "evm", "rpc": ["http://127.0.0.1:9"], "token": "0x" + "11" * 20}
            ],
            "token": {"peg_usd": 1.0},
            "market": {"bands_bps": [10, 50, 100]},
            "venues": venues,
        }
    )
    metrics, log = Metrics(), RecLog()
    reg = metrics.registry

    def g(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        svc = MarketService(cfg, metrics, session, {}, logger=log)
        task = asyncio.create_task(svc.run(stop))
        try:
            await _wait(lambda: all(s.up for s in svc.snapshot().values()))
            # mid (0.9998 + 0.9999) / 2; depth at peg: bids >= 0.999 and asks <= 1.001
            for x in ("binance", "coinbase", "kraken", "bybit"):
                v = f"{x}-usd1"
                assert g("usd1_price_usd", venue=v) == pytest.approx(0.99985)
                assert g("usd1_peg_deviation_bps", venue=v) == pytest.approx(-1.5)
                assert g("usd1_depth_usd", venue=v, side="bid", band="10bps") == 1931
                assert g("usd1_depth_usd", venue=v, side="ask", band="10bps") == 812
                assert g("usd1_depth_usd", venue=v, side="bid", band="100bps") == 1940
                assert g("usd1_venue_up", venue=v) == 1
                # The recorded books end inside the 50 and 100 bps bands (asks up to 1.0005): a
                # lower bound, flagged once with the exchange's hint.
                assert g("usd1_depth_complete", venue=v) == 0
                truncated = [
                    kw for _, e, kw in log.events if e == "venue_depth_truncated" and kw["venue"] == v
                ]
                assert len(truncated) == 1 and "more levels" in truncated[0]["hint"]
            assert g("usd1_price_usd", venue="okx-usd1") == pytest.approx(0.99985 * 0.99985)
            assert svc.snapshot()["binance-usd1"].depth_usd["ask"]["50bps"] == 812

            ok_since = {v: s.last_success for v, s in svc.snapshot().items()}
            ex.mode.update(binance="500", coinbase="slow", kraken="missing", bybit="empty")
            await _wait(lambda: not any(s.up for s in svc.snapshot().values()), timeout=8)
            await asyncio.sleep(0.5)  # several more failing polls
            snap = svc.snapshot()
            assert snap["binance-usd1"].last_error == "http: binance: HTTP 500: internal error"
            assert (
                snap["coinbase-usd1"].last_error is not None and "timeout" in snap["coinbase-usd1"].last_error
            )
            assert "missing field 'asks'" in (snap["kraken-usd1"].last_error or "")
            assert "empty" in (snap["bybit-usd1"].last_error or "")
            assert "quote venue 'kraken-usd1'" in (snap["okx-usd1"].last_error or "")
            for v, s in snap.items():
                assert g("usd1_venue_up", venue=v) == 0
                assert g("usd1_price_usd", venue=v) is None
                assert g("usd1_depth_usd", venue=v, side="bid", band="10bps") is None
                assert g("usd1_depth_complete", venue=v) is None
                assert s.last_success is not None and s.last_success >= (ok_since[v] or 0)
                assert g("usd1_venue_last_success_timestamp_seconds", venue=v) == s.last_success
                assert s.price_usd is not None  # last known values stay in the snapshot
                assert log.count("venue_down", v) == 1

            ex.mode.update(binance="crossed", coinbase="ok", kraken="ok", bybit="ok")
            await _wait(lambda: svc.snapshot()["okx-usd1"].up and svc.snapshot()["coinbase-usd1"].up)
            await _wait(lambda: "crossed" in (svc.snapshot()["binance-usd1"].last_error or ""))
            assert not svc.snapshot()["binance-usd1"].up
            ex.mode["binance"] = "ok"
            await _wait(lambda: svc.snapshot()["binance-usd1"].up)
            for v in snap:
                assert log.count("venue_recovered", v) == 1
                assert log.count("venue_down", v) == 1
            assert not [e for e in log.events if e[0] == "error"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await runner.cleanup()
