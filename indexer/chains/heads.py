"""Optional websocket `newHeads` subscription: wake the follower when a block arrives instead of
sleeping a full `poll_interval`.

`HeadWatcher.wait(seconds)` returns True as soon as a new head was announced since the previous
call (or arrives within `timeout`), False on timeout. The socket only *wakes* the follower: heads
are read over HTTP as always, so a dropped, lagging or lying socket can delay polling by at most
`seconds`, never change data. While the socket is down the watcher reconnects with backoff +
jitter and `wait` degrades to a plain sleep (polling). Log: one warning when the socket drops,
one info when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import orjson
import structlog
import websockets

log = structlog.get_logger(__name__)


class HeadWatcher:
    def __init__(
        self,
        chain: str,
        url: str,
        *,
        open_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        idle_timeout: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        self.chain = chain
        self.url = url
        self.open_timeout = open_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.idle_timeout = idle_timeout  # no message for this long: reconnect
        self.rng = rng or random.Random()
        self.connected = False
        self.heads = 0  # notifications received
        self.latest: int | None = None
        self.reconnects = 0
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> HeadWatcher:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"heads-{self.chain}")
        return self

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def wait(self, seconds: float) -> bool:
        """True when a new head arrived since the last call or within `seconds`."""
        if self._event.is_set():
            self._event.clear()
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            try:
                await self._session()
                failures = 0  # the server closed a healthy session: reconnect at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any socket/protocol failure means "reconnect"
                failures += 1
                if self.connected or failures == 1:
                    log.warning("ws_heads_down", chain=self.chain, error=f"{type(exc).__name__}: {exc}"[:300])
                self.connected = False
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(failures, 10))
                await asyncio.sleep(delay * (0.5 + self.rng.random()))
            self.reconnects += 1

    async def _session(self) -> None:
        async with websockets.connect(
            self.url, open_timeout=self.open_timeout, max_size=2**20, ping_interval=20, ping_timeout=20
        ) as ws:
            await ws.send(
                orjson.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
                ).decode()
            )
            async with asyncio.timeout(self.open_timeout):
                reply = _loads(await ws.recv())
            if not isinstance(reply, dict) or not isinstance(reply.get("result"), str):
                raise ConnectionError(f"eth_subscribe(newHeads) refused: {str(reply)[:200]}")
            sub = reply["result"]
            if not self.connected:
                log.info("ws_heads_up", chain=self.chain, url_host=self.url.split("//")[-1].split("/")[0])
            self.connected = True
            self._event.set()  # (re)connected: we may have missed heads, look now
            while True:
                async with asyncio.timeout(self.idle_timeout):
                    msg = _loads(await ws.recv())
                if not isinstance(msg, dict) or msg.get("method") != "eth_subscription":
                    continue
                params = msg.get("params")
                if not isinstance(params, dict) or params.get("subscription") != sub:
                    continue
                result = params.get("result")
                number = result.get("number") if isinstance(result, dict) else None
                if isinstance(number, str):
                    with contextlib.suppress(ValueError):
                        self.latest = int(number, 16)
                self.heads += 1
                self._event.set()


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
