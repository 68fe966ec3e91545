"""RpcPool classification of Tron's documented limit and rate-limit replies
(tests/fixtures/tron/jsonrpc_errors_and_limits.json, from realdata/tron; see FACTS.md there):
the block-range cap and the result cap shrink the range, the batch / filter-count uses of -32005
do not, and the HTTP-200 body outside the JSON-RPC envelope is a rate limit (backoff), not a
malformed reply."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from indexer.chains.rpc import RpcPool, _rate_limit_body, _unpack
from indexer.errors import MalformedReply, RpcError
from indexer.metrics import Metrics

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "tron" / "jsonrpc_errors_and_limits.json").read_text()
)


def _documented_message(method: str, trigger_starts: str) -> tuple[int, str]:
    """(code, message) of a documented error row, `<N>` filled with the documented default."""
    for row in FIXTURE["per_method_errors"][method]["errors"]:
        if row["Trigger"].startswith(trigger_starts):
            return int(row["Code"].strip("`")), row["message"].strip("`")
    raise AssertionError(f"no {method} row {trigger_starts!r} in the fixture")


CODE_RANGE, MSG_RANGE = _documented_message("eth_getLogs", "Range exceeds `maxBlockRange`")
RANGE_ERROR = {"code": CODE_RANGE, "message": MSG_RANGE.replace("<N>", "5000")}
# The -32005 result cap passes JsonRpcTooManyResultException's message through; its text is in
# java-tron's LogBlockQuery / LogMatch (FACTS.md "Limits and errors").
RESULTS_ERROR = {"code": -32005, "message": "query returned more than 10000 results"}
CODE_FILTERS, MSG_FILTERS = _documented_message("eth_newFilter", "Existing log filter count")
FILTERS_ERROR = {"code": CODE_FILTERS, "message": MSG_FILTERS.replace("<N>", "20000")}
BATCH_ERROR = {
    "code": -32005,
    "message": "Batch size 101 exceeds the limit of 100",
}  # catalog: starts with "Batch size "
# The rate-limit body: HTTP 200, `$.Error` contains the documented message; its exact text
# (Util.printErrorMsg of an IllegalAccessException) is derived from java-tron's code in FACTS.md.
RATE_MESSAGE = FIXTURE["rate_limiting_openrpc"]["message"]
RATE_BODY = orjson.dumps({"Error": f"class java.lang.IllegalAccessException : {RATE_MESSAGE}"})


def test_the_fixture_says_what_the_tests_assume() -> None:
    assert (CODE_RANGE, MSG_RANGE) == (-32602, "exceed max block range: <N>")
    assert (
        FIXTURE["rate_limiting_openrpc"]["httpStatus"] == 200
        and RATE_MESSAGE == "lack of computing resources"
    )
    (row,) = [r for r in FIXTURE["error_catalog"] if r["Catalog ID"] == "`JSON_RPC_RATE_LIMITED`"]
    assert row["Automatic retry"] == "Yes" and "no Retry-After" in row["Scope / action"]


@pytest.mark.parametrize(
    ("error", "too_large"),
    [(RANGE_ERROR, True), (RESULTS_ERROR, True), (FILTERS_ERROR, False), (BATCH_ERROR, False)],
)
def test_tron_error_replies_are_classified(error: dict[str, Any], too_large: bool) -> None:
    with pytest.raises(RpcError) as info:
        _unpack("tron", {"jsonrpc": "2.0", "id": 1, "error": error}, [1], True)
    assert info.value.range_too_large is too_large
    assert info.value.code == error["code"]


def test_rate_limit_body_is_recognised_and_nothing_looser() -> None:
    assert (
        _rate_limit_body(orjson.loads(RATE_BODY))
        == f"class java.lang.IllegalAccessException : {RATE_MESSAGE}"
    )
    assert _rate_limit_body({"Error": "class java.lang.NullPointerException : boom"}) is None
    assert _rate_limit_body({"jsonrpc": "2.0", "id": 1, "result": {"Error": RATE_MESSAGE}}) is None
    assert _rate_limit_body([{"Error": RATE_MESSAGE}]) is None
    assert _rate_limit_body("lack of computing resources") is None


class Tron:
    """An endpoint answering every call with `body` (HTTP 200) until `heal`, then with a result."""

    def __init__(self, body: bytes | None) -> None:
        self.body = body
        self.hits = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        req = orjson.loads(await request.read())
        if self.body is not None:
            return web.Response(status=200, body=self.body, content_type="application/json")
        items = req if isinstance(req, list) else [req]
        out = [{"jsonrpc": "2.0", "id": it["id"], "result": "0x3fe1ca0"} for it in items]
        return web.Response(status=200, body=orjson.dumps(out if isinstance(req, list) else out[0]))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/jsonrpc", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/jsonrpc"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Tron, Tron]]:
    a, b = Tron(RATE_BODY), Tron(None)
    await a.start()
    await b.start()
    yield a, b
    for t in (a, b):
        assert t.runner is not None
        await t.runner.cleanup()


def _count(m: Metrics, ep: str, outcome: str) -> float:
    v = m.registry.get_sample_value(
        "usd1_rpc_requests_total", {"chain": "tron", "endpoint": ep, "outcome": outcome}
    )
    return v or 0.0


async def test_rate_limit_body_fails_over_and_opens_a_window(pair: tuple[Tron, Tron]) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("tron", [a.url, b.url], s, m, timeout=2.0, backoff_base=0.01, backoff_max=0.05)
        la, lb = pool.labels()
        assert await pool.call("eth_blockNumber", []) == "0x3fe1ca0"
        assert _count(m, la, "rate_limited") == 1 and _count(m, la, "malformed") == 0
        assert 0.5 < pool.endpoint(la).limited_until - time.monotonic() <= 1.0
        for _ in range(3):
            await pool.call("eth_blockNumber", [])
        assert a.hits == 1, "a rate-limited endpoint got requests inside its window"
        assert _count(m, lb, "ok") == 4


async def test_rate_limit_body_alone_backs_off_then_succeeds(pair: tuple[Tron, Tron]) -> None:
    a, _ = pair
    async with aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("tron", [a.url], s, m, timeout=2.0, attempts=2, backoff_base=0.01, backoff_max=0.05)
        (la,) = pool.labels()
        t0 = time.monotonic()
        with pytest.raises(RpcError, match="rate limited") as info:
            await pool.call("eth_blockNumber", [])
        assert not isinstance(info.value, MalformedReply)
        assert a.hits == 2 and time.monotonic() - t0 >= 0.9  # retried, after the window, not hammered
        a.body = None
        await asyncio.sleep(max(0.0, pool.endpoint(la).limited_until - time.monotonic()))
        assert await pool.call("eth_blockNumber", []) == "0x3fe1ca0"
        assert _count(m, la, "rate_limited") == a.hits - 1 and _count(m, la, "malformed") == 0


async def test_rate_limit_body_for_a_batch(pair: tuple[Tron, Tron]) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("tron", [a.url, b.url], s, m, timeout=2.0, backoff_base=0.01, backoff_max=0.05)
        la, _ = pool.labels()
        assert await pool.batch([("eth_blockNumber", []), ("eth_blockNumber", [])]) == ["0x3fe1ca0"] * 2
        assert _count(m, la, "rate_limited") == 1
