"""The watchlist loader (indexer.sync.watchlists) on real files and a real local HTTP server: loads at
start, reloads on a change (file stat + content hash, HTTP ETag), and a bad new list is one error
log while the previous list stays in force. Lists: the real OFAC samples in tests/fixtures/sanctions/."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from indexer.config import EvmChainConfig, WatchlistConfig
from indexer.metrics import Metrics
from indexer.model import EventKind, TokenEvent
from indexer.sync.watchlists import WatchlistService

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sanctions"
ETH_LIST = (FIXTURES / "sanctioned_addresses_ETH.txt").read_bytes()
USDC_LIST = (FIXTURES / "sanctioned_addresses_USDC.txt").read_bytes()
USDT_JSON = (FIXTURES / "sanctioned_addresses_USDT.json").read_bytes()
ZERO = "0x" + "0" * 40
IN_ETH_ONLY = ETH_LIST.decode().splitlines()[0].lower()
IN_USDC = USDC_LIST.decode().splitlines()[0].lower()
CHAIN = EvmChainConfig.model_validate(
    {
        "name": "ethereum",
        "kind": "evm",
        "rpc": ["http://127.0.0.1:1"],
        "token": "0x8d0d000ee44948fc98c9b98a4fa4921476f08b0d",
        "decimals": 18,
    }
)


class Recorder:
    """A logger double: (level, event, fields) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def _rec(self, level: str) -> Any:
        def log(event: str, **kw: Any) -> None:
            self.calls.append((level, event, kw))

        return log

    def __getattr__(self, level: str) -> Any:
        return self._rec(level)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [kw for _, ev, kw in self.calls if ev == name]


def to(addr: str) -> TokenEvent:
    return TokenEvent("ethereum", 1, "0xb", "0xt", 0, EventKind.TRANSFER, ZERO, addr, 1)


def write(path: Path, data: bytes, bump: int) -> None:
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


async def test_file_list_reloads_on_change_and_a_bad_version_keeps_the_previous(tmp_path: Path) -> None:
    path = tmp_path / "lists" / "eth.txt"
    path.parent.mkdir()
    write(path, ETH_LIST, 0)
    metrics, logs = Metrics(), Recorder()
    reg = metrics.registry
    cfg = [WatchlistConfig(name="ofac-eth", url="lists/eth.txt", format="ofac_txt")]
    async with aiohttp.ClientSession() as session:
        svc = WatchlistService(cfg, [CHAIN], metrics, session, base_dir=tmp_path, logger=logs)
        assert svc.matcher.match(to(IN_ETH_ONLY)) == []  # nothing in force before the first load
        assert await svc.refresh()
        assert svc.matcher.match(to(IN_ETH_ONLY)) == ["ofac-eth"]
        assert reg.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 1
        assert reg.get_sample_value("usd1_watchlist_addresses", {"list": "ofac-eth", "kind": "evm"}) == 152
        assert len(logs.events("watchlist_loaded")) == 1
        first = svc.matcher
        assert not await svc.refresh() and svc.matcher is first  # unchanged: not re-read

        # Touched but the same bytes: no reload.
        write(path, ETH_LIST, 1)
        assert not await svc.refresh() and svc.matcher is first

        # A bad new version: one error naming the list and the line; the previous list stays.
        write(path, ETH_LIST + b"0xnot-an-address\n", 2)
        for _ in range(3):
            assert not await svc.refresh()
        failed = logs.events("watchlist_failed")
        assert len(failed) == 1, logs.calls
        assert failed[0]["list"] == "ofac-eth"
        assert (
            "watchlist 'ofac-eth': line 153: '0xnot-an-address' is not an EVM address" in failed[0]["error"]
        )
        assert svc.matcher is first and svc.matcher.match(to(IN_ETH_ONLY)) == ["ofac-eth"]
        assert reg.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 0
        assert "line 153" in (svc.error("ofac-eth") or "")

        # The file disappears: a new failure, logged once; the list in force stays.
        path.unlink()
        assert not await svc.refresh() and not await svc.refresh()
        assert len(logs.events("watchlist_failed")) == 2
        assert "cannot read" in logs.events("watchlist_failed")[1]["error"]
        assert svc.matcher.match(to(IN_ETH_ONLY)) == ["ofac-eth"]

        # Back with the bad bytes: still failing (not re-logged); the list in force stays.
        write(path, ETH_LIST + b"0xnot-an-address\n", 3)
        assert not await svc.refresh()
        assert len(logs.events("watchlist_failed")) == 3  # a new failure: the bad line again
        assert not logs.events("watchlist_recovered")

        # A good new version replaces it; the recovery is logged once.
        write(path, USDC_LIST, 4)
        assert await svc.refresh()
        assert svc.matcher.match(to(IN_ETH_ONLY)) == []
        assert svc.matcher.match(to(IN_USDC)) == ["ofac-eth"]
        assert len(logs.events("watchlist_recovered")) == 1
        assert reg.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 1
        assert reg.get_sample_value("usd1_watchlist_addresses", {"list": "ofac-eth", "kind": "evm"}) == 2
        assert svc.error("ofac-eth") is None

        # Deleted and put back unchanged: the read failure ends without a reload.
        path.unlink()
        assert not await svc.refresh()
        assert reg.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 0
        write(path, USDC_LIST, 5)
        assert not await svc.refresh()
        assert svc.error("ofac-eth") is None and len(logs.events("watchlist_recovered")) == 2
        assert reg.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 1
        assert len(logs.events("watchlist_loaded")) == 2


