"""The EVM path end to end on real parts: anvil -> source -> reorg/finality -> PostgreSQL.

Ground truth is the chain itself: its logs, totalSupply() and balanceOf() at the finalized block.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from indexer.config import Config
from indexer.daemon import backfill
from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import open_runtime
from indexer.sync.supervisor import Supervisor
from tests.support.chain_truth import chain_transfer_events, indexed_events

CHAIN = "devnet"


def make_config(rpc: str | list[str], token: str, dsn: str, tmp: Any, **chain: Any) -> Config:
    return Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp),
            "chains": [
                {
                    "name": CHAIN,
                    "kind": "evm",
                    "rpc": rpc if isinstance(rpc, list) else [rpc],
                    "token": token,
                    "decimals": 18,
                    "finality": {"tag": "finalized"},
                    "poll_interval": "50ms",
                    "request_timeout": "5s",
                    **chain,
                }
            ],
        }
    )


async def wait_for(cond: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


async def test_follow_random_traffic_with_reorgs(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> None:
    cfg = make_config(anvil.url, token.address, dsn, tmp_path)
    rng = random.Random(7)
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]
        reorgs_done = 0
        for i in range(60):
            await traffic.step()
            if i % 8 == 7:
                # Let the follower index the blocks about to be orphaned, then reorg them.
                tip = await anvil.block_number()
                await wait_for(lambda tip=tip: status.indexed >= tip, 10, "follower to reach the tip")
                await traffic.reorg(rng.randint(1, 3))  # finalized = head - 4: always shallower
                reorgs_done += 1
        await anvil.mine(6)
        head = await anvil.block_number()
        await wait_for(
            lambda: status.indexed == head and status.indexed_finalized >= head - 4, 20, "finalization"
        )
        fin = status.indexed_finalized
        await wait_for(
            lambda: status.mismatch_block is not None and status.mismatch_block >= fin, 20, "supply check"
        )
        stop.set()
        await task

        # Exactly the canonical chain's Transfer logs: nothing lost, nothing doubled, orphans gone.
        truth = await chain_transfer_events(anvil, token.address, head)
        got = await indexed_events(rt.pool, CHAIN)
        assert len(got) == len(set(got)), "duplicate events stored"
        assert set(got) == truth
        assert {k for k, v in traffic.stats.ops.items() if v} >= {"mint", "burn", "transfer"}

        # Finalized supply and balances equal the chain's own at that block, to the base unit.
        indexed_supply = (await rt.store.supply_at(CHAIN, fin)).supply
        assert indexed_supply == await token.total_supply(fin)
        assert indexed_supply > 0
        for holder in traffic.holders:
            assert await rt.store.balance(CHAIN, holder.lower(), fin) == await token.balance_of(holder, fin)
            assert await rt.store.balance(CHAIN, holder.lower()) == await token.balance_of(holder, head)
        assert status.mismatch == 0
        assert rt.metrics.registry.get_sample_value("usd1_supply_mismatch_tokens", {"chain": CHAIN}) == 0
        assert rt.metrics.registry.get_sample_value("usd1_reorgs_total", {"chain": CHAIN}) == reorgs_done
        assert len(await rt.store.reorgs(CHAIN)) == reorgs_done
        assert rt.metrics.registry.get_sample_value(
            "usd1_events_total", {"chain": CHAIN, "kind": "mint"}
        ) == await _count(rt.pool, fin, "mint")


async def test_range_limited_provider_yields_every_event(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> None:
    await traffic.run(40)
    await anvil.mine(5)
    async with FaultProxy(anvil.url) as proxy:
        proxy.max_logs_range = 3
        cfg = make_config(proxy.url, token.address, dsn, tmp_path, max_block_range=500)
        result = await backfill(cfg, None, None)
        assert proxy.faults["max_logs_range"] > 0, "the proxy never refused a range"
    fin = result[CHAIN]
    assert fin == await anvil.block_number("finalized")
    truth = await chain_transfer_events(anvil, token.address, fin)
    async with open_runtime(cfg) as rt:
        got = await indexed_events(rt.pool, CHAIN)
        assert len(got) == len(set(got))
        assert set(got) == truth
        assert (await rt.store.supply_at(CHAIN, fin)).supply == await token.total_supply(fin)


async def test_a_stated_rate_meets_no_rate_limit_and_probes_once(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> None:
    """`max_requests_per_second` set to the provider's rate: the backfill is paced from its first
    request, so the provider never answers 429, and the 16-block probe runs alone (the other
    fetches are sized by its density, not each a probe of its own)."""
    await traffic.run(40)
    await anvil.mine(5)
    async with FaultProxy(anvil.url) as proxy:
        proxy.rate_limit, proxy.retry_after = 4.0, 1.0
        cfg = make_config(proxy.url, token.address, dsn, tmp_path, max_requests_per_second=4)
        result = await backfill(cfg, None, None)
        assert proxy.faults["rate_limit"] == 0
        # The probe [0, 15], then one fetch for the rest (a sparse chain: well under the ceiling).
        assert proxy.calls["eth_getLogs"] == 2
    fin = result[CHAIN]
    truth = await chain_transfer_events(anvil, token.address, fin)
    async with open_runtime(cfg) as rt:
        got = await indexed_events(rt.pool, CHAIN)
        assert len(got) == len(set(got))
        assert set(got) == truth


async def test_an_unstated_rate_is_learned_from_the_limits(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> None:
    """The same provider without the stated rate: the first burst meets 429s (the contrast that
    shows the stated rate is what kept them away), and nothing is lost."""
    await traffic.run(40)
    await anvil.mine(5)
    async with FaultProxy(anvil.url) as proxy:
        proxy.rate_limit, proxy.retry_after = 4.0, 1.0
        cfg = make_config(proxy.url, token.address, dsn, tmp_path)
        result = await backfill(cfg, None, None)
        assert proxy.faults["rate_limit"] >= 1
    truth = await chain_transfer_events(anvil, token.address, result[CHAIN])
    async with open_runtime(cfg) as rt:
        assert set(await indexed_events(rt.pool, CHAIN)) == truth


async def _count(pool: Any, fin: int, kind: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM events WHERE kind = $1 AND block_number <= $2", kind, fin)
    )


pytestmark = pytest.mark.integration


async def test_ws_new_heads_wake_the_follower(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Any
) -> None:
    """With a 10 s poll interval, only the newHeads subscription can make a block show up fast."""
    ws = anvil.url.replace("http://", "ws://")
    cfg = make_config(anvil.url, token.address, dsn, tmp_path, poll_interval="10s", ws=ws)
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]
        try:
            await wait_for(lambda: status.phase.value == "live" and rt.heads[0].connected, 15, "live + ws")
            await asyncio.sleep(0.5)  # the follower is now idle, waiting for a head
            tip = await anvil.block_number()
            await token.mint("0x" + "ab" * 20, 10**18)
            started = time.monotonic()
            await wait_for(lambda: status.indexed > tip, 5, "the new block")
            assert time.monotonic() - started < 2.0, "the block was found by polling, not by newHeads"
        finally:
            stop.set()
            await task


async def test_large_mints_and_burns_count_once_at_the_head(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Any
) -> None:
    """usd1_large_events_total{chain,kind}: a mint of at least large_event_tokens counts 1, a
    smaller one 0; counted when committed at the head, not again when the block becomes final."""
    cfg = make_config(anvil.url, token.address, dsn, tmp_path, large_event_tokens="1000")
    holder = "0x" + "cd" * 20
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]

        def large(kind: str) -> float | None:
            return rt.metrics.registry.get_sample_value(
                "usd1_large_events_total", {"chain": CHAIN, "kind": kind}
            )

        try:
            await wait_for(lambda: status.phase.value == "live", 15, "live")
            assert (large("mint"), large("burn")) == (0, 0)
            await token.mint(holder, 999 * 10**18)  # just below the threshold
            tip = await anvil.block_number()
            await wait_for(lambda: status.indexed >= tip, 10, "the small mint")
            assert (large("mint"), large("burn")) == (0, 0)
            await token.mint(holder, 1000 * 10**18)  # exactly the threshold: large
            await token.burn(holder, 10**18)
            tip = await anvil.block_number()
            await wait_for(lambda: status.indexed >= tip, 10, "the large mint")
            assert (large("mint"), large("burn")) == (1, 0)
            await anvil.mine(6)  # finalize both mints: nothing counts again
            head = await anvil.block_number()
            await wait_for(lambda: status.indexed == head and status.indexed_finalized >= tip, 10, "finality")
        finally:
            stop.set()
            await task
        assert (large("mint"), large("burn")) == (1, 0)
        assert rt.metrics.registry.get_sample_value(
            "usd1_events_total", {"chain": CHAIN, "kind": "mint"}
        ) == await _count(rt.pool, status.indexed_finalized, "mint")
