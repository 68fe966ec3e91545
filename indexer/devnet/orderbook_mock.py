"""A devnet order-book venue: an HTTP server answering Binance's depth snapshot
(`GET /api/v3/depth`, the format `indexer.market.orderbook.parse_binance` reads) for a USD1 book
around $1, with one admin method so a drill can take the venue down and bring it back:

    POST /devnet/outage   {"down": true | false}   -> {"down": ...}
    GET  /devnet/status                              -> {"down": ..., "requests": N}

While down, the depth route answers 503 (what an exchange outage looks like to the poller), so
`usd1_venue_up` drops and USD1VenueStale follows. Bound to 127.0.0.1 only: the admin method has no
authentication. `make demo` runs it on port 8590 (config/devnet.yaml's `devnet-book` venue).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

DEVNET_BOOK_PORT = 8590
LEVELS = 25
TOP = Decimal("0.0001")  # the best bid and ask, from the mid
STEP = Decimal("0.0005")  # between the levels: 25 levels reach 1.21%, past the widest default band (1%)
LEVEL_QTY = Decimal(50_000)


def depth_snapshot(mid: Decimal, levels: int = LEVELS, qty: Decimal = LEVEL_QTY) -> dict[str, Any]:
    """PURE: a Binance depth snapshot with `levels` levels on each side of `mid`, the best one a
    tick away and the others `STEP` apart."""
    offsets = [TOP + STEP * i for i in range(levels)]
    bids = [[str(mid - d), str(qty)] for d in offsets]
    asks = [[str(mid + d), str(qty)] for d in offsets]
    return {"lastUpdateId": 1, "bids": bids, "asks": asks}


@dataclass
class DevnetBook:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    mid: Decimal = Decimal(1)
    down: bool = False
    requests: int = 0
    _runner: web.AppRunner | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(
                f"the devnet book binds to loopback only (its admin method is open), not {self.host!r}"
            )

    @property
    def url(self) -> str:
        """The depth route, as a venue's `url` names it."""
        return f"http://{self.host}:{self.port}/api/v3/depth?symbol=USD1USDT&limit=100"

    async def start(self) -> DevnetBook:
        app = web.Application()
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_post("/devnet/outage", self._outage)
        app.router.add_get("/devnet/status", self._status)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DevnetBook:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _depth(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="503 Service Unavailable (devnet outage drill)")
        return web.Response(body=orjson.dumps(depth_snapshot(self.mid)), content_type="application/json")

    async def _outage(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error('the body is not JSON: send {"down": true|false}')
        if not isinstance(body, dict) or not isinstance(body.get("down"), bool):
            return _error('expected {"down": true|false}')
        self.down = body["down"]
        return web.Response(body=orjson.dumps({"down": self.down}), content_type="application/json")

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"down": self.down, "requests": self.requests}), content_type="application/json"
        )


def _error(message: str) -> web.Response:
    return web.Response(status=400, body=orjson.dumps({"error": message}), content_type="application/json")


async def run_devnet_book(stop: asyncio.Event, port: int = DEVNET_BOOK_PORT) -> None:
    """Serve the devnet book until `stop` (the `devnet` command's part)."""
    async with DevnetBook(port=port):
        await stop.wait()
