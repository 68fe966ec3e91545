"""The devnet against a real anvil: deterministic deployment, exact supply/balance changes, the
extra Mint/Burn events, reverts without logs, reorgs that change token events, finality tags."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from indexer.chains.evm_decode import ZERO_ADDRESS
from indexer.chains.evm_families import LogDispatch, decode_logs
from indexer.devnet.anvil import Anvil
from indexer.devnet.contract import ANVIL_ACCOUNT0
from indexer.devnet.evm_devnet import USD1_DEPLOYMENT_AGE, DevnetChainSpec, start_evm_devnet
from indexer.devnet.solc import Artifact
from indexer.devnet.token import (
    BURN_TOPIC,
    DETERMINISTIC_TOKEN_ADDRESS,
    MINT_TOPIC,
    TRANSFER_TOPIC,
    TestToken,
    TxFailed,
)
from indexer.devnet.traffic import Traffic
from indexer.devnet.usd1 import (
    DEVNET_USD1_ADDRESS,
    DEVNET_USD1_IMPLEMENTATION_ADDRESS,
    DEVNET_USD1_PROXY_ADMIN_ADDRESS,
)
from tests.support.evm_logs import node_filter

pytestmark = pytest.mark.integration

A = "0x" + "a1" * 20
B = "0x" + "b2" * 20
C = "0x" + "c3" * 20
UNIT = 10**18


def _topic_addr(t: str) -> str:
    return "0x" + t[26:]


def _ledger(logs: list[dict[str, Any]]) -> tuple[int, Counter[str]]:
    """Supply and balances recomputed from the chain's own Transfer logs."""
    supply = 0
    bal: Counter[str] = Counter()
    for log in logs:
        frm, to, amount = _topic_addr(log["topics"][1]), _topic_addr(log["topics"][2]), int(log["data"], 16)
        if frm == ZERO_ADDRESS:
            supply += amount
        else:
            bal[frm] -= amount
        if to == ZERO_ADDRESS:
            supply -= amount
        else:
            bal[to] += amount
    return supply, bal


async def test_deploys_at_deterministic_address(
    anvil: Anvil, token: TestToken, token_artifact: Artifact
) -> None:
    assert token.address == DETERMINISTIC_TOKEN_ADDRESS
    code = await anvil.rpc("eth_getCode", [token.address, "latest"])
    assert len(code) > 1000
    assert await token.total_supply() == 0
    # Same address on any fresh anvil chain, whatever the chain id; decimals configurable.
    async with Anvil(chain_id=31338) as other:
        t2 = await TestToken.deploy(
            other, token_artifact, decimals=6, expect_address=DETERMINISTIC_TOKEN_ADDRESS
        )
        assert t2.address == DETERMINISTIC_TOKEN_ADDRESS
        dec = await t2.call("0x313ce567")  # decimals()
        assert int.from_bytes(dec, "big") == 6


async def test_mint_burn_transfer_change_supply_exactly(token: TestToken) -> None:
    r1 = await token.mint(A, 1000 * UNIT)
    r2 = await token.transfer(A, B, 300 * UNIT)  # from an arbitrary (impersonated) address
    r3 = await token.burn(B, 100 * UNIT)
    r4 = await token.batch_mint([A, C, C], [5, 6, 7])
    r5 = await token.batch_transfer([A, C], [B, A], [2, 13])

    assert await token.total_supply(r1.block_number) == 1000 * UNIT
    assert await token.total_supply(r1.block_number - 1) == 0
    assert await token.balance_of(A, r2.block_number) == 700 * UNIT
    assert await token.balance_of(B, r2.block_number) == 300 * UNIT
    assert await token.total_supply(r2.block_number) == 1000 * UNIT
    assert await token.total_supply(r3.block_number) == 900 * UNIT
    assert await token.balance_of(B, r3.block_number) == 200 * UNIT
    assert await token.total_supply(r4.block_number) == 900 * UNIT + 18
    assert await token.balance_of(A) == 700 * UNIT + 5 - 2 + 13
    assert await token.balance_of(B) == 200 * UNIT + 2
    assert await token.balance_of(C) == 13 - 13
    assert await token.total_supply() == 900 * UNIT + 18
    assert len([log for log in r4.logs if log["topics"][0] == TRANSFER_TOPIC]) == 3
    assert len(r5.logs) == 2