async def test_http_list_uses_the_etag_and_a_failing_server_keeps_the_list() -> None:
    state: dict[str, Any] = {"body": USDT_JSON, "etag": '"v1"', "status": 200, "requests": [], "sent": 0}

    async def serve(request: web.Request) -> web.Response:
        state["requests"].append(request.headers.get("If-None-Match"))
        if state["status"] != 200:
            return web.Response(status=state["status"])
        if request.headers.get("If-None-Match") == state["etag"]:
            return web.Response(status=304, headers={"ETag": state["etag"]})
        state["sent"] += 1
        return web.Response(body=state["body"], headers={"ETag": state["etag"]})

    app = web.Application()
    app.router.add_get("/usdt.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    usdt_evm = "0x175d44451403edf28469df03a9280c1197adb92c"  # in the USDT list only
    metrics, logs = Metrics(), Recorder()
    cfg = [WatchlistConfig(name="ofac-usdt", url=f"http://127.0.0.1:{port}/usdt.json", format="ofac_json")]
    try:
        async with aiohttp.ClientSession() as session:
            svc = WatchlistService(cfg, [CHAIN], metrics, session, logger=logs, reload_seconds=0.05)
            assert await svc.refresh()
            assert svc.matcher.match(to(usdt_evm)) == ["ofac-usdt"]
            assert not await svc.refresh()
            assert state["requests"] == [None, '"v1"'] and state["sent"] == 1  # the second was a 304

            state["status"] = 503
            assert not await svc.refresh() and not await svc.refresh()
            assert len(logs.events("watchlist_failed")) == 1
            assert "HTTP 503" in logs.events("watchlist_failed")[0]["error"]
            assert svc.matcher.match(to(usdt_evm)) == ["ofac-usdt"]
            # Back with the same version (304): recovered, nothing reloaded.
            state["status"] = 200
            assert not await svc.refresh()
            assert svc.error("ofac-usdt") is None and len(logs.events("watchlist_recovered")) == 1
            assert metrics.registry.get_sample_value("usd1_watchlist_up", {"list": "ofac-usdt"}) == 1
            state["status"] = 503
            assert not await svc.refresh()
            assert len(logs.events("watchlist_failed")) == 2

            # The server recovers with a new version; the periodic task picks it up by itself.
            state["status"] = 200
            state["body"] = ('["' + '","'.join(ETH_LIST.decode().split()) + '"]').encode()
            state["etag"] = '"v2"'
            assert svc.matcher.match(to(IN_ETH_ONLY)) == []
            stop = asyncio.Event()
            task = asyncio.create_task(svc.run(stop))
            for _ in range(100):
                if svc.matcher.match(to(IN_ETH_ONLY)):
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(task, 2)
            assert svc.matcher.match(to(IN_ETH_ONLY)) == ["ofac-usdt"]
            assert svc.matcher.match(to(usdt_evm)) == []
            assert len(logs.events("watchlist_recovered")) == 2
    finally:
        await runner.cleanup()


async def test_a_large_http_list_is_read_whole() -> None:
    """100,000 addresses (4.3 MB) arrive in many chunks: every one is read, none truncated."""
    addrs = [f"0x{i:040x}" for i in range(1, 100_001)]
    body = ("address,label\n" + "".join(f"{a},x\n" for a in addrs)).encode()

    async def serve(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(0, len(body), 7919):  # small, odd-sized writes
            await resp.write(body[i : i + 7919])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/big.csv", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    metrics = Metrics()
    cfg = [WatchlistConfig(name="big", url=f"http://127.0.0.1:{port}/big.csv", format="csv")]
    try:
        async with aiohttp.ClientSession() as session:
            svc = WatchlistService(cfg, [CHAIN], metrics, session, logger=Recorder())
            assert await svc.refresh()
        assert (
            metrics.registry.get_sample_value("usd1_watchlist_addresses", {"list": "big", "kind": "evm"})
            == 100_000
        )
        assert svc.matcher.match(to(addrs[-1])) == ["big"]
    finally:
        await runner.cleanup()
