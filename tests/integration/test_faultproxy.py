"""Every fault mode of the JSON-RPC fault proxy, observed through it with a real anvil upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.token import TestToken

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxy(anvil: Anvil) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(anvil.url, seed=7)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def call(method: str, params: list[Any] | None = None, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []}


def logs_call(lo: int | str, hi: int | str, id_: Any = 1) -> dict[str, Any]:
    f = lambda b: hex(b) if isinstance(b, int) else b  # noqa: E731
    return call("eth_getLogs", [{"fromBlock": f(lo), "toBlock": f(hi)}], id_)


async def post(
    http: aiohttp.ClientSession, url: str, payload: Any, max_wait: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(
        url, data=orjson.dumps(payload), timeout=aiohttp.ClientTimeout(total=max_wait)
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_passthrough_single_and_batch(
    anvil: Anvil, proxy: FaultProxy, http: aiohttp.ClientSession
) -> None:
    await anvil.mine(3)
    status, _, body = await post(http, proxy.url, call("eth_blockNumber", id_="abc"))
    assert status == 200
    assert orjson.loads(body) == {"jsonrpc": "2.0", "id": "abc", "result": "0x3"}
    batch = [call("eth_chainId", id_=5), call("eth_blockNumber", id_=9), call("eth_chainId", id_=1)]
    status, _, body = await post(http, proxy.url, batch)
    replies = orjson.loads(body)
    assert [r["id"] for r in replies] == [5, 9, 1]
    assert [r["result"] for r in replies] == ["0x7a69", "0x3", "0x7a69"]
    assert proxy.calls == {"eth_blockNumber": 2, "eth_chainId": 2}
    assert proxy.forwarded == proxy.calls
    assert proxy.http_requests == 2


async def test_max_logs_range(anvil: Anvil, proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    await anvil.mine(20)
    proxy.max_logs_range = 5
    _, _, body = await post(http, proxy.url, logs_call(0, 9))
    assert orjson.loads(body)["error"] == {"code": -32005, "message": "query exceeds max block range 5"}
    _, _, body = await post(http, proxy.url, logs_call(3, 7))
    assert orjson.loads(body)["result"] == []
    _, _, body = await post(http, proxy.url, logs_call("earliest", "latest"))  # tags resolved upstream
    assert orjson.loads(body)["error"]["code"] == -32005
    _, _, body = await post(http, proxy.url, logs_call(16, "latest"))  # 16..20
    assert "result" in orjson.loads(body)
    # In a batch, only the over-range call fails; order and ids are kept.
    _, _, body = await post(http, proxy.url, [logs_call(0, 100, id_=1), logs_call(1, 2, id_=2)])
    replies = orjson.loads(body)
    assert replies[0]["id"] == 1 and replies[0]["error"]["code"] == -32005
    assert replies[1] == {"jsonrpc": "2.0", "id": 2, "result": []}
    assert proxy.faults["max_logs_range"] == 3
    assert proxy.method_faults[("eth_getLogs", "max_logs_range")] == 3
    assert proxy.forwarded["eth_getLogs"] == 3


async def test_max_logs_results(token: TestToken, proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    await token.batch_mint(["0x" + f"{i:040x}" for i in range(1, 6)], [1, 2, 3, 4, 5])
    flt = {"fromBlock": "0x0", "toBlock": "latest", "address": token.address}
    proxy.max_logs_results = 8  # 5 Mint + 5 Transfer logs
    _, _, body = await post(http, proxy.url, call("eth_getLogs", [flt]))
    assert orjson.loads(body)["error"] == {"code": -32005, "message": "query returned more than 8 results"}
    proxy.max_logs_results = 10
    _, _, body = await post(http, proxy.url, call("eth_getLogs", [flt]))
    assert len(orjson.loads(body)["result"]) == 10


async def test_down_modes_and_refuse(proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    proxy.down = True
    status, _, _ = await post(http, proxy.url, call("eth_blockNumber"))
    assert status == 503
    proxy.down_mode = "close"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, proxy.url, call("eth_blockNumber"))
    assert proxy.faults["down"] == 2
    proxy.down = False
    await proxy.refuse()
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(http, proxy.url, call("eth_blockNumber"))
    await proxy.accept()
    status, _, body = await post(http, proxy.url, call("eth_blockNumber"))
    assert status == 200 and orjson.loads(body)["result"] == "0x0"
    assert proxy.forwarded["eth_blockNumber"] == 1


async def test_delay_causes_client_timeout(proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    proxy.delay = 0.6
    with pytest.raises(TimeoutError):
        await post(http, proxy.url, call("eth_blockNumber"), max_wait=0.2)
    proxy.fault_methods = frozenset({"eth_getLogs"})  # delay only that method now
    status, _, _ = await post(http, proxy.url, call("eth_blockNumber"), max_wait=0.4)
    assert status == 200
    assert proxy.faults["delay"] == 1


async def test_rate_limit_429_with_retry_after(proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    proxy.rate_limit = 3.0  # 3 requests per second, burst 3
    proxy.retry_after = 2.0
    statuses = []
    for _ in range(8):
        status, headers, body = await post(http, proxy.url, call("eth_chainId", id_=4))
        statuses.append(status)
        if status == 429:
            assert headers["Retry-After"] == "2"
            assert orjson.loads(body)["error"]["code"] == 429
    assert statuses[:3] == [200, 200, 200]
    assert statuses.count(429) >= 4
    assert proxy.faults["rate_limit"] == statuses.count(429)
    proxy.rate_limit = 0  # every request
    status, _, _ = await post(http, proxy.url, call("eth_chainId"))
    assert status == 429
    proxy.heal()
    status, _, _ = await post(http, proxy.url, call("eth_chainId"))
    assert status == 200


async def test_error_rate_is_seeded_and_method_scoped(proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    async def run() -> list[bool]:
        out = []
        for i in range(100):
            _, _, body = await post(http, proxy.url, call("eth_chainId", id_=i))
            reply = orjson.loads(body)
            assert reply["id"] == i
            if "error" in reply:
                assert reply["error"]["code"] == -32000
            out.append("error" in reply)
        return out

    proxy.error_rate = 0.4
    proxy.seed(99)
    first = await run()
    proxy.seed(99)
    second = await run()
    assert first == second
    assert 20 <= sum(first) <= 60
    assert proxy.faults["error_rate"] == 2 * sum(first)
    assert proxy.forwarded["eth_chainId"] == 200 - 2 * sum(first)
    # Scoped to eth_getLogs: other methods pass, getLogs calls all fail at rate 1.
    proxy.error_rate = 1.0
    proxy.fault_methods = frozenset({"eth_getLogs"})
    _, _, body = await post(http, proxy.url, [call("eth_chainId", id_=1), logs_call(0, 0, id_=2)])
    a, b = orjson.loads(body)
    assert a["result"] == "0x7a69" and b["error"]["code"] == -32000


async def test_truncate_and_garbage_bodies(proxy: FaultProxy, http: aiohttp.ClientSession) -> None:
    _, _, full = await post(http, proxy.url, call("eth_getBlockByNumber", ["0x0", False]))
    proxy.truncate = True
    status, _, cut = await post(http, proxy.url, call("eth_getBlockByNumber", ["0x0", False]))
    assert status == 200
    assert cut == full[: len(full) // 2]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut)
    proxy.truncate = False
    proxy.garbage = True
    status, headers, body = await post(http, proxy.url, call("eth_blockNumber"))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    assert proxy.faults == {"truncate": 1, "garbage": 1}