async def test_extra_mint_and_burn_events_are_emitted_and_ignored_by_decoder(token: TestToken) -> None:
    mint = await token.mint(A, 50)
    burn = await token.burn(A, 20)
    mint_topics = [log["topics"][0] for log in mint.logs]
    burn_topics = [log["topics"][0] for log in burn.logs]
    assert sorted(mint_topics) == sorted([MINT_TOPIC, TRANSFER_TOPIC])
    assert sorted(burn_topics) == sorted([BURN_TOPIC, TRANSFER_TOPIC])
    mint_ev = next(log for log in mint.logs if log["topics"][0] == MINT_TOPIC)
    assert _topic_addr(mint_ev["topics"][1]) == token.owner  # minter
    assert _topic_addr(mint_ev["topics"][2]) == A
    # Every log of the token: the filter asks for the two Transfers only.
    all_logs = await token.logs([])
    assert len(all_logs) == 4
    d = LogDispatch.build(token.address)
    events = decode_logs("devnet", node_filter(all_logs, d), d).events
    assert [(e.kind.value, e.amount) for e in events] == [("mint", 50), ("burn", 20)]


async def test_reverting_transfer_leaves_no_logs(anvil: Anvil, token: TestToken) -> None:
    await token.mint(A, 10)
    failed = await token.transfer(A, B, 11, check=False)
    assert failed.status == 0
    assert failed.logs == ()
    block_logs = await anvil.rpc(
        "eth_getLogs", [{"fromBlock": hex(failed.block_number), "toBlock": hex(failed.block_number)}]
    )
    assert block_logs == []
    assert await token.balance_of(A) == 10
    assert await token.balance_of(B) == 0
    with pytest.raises(TxFailed):
        await token.transfer(A, B, 11)
    # Only the owner may mint.
    not_owner = await token.send(token.tx(B, token.mint_tx(B, 1)["data"]), check=False)
    assert not_owner.status == 0
    assert await token.total_supply() == 10


async def test_finalized_tag_is_head_minus_4(anvil: Anvil, token: TestToken) -> None:
    await anvil.mine(10)
    head = await anvil.block_number()
    assert await anvil.block_number("safe") == head - 2
    assert await anvil.block_number("finalized") == head - 4


async def test_reorg_replaces_blocks_with_different_transfer_logs(anvil: Anvil, traffic: Traffic) -> None:
    token = traffic.token
    await traffic.run(12)
    head = await anvil.block_number()
    depth = 3
    fork_point = head - depth + 1
    before = await token.transfer_logs(fork_point, head)
    below_before = await anvil.rpc("eth_getBlockByNumber", [hex(fork_point - 1), False])
    orphan_txs = {log["transactionHash"] for log in before}
    assert before, "traffic left no Transfer logs in the blocks to orphan"

    result = await traffic.reorg(depth)

    assert result.fork_point == fork_point
    assert await anvil.block_number() == head
    assert all(o != n for o, n in zip(result.old_hashes, result.new_hashes, strict=True))
    below_after = await anvil.rpc("eth_getBlockByNumber", [hex(fork_point - 1), False])
    assert below_after["hash"] == below_before["hash"]
    first_new = await anvil.rpc("eth_getBlockByNumber", [hex(fork_point), False])
    assert first_new["parentHash"] == below_before["hash"]

    after = await token.transfer_logs(fork_point, head)
    key = lambda log: (log["topics"][1], log["topics"][2], log["data"])  # noqa: E731
    assert {key(x) for x in after} != {key(x) for x in before}
    assert orphan_txs.isdisjoint({log["transactionHash"] for log in after})
    assert all(log["blockHash"] in result.new_hashes for log in after)
    for tx in orphan_txs:  # orphaned transactions are gone, not re-mined
        assert await anvil.rpc("eth_getTransactionReceipt", [tx]) is None

    # The chain stays self-consistent: its supply and balances equal what its logs say.
    supply, balances = _ledger(await token.transfer_logs(0, "latest"))
    assert await token.total_supply() == supply
    for holder in traffic.holders:
        assert await token.balance_of(holder) == balances[holder.lower()]

    # Traffic continues normally after the reorg (holders are re-funded with gas lazily).
    await traffic.run(6)
    supply, _ = _ledger(await token.transfer_logs(0, "latest"))
    assert await token.total_supply() == supply


async def test_traffic_mixes_operations_and_reverts(anvil: Anvil, traffic: Traffic) -> None:
    await traffic.run(40)
    holder = traffic.holders[0]
    await traffic.failing_transfer(holder, await traffic.token.balance_of(holder))
    head = await anvil.block_number()
    statuses: Counter[int] = Counter()
    for n in range(2, head + 1):
        block = await anvil.rpc("eth_getBlockByNumber", [hex(n), False])
        for tx in block["transactions"]:
            receipt = await anvil.rpc("eth_getTransactionReceipt", [tx])
            statuses[int(receipt["status"], 16)] += 1
            if receipt["status"] == "0x0":
                assert receipt["logs"] == []
    assert statuses[0] >= 1 and statuses[1] >= 20
    logs = await traffic.token.transfer_logs()
    kinds = Counter(
        e.kind.value for e in decode_logs("devnet", logs, LogDispatch.build(traffic.token.address)).events
    )
    assert kinds["mint"] > 0 and kinds["transfer"] > 0 and kinds["burn"] > 0
    supply, balances = _ledger(logs)
    assert await traffic.token.total_supply() == supply
    assert sum(balances.values()) == supply


