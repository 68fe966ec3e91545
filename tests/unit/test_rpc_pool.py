"""RpcPool against scripted in-process HTTP endpoints: failover, health scores and recovery,
429 / Retry-After windows, timeouts, malformed replies, contradictions, per-endpoint metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from indexer.chains.rpc import RpcPool, _retry_after, _unpack, endpoint_label
from indexer.errors import MalformedReply, RpcError
from indexer.metrics import Metrics

Behaviour = Callable[[Any], web.StreamResponse | None]


@dataclass
class Scripted:
    """An endpoint answering eth_blockNumber with `number`, unless `mode` says otherwise."""

    number: int = 1
    mode: str = "ok"  # ok | 503 | 429 | slow | garbage | truncate | rpc_error | range
    retry_after: str = "1"
    delay: float = 0.0
    hits: int = 0
    runner: web.AppRunner | None = None
    url: str = ""
    seen: list[Any] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = orjson.loads(await request.read())
        self.seen.append(body)
        items = body if isinstance(body, list) else [body]
        if self.mode == "503":
            return web.Response(status=503, text="down")
        if self.mode == "429":
            return web.Response(status=429, text="slow down", headers={"Retry-After": self.retry_after})
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "garbage":
            return web.Response(status=200, body=b"<html>bad gateway</html>")
        replies: list[dict[str, Any]] = []
        for it in items:
            if self.mode == "rpc_error":
                replies.append(
                    {"jsonrpc": "2.0", "id": it["id"], "error": {"code": -32000, "message": "boom"}}
                )
            elif self.mode == "invalid_params":
                replies.append(
                    {
                        "jsonrpc": "2.0",
                        "id": it["id"],
                        "error": {"code": -32602, "message": "Invalid param: not a Token mint"},
                    }
                )
            elif self.mode == "range":
                replies.append(
                    {
                        "jsonrpc": "2.0",
                        "id": it["id"],
                        "error": {"code": -32005, "message": "range too large"},
                    }
                )
            else:
                replies.append({"jsonrpc": "2.0", "id": it["id"], "result": hex(self.number)})
        out = orjson.dumps(replies if isinstance(body, list) else replies[0])
        if self.mode == "truncate":
            out = out[: len(out) // 2]
        return web.Response(status=200, body=out, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[Scripted, Scripted]]:
    a, b = Scripted(number=1), Scripted(number=2)
    await a.start()
    await b.start()
    yield a, b
    for s in (a, b):
        assert s.runner is not None
        await s.runner.cleanup()


def _count(m: Metrics, ep: str, outcome: str) -> float:
    v = m.registry.get_sample_value(
        "usd1_rpc_requests_total", {"chain": "t", "endpoint": ep, "outcome": outcome}
    )
    return v or 0.0


async def _pool(session: aiohttp.ClientSession, *urls: str, timeout: float = 2.0) -> tuple[RpcPool, Metrics]:
    m = Metrics()
    return RpcPool("t", list(urls), session, m, timeout=timeout, backoff_base=0.01, backoff_max=0.05), m


async def test_primary_is_used_while_healthy(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url)
        for _ in range(5):
            assert await pool.call("eth_blockNumber", []) == "0x1"
        assert b.hits == 0
        assert _count(m, pool.endpoints[0].label, "ok") == 5


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [("503", "error"), ("garbage", "malformed"), ("truncate", "malformed"), ("rpc_error", "error")],
)
async def test_failover_on_fault_and_recovery(
    endpoints: tuple[Scripted, Scripted], mode: str, outcome: str
) -> None:
    a, b = endpoints
    a.mode = mode
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url)
        la, lb = pool.labels()
        for _ in range(6):
            assert await pool.call("eth_blockNumber", []) == "0x2"  # served by b every time
        assert _count(m, la, outcome) >= 1
        assert _count(m, lb, "ok") == 6
        assert m.registry.get_sample_value("usd1_rpc_endpoint_up", {"chain": "t", "endpoint": la}) == 0
        # a is penalized: later calls do not even try it while it cools down.
        hits = a.hits
        await pool.call("eth_blockNumber", [])
        assert a.hits == hits
        # a recovers: once its cooldown passes and its error rate decays it wins traffic back.
        a.mode = "ok"
        ea = pool.endpoint(la)
        ea.cooldown_until = 0.0
        ea.error_at -= 600  # ten minutes later: the error rate has decayed
        assert await pool.call("eth_blockNumber", []) == "0x1"
        assert ea.healthy and ea.failures == 0
        assert m.registry.get_sample_value("usd1_rpc_endpoint_up", {"chain": "t", "endpoint": la}) == 1


async def test_429_retry_after_is_honoured_per_endpoint(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    a.mode, a.retry_after = "429", "2"
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url)
        la, _ = pool.labels()
        assert await pool.call("eth_blockNumber", []) == "0x2"
        ep = pool.endpoint(la)
        assert 1.5 < ep.limited_until - time.monotonic() <= 2.0
        assert _count(m, la, "rate_limited") == 1
        for _ in range(5):
            await pool.call("eth_blockNumber", [])
        assert a.hits == 1, "a rate-limited endpoint got requests inside its Retry-After window"


async def test_all_rate_limited_waits_for_retry_after(endpoints: tuple[Scripted, Scripted]) -> None:
    a, _ = endpoints
    a.mode, a.retry_after = "429", "1"
    async with aiohttp.ClientSession() as s:
        pool, _m = await _pool(s, a.url)
        t0 = time.monotonic()

        async def heal() -> None:
            await asyncio.sleep(0.3)
            a.mode = "ok"

        healer = asyncio.create_task(heal())
        assert await pool.call("eth_blockNumber", []) == "0x1"
        await healer
        assert time.monotonic() - t0 >= 0.9  # waited out Retry-After, did not hammer
        assert a.hits == 2


async def test_timeout_is_enforced_and_fails_over(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    a.mode, a.delay = "slow", 5.0
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url, timeout=0.3)
        la, _ = pool.labels()
        t0 = time.monotonic()
        assert await pool.call("eth_blockNumber", []) == "0x2"
        assert time.monotonic() - t0 < 1.5
        assert _count(m, la, "timeout") == 1


async def test_single_endpoint_timeout_raises_bounded(endpoints: tuple[Scripted, Scripted]) -> None:
    a, _ = endpoints
    a.mode, a.delay = "slow", 5.0
    async with aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("t", [a.url], s, m, timeout=0.2, attempts=2, backoff_base=0.01, backoff_max=0.02)
        t0 = time.monotonic()
        with pytest.raises(RpcError, match="timed out"):
            await pool.call("eth_blockNumber", [])
        # two timeouts plus at most the (jittered) cooldown after the first
        assert time.monotonic() - t0 < 0.2 * 2 + 0.6 + 0.5


async def test_slow_endpoint_loses_to_fast_one(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    a.mode, a.delay = "slow", 0.15
    async with aiohttp.ClientSession() as s:
        pool, _m = await _pool(s, a.url, b.url)
        await pool.call("eth_blockNumber", [])  # measured: a is slow
        for _ in range(5):
            assert await pool.call("eth_blockNumber", []) == "0x2"


async def test_range_error_is_not_retried_and_not_a_fault(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    a.mode = "range"
    async with aiohttp.ClientSession() as s:
        pool, _m = await _pool(s, a.url, b.url)
        with pytest.raises(RpcError) as info:
            await pool.call("eth_getLogs", [{}])
        assert info.value.range_too_large
        assert a.hits == 1 and b.hits == 0
        assert pool.endpoints[0].healthy


async def test_invalid_params_is_retried_elsewhere_but_not_a_fault(
    endpoints: tuple[Scripted, Scripted],
) -> None:
    """-32602 (e.g. a Solana mint not yet at the asked commitment) is an answer: the endpoint
    stays healthy and keeps its traffic; the call still tries the other endpoint first."""
    a, b = endpoints
    a.mode = b.mode = "invalid_params"
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url)
        la, lb = pool.labels()
        for _ in range(4):
            with pytest.raises(RpcError, match="not a Token mint"):
                await pool.call("getTokenSupply", ["mint"])
        assert a.hits >= 4 and b.hits >= 1
        assert all(ep.healthy and ep.failures == 0 for ep in pool.endpoints)
        assert _count(m, la, "error") == _count(m, lb, "error") == 0
        a.mode = "ok"
        assert await pool.call("eth_blockNumber", []) == "0x1"


async def test_unhealthy_warning_names_the_error(
    endpoints: tuple[Scripted, Scripted], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = endpoints
    a.mode = "rpc_error"
    async with aiohttp.ClientSession() as s:
        pool, _m = await _pool(s, a.url, b.url)
        la = pool.labels()[0]
        for _ in range(3):  # tried first each time (its cooldown skipped), failing over to b
            pool.endpoint(la).cooldown_until = 0.0
            reply = await pool.call_ex("eth_getBlockByNumber", ["latest", False], prefer=la)
            assert reply.result == "0x2"
        assert not pool.endpoint(la).healthy
    err = capsys.readouterr()
    out = err.out + err.err
    line = next(ln for ln in out.splitlines() if "rpc_endpoint_unhealthy" in ln)
    assert "eth_getBlockByNumber" in line and "-32000" in line and "boom" in line


async def test_contradiction_penalizes_and_moves_traffic(endpoints: tuple[Scripted, Scripted]) -> None:
    a, b = endpoints
    async with aiohttp.ClientSession() as s:
        pool, m = await _pool(s, a.url, b.url)
        la, lb = pool.labels()
        r = await pool.call_ex("eth_blockNumber", [])
        assert r.endpoint == la
        pool.penalize(la, "hash differs from the majority")
        assert _count(m, la, "contradiction") == 1
        r = await pool.call_ex("eth_blockNumber", [])
        assert r.endpoint == lb
        # pinned and avoided calls
        assert (await pool.call_ex("eth_blockNumber", [], only=la)).endpoint == la
        assert (await pool.call_ex("eth_blockNumber", [], avoid={la})).endpoint == lb


async def test_batch_in_order(endpoints: tuple[Scripted, Scripted]) -> None:
    a, _ = endpoints
    async with aiohttp.ClientSession() as s:
        pool, _m = await _pool(s, a.url)
        assert await pool.batch([("eth_blockNumber", [])] * 3) == ["0x1"] * 3
        assert await pool.batch([]) == []


def test_unpack_shapes() -> None:
    assert _unpack("x", {"id": 1, "result": 5}, [1], True) == [5]
    assert _unpack("x", [{"id": 2, "result": "b"}, {"id": 1, "result": "a"}], [1, 2], False) == ["a", "b"]
    with pytest.raises(MalformedReply):
        _unpack("x", [{"id": [1], "result": 1}], [1], False)  # unhashable id
    with pytest.raises(MalformedReply):
        _unpack("x", {"id": 1}, [1], True)
    with pytest.raises(MalformedReply):
        _unpack("x", "nope", [1], True)
    with pytest.raises(RpcError) as info:
        _unpack("x", {"id": None, "error": {"code": -32005, "message": "x"}}, [1], True)
    assert info.value.range_too_large
    with pytest.raises(RpcError) as info:
        _unpack("x", {"id": 1, "error": {"code": True, "message": "x"}}, [1], True)
    assert info.value.code is None


def test_retry_after_and_labels() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(None) == 1.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
    assert _retry_after("nan") == 1.0
    assert _retry_after("1e9") == 60.0
    assert _retry_after("-5") == 0.0
    assert endpoint_label("https://user:key@host.example:8545/v3/SECRET") == "host.example:8545"
    assert endpoint_label("http://[::1:99999") == "unknown"
