"""The latest-only checks (indexer/latest.py) on real parts: anvil followed with the `tron`
dialect, whose state reads run at `latest` only (java-tron). The follower compares
`totalSupply()`, and the control check the contract state (the real USD1 proxy), read between two
latest headers with what the index holds at that block."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest
from structlog.testing import capture_logs

from indexer.chains import tron
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.devnet.usd1 import deploy_usd1
from indexer.runtime import open_runtime
from indexer.sync.supervisor import Supervisor
from tests.integration.test_controls_pipeline import NEW_OWNER, A
from tests.integration.test_controls_pipeline import config as controls_config
from tests.integration.test_controls_pipeline import running as controls_running
from tests.integration.test_evm_pipeline import CHAIN, make_config, wait_for

pytestmark = pytest.mark.integration


async def test_supply_is_reconciled_at_latest_on_a_tron_dialect_chain(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> None:
    cfg = make_config(anvil.url, token.address, dsn, tmp_path, dialect="tron")
    assert cfg.chains[0].kind == "evm" and cfg.chains[0].dialect == "tron"
    rng = random.Random(11)
    async with open_runtime(cfg) as rt:
        follower = rt.followers[CHAIN]
        follower.s = dataclasses.replace(follower.s, supply_check_interval=0.0)
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]
        for i in range(24):
            await traffic.step()
            if i % 8 == 7:
                tip = await anvil.block_number()
                await wait_for(lambda tip=tip: status.indexed >= tip, 10, "follower to reach the tip")
                await traffic.reorg(rng.randint(1, 3))
        await traffic.step()  # and once more after the last reorg
        head = await anvil.block_number()
        head_hash = (await anvil.rpc("eth_getBlockByNumber", [hex(head), False]))["hash"]
        await wait_for(
            lambda: follower.cursor is not None and follower.cursor.hash == head_hash,
            20,
            "the follower to reach the head",
        )
        # The chain stands still: the next round reads at `head`, which the index holds.
        await wait_for(lambda: status.mismatch_block == head, 20, "a supply check at the head")
        stop.set()
        await task
        onchain = await token.total_supply(head)
        assert onchain > 0
        assert (await rt.store.supply_at(CHAIN, head)).supply == onchain
        assert status.mismatch == 0
        reg = rt.metrics.registry
        assert reg.get_sample_value("usd1_supply_mismatch_tokens", {"chain": CHAIN}) == 0
        assert reg.get_sample_value("usd1_supply_check_block", {"chain": CHAIN}) == head
        # A round that reads at a block the index does not hold (the follower stopped, the chain
        # moved on): skipped and counted, not compared; the last comparison stands.
        skipped = {"chain": CHAIN, "reason": "not_indexed"}
        before = reg.get_sample_value("usd1_supply_check_skipped_total", skipped) or 0.0
        await traffic.step()
        await follower._check_supply()
        assert reg.get_sample_value("usd1_supply_check_skipped_total", skipped) == before + 1
        assert status.mismatch_block == head and status.mismatch == 0
        # The balance audit cannot read balanceOf at the finalized block: it does not run, says
        # so once, and reads nothing.
        auditor = rt.auditors[CHAIN]
        with capture_logs() as logs:
            await auditor.audit_balances()
            await auditor.audit_balances()
        assert auditor.requests == 0
        assert [e["event"] for e in logs].count("balance_audit_unsupported") == 1


async def test_control_state_is_checked_at_latest_on_a_tron_dialect_chain(
    anvil: Anvil, dsn: str, tmp_path: Any
) -> None:
    d = await deploy_usd1(anvil)
    cfg = controls_config([anvil.url], d, dsn, tmp_path, dialect="tron")
    token = d.token
    async with controls_running(cfg) as run:
        await token.mint(1000 * 10**18)
        await token.transfer(token.owner, A, 100 * 10**18)
        for step in (token.freeze(A), token.pause(), token.unpause(), token.transfer_ownership(NEW_OWNER)):
            await step
        await anvil.mine(6)
        head = await anvil.block_number()
        st = run.rt.statuses[CHAIN]
        # Nothing moves any more: a round reads at `head`, which the index holds.
        await wait_for(
            lambda: st.control_check is not None and st.control_check["block"] == head, 20, "control check"
        )
        check = st.control_check
        assert check is not None and check["mismatches"] == {}, check
        assert set(check["checked"]) >= {
            "owner",
            "pending_owner",
            "implementation",
            "admin",
            "paused",
            "frozen",
        }
        for field in ("owner", "pending_owner", "implementation", "admin", "paused", "frozen"):
            assert run.metric("usd1_control_mismatch", field=field) == 0, field
        # What it compared is the chain's own state.
        body = await run.get("/api/v1/controls")
        h = body["chains"][0]["head"]
        # (shown in base58: the dialect is tron)
        assert tron.to_hex(h["pending_owner"]) == NEW_OWNER == (await token.pending_owner()).lower()
        assert [tron.to_hex(a["address"]) for a in h["frozen"]["accounts"]] == [A] and await token.is_frozen(
            A
        )
        assert run.rt.statuses[CHAIN].mismatch == 0
        # The control info labels that alerts quote are base58 too.
        owner = tron.to_base58((await token.current_owner()).lower())
        info = {"owner": owner, "admin": tron.to_base58(d.proxy_admin.address.lower())}
        assert run.metric("usd1_control_info", **info, implementation=h["implementation"]) == 1
