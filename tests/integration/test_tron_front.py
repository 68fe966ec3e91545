"""End to end through a Tron-dialect front over anvil (tests/support/tron_front.py: zero blooms,
`latest`-only state reads, refused `safe`, java-tron's range and result caps and its HTTP-200
rate-limit body), with random traffic and shallow reorgs: events, supply and balances exact, the
latest-only supply check compared; then a reorg below the finalized block halts the chain."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from indexer.chains import tron
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.devnet.usd1 import deploy_usd1
from indexer.sync.status import State
from tests.integration.test_controls_pipeline import NEW_OWNER, A, chain_kinds
from tests.integration.test_controls_pipeline import config as controls_config
from tests.integration.test_controls_pipeline import running as controls_running
from tests.integration.test_evm_pipeline import wait_for
from tests.integration.test_finality_breaks import (
    CHAIN,
    assert_halted,
    config,
    evm_chain,
    final_state,
    following,
)
from tests.support.chain_truth import chain_transfer_events, indexed_events
from tests.support.tron_front import TronFront

pytestmark = pytest.mark.integration


async def test_a_tron_dialect_chain_through_the_front(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    rng = random.Random(18)
    await traffic.run(20)  # history for a backfill through the range cap
    async with TronFront(anvil.url, max_range=6, rate_limit_every=9) as front:
        chain = {**evm_chain([front.url], token.address), "dialect": "tron", "max_block_range": 50}
        cfg = config(dsn, tmp_path, chain)
        with capture_logs() as logs:
            async with following(cfg) as rt:
                status = rt.statuses[CHAIN]
                follower = rt.followers[CHAIN]
                for i in range(40):
                    await traffic.step()
                    if i % 10 == 9:
                        tip = await anvil.block_number()
                        await wait_for(lambda tip=tip: status.indexed >= tip, 20, "the follower at the tip")
                        await traffic.reorg(rng.randint(1, 3))  # shallower than finalized (head - 4)
                await traffic.step()
                await anvil.mine(6)
                head = await anvil.block_number()
                head_hash = (await anvil.rpc("eth_getBlockByNumber", [hex(head), False]))["hash"]
                await wait_for(
                    lambda: (
                        follower.cursor is not None
                        and follower.cursor.hash == front.tron_hash(head_hash, head)
                    ),
                    20,
                    "the head",
                )
                await wait_for(lambda: status.mismatch_block == head, 20, "a supply check at the head")
                fin = status.indexed_finalized
                assert fin >= head - 4

                # Exactly the chain's Transfer logs; supply and balances to the base unit.
                # (block hashes as the front gave them: the height in the first 8 bytes)
                truth = {
                    (front.shown(k[0]), *k[1:])
                    for k in await chain_transfer_events(anvil, token.address, head)
                }
                got = await indexed_events(rt.pool, CHAIN)
                assert len(got) == len(set(got)) and set(got) == truth
                assert all(int(k[0][2:18], 16) > 0 for k in got)
                assert follower.cursor.hash == front.shown(head_hash)
                assert int(follower.cursor.hash[2:18], 16) == head
                assert (await rt.store.supply_at(CHAIN, fin)).supply == await token.total_supply(fin)
                assert (await rt.store.supply_at(CHAIN, head)).supply == await token.total_supply(head)
                for holder in traffic.holders:
                    a = holder.lower()
                    assert await rt.store.balance(CHAIN, a, fin) == await token.balance_of(holder, fin)
                    assert await rt.store.balance(CHAIN, a) == await token.balance_of(holder, head)
                assert status.mismatch == 0
                # Each documented difference was met, and the indexer never asked for past state
                # or a `safe` block.
                assert front.faults["range"] >= 1 and front.faults["tron_rate_limit"] >= 1
                assert front.refused.get("not_latest", 0) == 0 and front.refused.get("tag", 0) == 0
                assert front.forwarded["eth_getBlockReceipts"] >= 1
                assert rt.metrics.registry.get_sample_value("usd1_reorgs_total", {"chain": CHAIN}) == 4

                # A reorg below the finalized block: the chain halts, finalized rows unchanged.
                before = await final_state(rt.pool, CHAIN)
                result = await traffic.reorg(8)
                await anvil.mine(1)
                await wait_for(lambda: status.state() == State.HALTED, 20, "the chain to halt")
                await asyncio.sleep(0.3)
                crit = assert_halted(rt, CHAIN, logs)
                assert await final_state(rt.pool, CHAIN) == before
                assert result.fork_point <= crit["block"] <= before[0]


async def test_usd1_control_events_and_checks_through_the_front(
    anvil: Anvil, dsn: str, tmp_path: Path
) -> None:
    """The real USD1 proxy's control events through the front: stored once each, the state the
    API shows in base58, the latest-only control check agreeing with the chain."""
    d = await deploy_usd1(anvil)
    token = d.token
    async with TronFront(anvil.url, max_range=6) as front:
        cfg = controls_config([front.url], d, dsn, tmp_path, dialect="tron")
        async with controls_running(cfg) as run:
            await token.mint(1000 * 10**18)
            await token.transfer(token.owner, A, 100 * 10**18)
            for step in (
                token.freeze(A),
                token.pause(),
                token.unpause(),
                token.transfer_ownership(NEW_OWNER),
            ):
                await step
            await anvil.mine(6)
            head = await anvil.block_number()
            st = run.rt.statuses[CHAIN]
            await wait_for(
                lambda: st.control_check is not None and st.control_check["block"] == head,
                20,
                "control check",
            )
            assert st.control_check is not None and st.control_check["mismatches"] == {}
            events = (await run.get("/api/v1/control-events", chain=CHAIN, limit="1000"))["events"]
            want = await chain_kinds(anvil, [token.address, d.proxy_admin.address], "latest")
            assert Counter(e["kind"] for e in events) == want and want["frozen"] == 1
            assert all(int(e["block_hash"][2:18], 16) == e["block_number"] for e in events)
            frozen = [e for e in events if e["kind"] == "frozen"]
            assert [tron.to_hex(e["subject"]) for e in frozen] == [A]
            body = await run.get("/api/v1/controls")
            h = body["chains"][0]["head"]
            assert tron.to_hex(h["pending_owner"]) == NEW_OWNER == (await token.pending_owner()).lower()
            assert h["paused"] is False is await token.paused()
            assert run.rt.statuses[CHAIN].mismatch == 0
            assert front.refused.get("not_latest", 0) == 0
