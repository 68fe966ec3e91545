"""A JSON-RPC proxy that injects provider faults, for tests and fault suites.

Put it in front of a real upstream (anvil) and flip faults at runtime from Python:

    async with FaultProxy(anvil.url) as proxy:
        proxy.max_logs_range = 100        # eth_getLogs over >100 blocks -> -32005 error
        proxy.error_rate = 0.3            # 30 % of calls -> -32000 error (seeded)
        ...

Faults on the whole HTTP request (in this order): `down` (503, or the connection closed without
a reply), `rate_limit` (429 + Retry-After), `delay` (seconds before forwarding). Faults per JSON-RPC
call (batch arrays are split and re-assembled in order): `max_logs_range`, `error_rate`, then after
forwarding `max_logs_results` and `logs_hook` (a function that rewrites every eth_getLogs
result list: a log added, dropped or garbled, as a faulty provider would). Faults on the reply body: `truncate` (first half only), `garbage`
(a non-JSON body). `refuse()` / `accept()` stop and restart listening on the same port (connection
refused). `fault_methods` limits delay / error_rate / truncate / garbage / rate_limit to requests
that contain one of those methods (None = every method).

Counters: `calls[method]` (every call received), `forwarded[method]`, `faults[kind]`,
`method_faults[(method, kind)]`, `http_requests`.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Literal

import aiohttp
import orjson
import structlog
from aiohttp import web

JsonObj = dict[str, Any]

_GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>upstream hiccup</body></html>"
_BLOCK_TAGS = {"latest", "pending", "safe", "finalized"}


def rpc_error(id_: Any, code: int, message: str) -> JsonObj:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


class FaultProxy:
    """aiohttp JSON-RPC proxy in front of `upstream`, on `host:port` (port 0 = a free port)."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        self.upstream = upstream
        self.host = host
        self.port = port
        # Faults (plain attributes: set them at any time).
        self.max_logs_range: int | None = None
        self.max_logs_results: int | None = None
        self.down: bool = False
        self.down_mode: Literal["503", "close"] = "503"
        self.delay: float = 0.0
        self.rate_limit: float | None = None  # allowed requests per second; 0 = every request 429
        self.retry_after: float = 1.0
        self.error_rate: float = 0.0
        self.truncate: bool = False
        self.garbage: bool = False
        self.fault_methods: frozenset[str] | None = None
        self.logs_hook: Callable[[list[Any]], list[Any]] | None = None
        # Counters.
        self.calls: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.method_faults: Counter[tuple[str, str]] = Counter()
        self.http_requests = 0
        self._rng = random.Random(seed)
        self._bucket = 0.0
        self._bucket_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._log = structlog.get_logger("devnet.faultproxy")

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port == 0:
            raise RuntimeError("fault proxy is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/", self._handle)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self.accept()
        self._log.info("faultproxy_started", url=self.url, upstream=self.upstream)
        return self

    async def accept(self) -> None:
        """(Re)start listening on the same port."""
        if self._runner is None:
            raise RuntimeError("fault proxy is not started")
        if self._site is not None:
            return
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._site = site
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def refuse(self) -> None:
        """Stop listening: new connections are refused until `accept()`."""
        site, self._site = self._site, None
        if site is not None:
            await site.stop()

    async def stop(self) -> None:
        await self.refuse()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- control ---------------------------------------------------------------------------------

    def seed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def heal(self) -> None:
        """Clear every fault (counters kept)."""
        self.max_logs_range = None
        self.max_logs_results = None
        self.down = False
        self.delay = 0.0
        self.rate_limit = None
        self.error_rate = 0.0
        self.truncate = False
        self.garbage = False
        self.fault_methods = None
        self.logs_hook = None

    def reset_counters(self) -> None:
        self.calls.clear()
        self.forwarded.clear()
        self.faults.clear()
        self.method_faults.clear()
        self.http_requests = 0

    # -- request handling ------------------------------------------------------------------------

    def _targeted(self, methods: Iterable[str]) -> bool:
        return self.fault_methods is None or any(m in self.fault_methods for m in methods)

    def _count_fault(self, kind: str, methods: Iterable[str]) -> None:
        self.faults[kind] += 1
        for m in methods:
            self.method_faults[(m, kind)] += 1

    def _rate_limited(self) -> bool:
        if self.rate_limit is None:
            return False
        if self.rate_limit <= 0:
            return True
        now = asyncio.get_running_loop().time()
        burst = max(1.0, self.rate_limit)
        self._bucket = min(burst, self._bucket + (now - self._bucket_at) * self.rate_limit)
        self._bucket_at = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return False
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.http_requests += 1
        body = await request.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json_response(rpc_error(None, -32700, "parse error"))
        is_batch = isinstance(payload, list)
        items: list[Any] = payload if is_batch else [payload]
        methods = [str(it.get("method")) for it in items if isinstance(it, dict)]
        for m in methods:
            self.calls[m] += 1
        targeted = self._targeted(methods)

        if self.down:
            self._count_fault("down", methods)
            if self.down_mode == "close":
                if request.transport is not None:
                    request.transport.abort()  # the client sees the server disconnect, no reply
                return web.Response(status=503)
            return web.Response(status=503, text="503 Service Unavailable")
        if targeted and self._rate_limited():
            self._count_fault("rate_limit", methods)
            first_id = items[0].get("id") if items and isinstance(items[0], dict) else None
            return _json_response(
                rpc_error(first_id, 429, "Too Many Requests: rate limit exceeded"),
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(self.retry_after)))},
            )
        if targeted and self.delay > 0:
            self._count_fault("delay", methods)
            await asyncio.sleep(self.delay)

        try:
            replies = await self._process(items)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return web.Response(status=502, text=f"502 Bad Gateway: upstream {exc!r}")
        out = orjson.dumps(replies if is_batch else replies[0])
        if targeted and self.garbage:
            self._count_fault("garbage", methods)
            return web.Response(status=200, body=_GARBAGE, content_type="application/json")
        if targeted and self.truncate:
            self._count_fault("truncate", methods)
            out = out[: len(out) // 2]
        return web.Response(status=200, body=out, content_type="application/json")

    async def _process(self, items: list[Any]) -> list[JsonObj]:
        replies: list[JsonObj | None] = [None] * len(items)
        forward: list[tuple[int, JsonObj]] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("method"), str):
                replies[i] = rpc_error(None, -32600, "invalid request")
                continue
            method = item["method"]
            if method == "eth_getLogs" and self.max_logs_range is not None:
                span = await self._logs_span(item)
                if span is not None and span > self.max_logs_range:
                    self._count_fault("max_logs_range", [method])
                    replies[i] = rpc_error(
                        item.get("id"), -32005, f"query exceeds max block range {self.max_logs_range}"
                    )
                    continue
            if self.error_rate > 0 and self._targeted([method]) and self._rng.random() < self.error_rate:
                self._count_fault("error_rate", [method])
                replies[i] = rpc_error(item.get("id"), -32000, "internal error (injected fault)")
                continue
            forward.append((i, item))

        if forward:
            upstream_items = [{**item, "id": n} for n, (_, item) in enumerate(forward)]
            results = await self._upstream(upstream_items)
            by_id = {r.get("id"): r for r in results if isinstance(r, dict)}
            for n, (i, item) in enumerate(forward):
                method = item["method"]
                self.forwarded[method] += 1
                reply = by_id.get(n) or rpc_error(None, -32603, "upstream sent no reply for this call")
                reply = {**reply, "id": item.get("id")}
                result = reply.get("result")
                if (
                    method == "eth_getLogs"
                    and self.max_logs_results is not None
                    and isinstance(result, list)
                    and len(result) > self.max_logs_results
                ):
                    self._count_fault("max_logs_results", [method])
                    reply = rpc_error(
                        item.get("id"), -32005, f"query returned more than {self.max_logs_results} results"
                    )
                elif method == "eth_getLogs" and self.logs_hook is not None and isinstance(result, list):
                    changed = self.logs_hook(result)
                    if changed != result:
                        self._count_fault("logs_hook", [method])
                    reply = {**reply, "result": changed}
                replies[i] = reply
        return [r if r is not None else rpc_error(None, -32603, "no reply") for r in replies]

    async def _upstream(self, items: list[JsonObj]) -> list[Any]:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=orjson.dumps(items), headers={"Content-Type": "application/json"}
        ) as resp:
            raw = await resp.read()
        data = orjson.loads(raw)
        return data if isinstance(data, list) else [data]

    async def _logs_span(self, item: JsonObj) -> int | None:
        params = item.get("params")
        if not isinstance(params, list) or not params or not isinstance(params[0], dict):
            return None
        flt = params[0]
        if flt.get("blockHash") is not None:
            return None
        try:
            lo = await self._resolve(flt.get("fromBlock", "latest"))
            hi = await self._resolve(flt.get("toBlock", "latest"))
        except (ValueError, TypeError, KeyError):
            return None
        return hi - lo + 1

    async def _resolve(self, block: Any) -> int:
        if isinstance(block, int):
            return block
        if block == "earliest":
            return 0
        if block in _BLOCK_TAGS:
            (reply,) = await self._upstream(
                [{"jsonrpc": "2.0", "id": 0, "method": "eth_getBlockByNumber", "params": [block, False]}]
            )
            return int(reply["result"]["number"], 16)
        return int(str(block), 16)


def _json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers
    )


async def start_fault_proxy(upstream: str, *, seed: int = 0) -> FaultProxy:
    """Convenience: a started proxy on 127.0.0.1 and a free port (caller must `await p.stop()`)."""
    return await FaultProxy(upstream, seed=seed).start()
