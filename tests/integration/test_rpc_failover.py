"""Endpoint health and contradictions on real parts: FaultProxies (and a lying proxy) in front of
one anvil, read through RpcPool + EvmSource. Calls succeed via the good endpoint; the bad one is
penalized (metrics per endpoint and outcome), recovers and is used again; a contradicting reply
is a fault of its endpoint and never returned as data."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from indexer.chains.evm import EvmSource
from indexer.chains.rpc import RpcPool
from indexer.config import EvmChainConfig
from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy, JsonObj
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.errors import DataConsistencyError
from indexer.metrics import Metrics
from tests.support.chain_truth import chain_transfer_events

pytestmark = pytest.mark.integration


class LyingProxy(FaultProxy):
    """A FaultProxy that also forges replies a real node never sends (contradictions)."""

    drop_logs = False  # eth_getLogs by range returns []
    forge_to = False  # every log's `to` topic replaced
    fake_final = False  # headers at or below `final_below` get another hash

    final_below = -1

    async def _process(self, items: list[Any]) -> list[JsonObj]:
        replies = await super()._process(items)
        out = []
        for item, reply in zip(items, replies, strict=True):
            method = item.get("method") if isinstance(item, dict) else None
            result = reply.get("result")
            if method == "eth_getLogs" and isinstance(result, list):
                by_hash = bool(item["params"] and item["params"][0].get("blockHash"))
                if self.drop_logs and not by_hash and result:
                    self.faults["drop_logs"] += 1
                    result = []
                if self.forge_to:
                    self.faults["forge_to"] += 1
                    result = [
                        {**lg, "topics": [*lg["topics"][:2], "0x" + "0" * 24 + "ab" * 20]} for lg in result
                    ]
                reply = {**reply, "result": result}
            if method == "eth_getBlockByNumber" and isinstance(result, dict) and self.fake_final:
                if int(result["number"], 16) <= self.final_below:
                    self.faults["fake_final"] += 1
                    reply = {**reply, "result": {**result, "hash": "0x" + "ee" * 32}}
            out.append(reply)
        return out


def chain_cfg(urls: list[str], token: str, **kw: Any) -> EvmChainConfig:
    return EvmChainConfig.model_validate(
        {"name": "devnet", "kind": "evm", "rpc": urls, "token": token, "finality": {"tag": "finalized"}, **kw}
    )


def outcomes(m: Metrics, label: str) -> dict[str, float]:
    out = {}
    for o in ("ok", "error", "timeout", "rate_limited", "malformed", "contradiction"):
        v = m.registry.get_sample_value(
            "usd1_rpc_requests_total", {"chain": "devnet", "endpoint": label, "outcome": o}
        )
        if v:
            out[o] = v
    return out


async def read_all(src: EvmSource, head: int, *, with_headers: bool) -> set[tuple[str, str, int]]:
    data = await src.fetch_range(0, head, with_headers=with_headers)
    return {(e.block_hash, e.tx_hash, e.log_index) for e in data.events}


def keys(truth: set[Any]) -> set[tuple[str, str, int]]:
    return {(t[0], t[1], t[2]) for t in truth}


@pytest.mark.parametrize(
    "fault", ["down", "close", "slow", "429", "errors", "garbage", "truncate", "refused"]
)
async def test_bad_endpoint_fails_over_and_recovers(
    anvil: Anvil, token: TestToken, traffic: Traffic, fault: str
) -> None:
    await traffic.run(12)
    head = await anvil.block_number()
    truth = keys(await chain_transfer_events(anvil, token.address, head))
    async with (
        FaultProxy(anvil.url, seed=3) as bad,
        FaultProxy(anvil.url) as good,
        aiohttp.ClientSession() as s,
    ):
        m = Metrics()
        pool = RpcPool("devnet", [bad.url, good.url], s, m, timeout=0.5, backoff_base=0.01, backoff_max=0.1)
        src = EvmSource(chain_cfg([bad.url, good.url], token.address), pool)
        lb, lg = pool.labels()
        match fault:
            case "down":
                bad.down = True
            case "close":
                bad.down, bad.down_mode = True, "close"
            case "slow":
                bad.delay = 2.0
            case "429":
                bad.rate_limit, bad.retry_after = 0, 1
            case "errors":
                bad.error_rate = 1.0
            case "garbage":
                bad.garbage = True
            case "truncate":
                bad.truncate = True
            case "refused":
                await bad.refuse()
        t0 = time.monotonic()
        for _ in range(3):
            assert await src.head() == head
            assert await read_all(src, head, with_headers=True) == truth
        assert time.monotonic() - t0 < 10
        expected = {
            "down": "error",
            "close": "error",
            "slow": "timeout",
            "429": "rate_limited",
            "errors": "error",
            "garbage": "malformed",
            "truncate": "malformed",
            "refused": "error",
        }[fault]
        assert outcomes(m, lb).get(expected, 0) >= 1, outcomes(m, lb)
        assert outcomes(m, lg)["ok"] >= 3
        assert m.registry.get_sample_value("usd1_rpc_endpoint_up", {"chain": "devnet", "endpoint": lb}) == 0

        # Heal the bad one, break the good one: the recovered endpoint carries the traffic again.
        bad.heal()
        await bad.accept()
        good.down = True
        ok_before = outcomes(m, lb).get("ok", 0)
        assert await src.head() == head
        assert await read_all(src, head, with_headers=False) == truth
        assert outcomes(m, lb)["ok"] > ok_before
        assert pool.endpoint(lb).healthy


async def test_dropped_logs_are_a_contradiction_in_live_mode(
    anvil: Anvil, token: TestToken, traffic: Traffic
) -> None:
    await traffic.run(10)
    head = await anvil.block_number()
    truth = keys(await chain_transfer_events(anvil, token.address, head))
    liar = LyingProxy(anvil.url)
    async with liar, FaultProxy(anvil.url) as good, aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("devnet", [liar.url, good.url], s, m, timeout=2)
        src = EvmSource(chain_cfg([liar.url, good.url], token.address), pool)
        liar.drop_logs = True
        assert await read_all(src, head, with_headers=True) == truth
        assert liar.faults["drop_logs"] >= 1
        assert outcomes(m, pool.labels()[0]).get("contradiction", 0) >= 1
        assert src.contradictions >= 1


@pytest.mark.parametrize("drop", ["all", "some"])
async def test_dropped_logs_are_caught_by_receipts_on_a_tron_dialect_chain(
    anvil: Anvil, token: TestToken, traffic: Traffic, drop: str
) -> None:
    """Tron's blooms are zeros (the dialect ignores them): the live-mode check counts each block's
    receipt logs instead (indexer/chains/receipts.py). An endpoint that drops logs is caught."""
    await traffic.run(10)
    head = await anvil.block_number()
    truth = keys(await chain_transfer_events(anvil, token.address, head))
    liar = LyingProxy(anvil.url)
    async with liar, FaultProxy(anvil.url) as good, aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("devnet", [liar.url, good.url], s, m, timeout=2)
        src = EvmSource(chain_cfg([liar.url, good.url], token.address, dialect="tron"), pool)
        assert not src.dialect.trust_blooms and src.dialect.receipts_check
        if drop == "all":
            liar.drop_logs = True
        else:  # every other log of a range, so blocks with logs left also lose some
            liar.logs_hook = lambda logs: logs[::2]
        assert await read_all(src, head, with_headers=True) == truth
        assert liar.faults["drop_logs" if drop == "all" else "logs_hook"] >= 1
        assert outcomes(m, pool.labels()[0]).get("contradiction", 0) >= 1
        assert src.contradictions >= 1
        assert good.forwarded["eth_getBlockReceipts"] >= 1


@pytest.mark.parametrize("with_headers", [True, False], ids=["live", "backfill"])
async def test_forged_logs_fail_the_bloom(
    anvil: Anvil, token: TestToken, traffic: Traffic, with_headers: bool
) -> None:
    await traffic.run(10)
    head = await anvil.block_number()
    truth = keys(await chain_transfer_events(anvil, token.address, head))
    liar = LyingProxy(anvil.url)
    async with liar, FaultProxy(anvil.url) as good, aiohttp.ClientSession() as s:
        m = Metrics()
        pool = RpcPool("devnet", [liar.url, good.url], s, m, timeout=2)
        src = EvmSource(chain_cfg([liar.url, good.url], token.address), pool)
        liar.forge_to = True
        data = await src.fetch_range(0, head, with_headers=with_headers)
        assert {(e.block_hash, e.tx_hash, e.log_index) for e in data.events} == truth
        assert all(e.to_addr != "0x" + "ab" * 20 for e in data.events)
        assert outcomes(m, pool.labels()[0]).get("contradiction", 0) >= 1


async def _final_height(src: EvmSource, via: str) -> int:
    if via == "tips":
        return (await src.tips())[1]
    return await src.finalized(await src.head())


async def test_tips_read_head_and_finalized_in_one_request(anvil: Anvil, token: TestToken) -> None:
    await anvil.mine(12)
    async with FaultProxy(anvil.url) as proxy, aiohttp.ClientSession() as s:
        src = EvmSource(chain_cfg([proxy.url], token.address), RpcPool("devnet", [proxy.url], s, Metrics()))
        head, fin = await src.tips()
        assert proxy.http_requests == 1
        assert proxy.calls == {"eth_blockNumber": 1, "eth_getBlockByNumber": 1}
        assert (head, fin) == (await anvil.block_number(), await anvil.block_number("finalized"))
        # By confirmations there is no tag to read: one eth_blockNumber.
        proxy.reset_counters()
        by_depth = EvmSource(
            chain_cfg([proxy.url], token.address, finality={"confirmations": 5}),
            RpcPool("devnet", [proxy.url], s, Metrics()),
        )
        assert await by_depth.tips() == (head, head - 5)
        assert proxy.calls == {"eth_blockNumber": 1}


@pytest.mark.parametrize("via", ["finalized", "tips"])
async def test_finalized_hash_lie_is_outvoted(
    anvil: Anvil, token: TestToken, traffic: Traffic, via: str
) -> None:
    await traffic.run(8)
    await anvil.mine(6)
    liar = LyingProxy(anvil.url)
    async with (
        liar,
        FaultProxy(anvil.url) as g1,
        FaultProxy(anvil.url) as g2,
        aiohttp.ClientSession() as s,
    ):
        m = Metrics()
        urls = [liar.url, g1.url, g2.url]
        pool = RpcPool("devnet", urls, s, m, timeout=2)
        src = EvmSource(chain_cfg(urls, token.address), pool)
        fin_true = await anvil.block_number("finalized")
        liar.final_below, liar.fake_final = fin_true, True
        fin = await _final_height(src, via)  # the tag's header is cross-checked: the liar loses 1:2
        assert fin == fin_true
        assert outcomes(m, pool.labels()[0]).get("contradiction", 0) >= 1
        # The follower's header walk never sees the forged hash.
        (ref,) = await src.headers([fin])
        assert ref is not None
        assert ref.hash == (await anvil.rpc("eth_getBlockByNumber", [hex(fin), False]))["hash"]

    # Two endpoints, no history, 1:1: nobody is trusted, nothing is returned.
    liar = LyingProxy(anvil.url)
    async with liar, FaultProxy(anvil.url) as g1, aiohttp.ClientSession() as s:
        pool = RpcPool("devnet", [liar.url, g1.url], s, Metrics(), timeout=2)
        src = EvmSource(chain_cfg([liar.url, g1.url], token.address), pool)
        head = await src.head()
        liar.final_below, liar.fake_final = head, True
        with pytest.raises(DataConsistencyError, match="no majority"):
            await _final_height(src, via)


async def test_ws_heads_wake_fall_back_and_reconnect() -> None:
    from indexer.chains.heads import HeadWatcher

    node = await Anvil().start()
    port = node.port
    w = await HeadWatcher("devnet", f"ws://127.0.0.1:{port}", backoff_base=0.05, backoff_max=0.2).start()
    try:
        assert await w.wait(5)  # connected: wakes once to look at the head
        assert w.connected
        assert not await w.wait(0.2)  # nothing new
        await node.mine(1)
        t0 = time.monotonic()
        assert await w.wait(5)
        assert time.monotonic() - t0 < 1.0
        assert w.latest == 1
        # The node goes away: wait() degrades to the polling sleep, the watcher reconnects.
        await node.stop()
        t0 = time.monotonic()
        while w.connected and time.monotonic() - t0 < 5:  # noqa: ASYNC110 - polls a plain flag
            await asyncio.sleep(0.05)
        assert not w.connected
        t0 = time.monotonic()
        assert not await w.wait(0.3)
        assert 0.25 < time.monotonic() - t0 < 1.0
        node = await Anvil(port=port).start()
        assert await w.wait(5)  # reconnected
        assert w.connected and w.reconnects >= 1
        await node.mine(2)
        assert await w.wait(5)
    finally:
        await w.close()
        await node.stop()