async def test_evm_devnet_runs_traffic_and_reorgs_on_two_chains() -> None:
    specs = [
        DevnetChainSpec(name="t-a", port=0, chain_id=31337, block_time=0.5, seed=1, holders=6),
        DevnetChainSpec(name="t-b", port=0, chain_id=31338, block_time=0.5, seed=2, holders=6),
    ]
    devnet = await start_evm_devnet(specs, reorg_every=1.2, ops_per_second=10.0)
    async with devnet:
        assert [c.url for c in devnet.chains] == [c.anvil.url for c in devnet.chains]
        for c in devnet.chains:
            assert c.token_address == DETERMINISTIC_TOKEN_ADDRESS
            assert int(await c.anvil.rpc("eth_chainId"), 16) == c.spec.chain_id
        await asyncio.sleep(3.0)
        for c in devnet.chains:
            head = await c.anvil.block_number()
            assert head >= 4
            assert await c.anvil.block_number("finalized") == head - 4
            assert c.reorgs >= 1, c.traffic.stats
            assert c.errors == 0, c.traffic.history
            supply, _ = _ledger(await c.token.transfer_logs(0, head))
            assert supply > 0
            assert await c.token.total_supply(head) == supply
    for c in devnet.chains:
        assert not c.anvil.running


async def test_usd1_devnet_chain_runs_the_real_usd1_with_owner_traffic_and_reorgs() -> None:
    """A `token="usd1"` chain: the real USD1 proxy at DEVNET_USD1_ADDRESS (its ProxyAdmin and
    implementation at theirs), traffic within USD1's mint-to-owner rule, reorgs; the deployment's
    control events are two hours old in block time, the blocks after it are current."""
    spec = DevnetChainSpec(
        name="t-usd1", port=0, chain_id=31339, block_time=0.5, seed=3, holders=6, token="usd1"
    )
    devnet = await start_evm_devnet([spec], reorg_every=1.5, ops_per_second=10.0)
    async with devnet:
        (c,) = devnet.chains
        assert c.usd1 is not None and c.token_address == DEVNET_USD1_ADDRESS == c.usd1.token.address
        assert c.usd1.proxy_admin.address == DEVNET_USD1_PROXY_ADMIN_ADDRESS
        assert c.usd1.implementation == DEVNET_USD1_IMPLEMENTATION_ADDRESS
        assert await c.usd1.token.implementation() == DEVNET_USD1_IMPLEMENTATION_ADDRESS
        assert (await c.usd1.token.current_owner()).lower() == ANVIL_ACCOUNT0
        deployed = c.usd1.proxy_receipt.block_number
        block = await c.anvil.rpc("eth_getBlockByNumber", [hex(deployed), False])
        assert time.time() - int(block["timestamp"], 16) > USD1_DEPLOYMENT_AGE - 60
        await asyncio.sleep(4.0)
        head = await c.anvil.block_number()
        latest = await c.anvil.rpc("eth_getBlockByNumber", [hex(head), False])
        # current, not in the deployment's past (two hours); loaded CI machines lag a few seconds
        assert abs(time.time() - int(latest["timestamp"], 16)) < 60
        assert c.reorgs >= 1 and c.errors == 0, (c.traffic.stats, c.traffic.history)
        ops = c.traffic.stats.ops
        assert ops.get("mint", 0) > 0 and ops.get("distribute", 0) > 0, ops
        logs = await c.token.transfer_logs(0, head)
        supply, balances = _ledger(logs)
        assert supply > 0 and await c.token.total_supply(head) == supply
        holders_paid = [h for h in c.traffic.holders if balances[h.lower()] > 0]
        assert holders_paid
        for h in holders_paid:
            assert await c.token.balance_of(h, head) == balances[h.lower()], h
        # Mints go to the owner only (USD1's rule): every Transfer from 0x0 is to the owner.
        mints = [lg for lg in logs if _topic_addr(lg["topics"][1]) == ZERO_ADDRESS]
        assert mints and {_topic_addr(lg["topics"][2]) for lg in mints} == {ANVIL_ACCOUNT0}
