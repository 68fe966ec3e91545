"""Bridges end to end on real parts (issue #16 item 2): three anvil chains running the devnet
TestToken, two `native` ones each with a lock pool for `ccip` (at the address of CCIP's real
Ethereum pool, realdata/ccip) and one `bridged` by `ccip`. Random bridge traffic (lock on a native
chain + mint on the bridged one, burn + release back, transfers) through the daemon's followers
into PostgreSQL; then the global circulating figure and the backing gap, from the API, the metric
and the CLI, are compared to the base unit with the chains' own `balanceOf` / `totalSupply` at the
finalized blocks. An unbacked mint on the bridged chain turns the gap positive by exactly its
amount; one at head moves only the head gap, until a reorg drops it."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.config import Config
from indexer.devnet.anvil import Anvil
from indexer.devnet.solc import Artifact
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken
from indexer.devnet.traffic import holder_addresses
from indexer.sync.supply_classes import SupplyClassesExporter
from indexer.units import to_float
from tests.integration.test_evm_pipeline import wait_for
from tests.support import daemon_run

pytestmark = pytest.mark.integration
NATIVE, NATIVE2, BRIDGED = "native", "native2", "bridged"
POOL = "0x36a72ed0096b414521c45e3ddc9ed657d1d9c141"  # CCIP's Hybrid pool on Ethereum (realdata/ccip)
ALLOWANCE = "0.000000000000000005"  # 5 base units in flight allowed


async def _anvil(chain_id: int) -> AsyncIterator[Anvil]:
    node = Anvil(port=0, chain_id=chain_id, slots_in_an_epoch=2)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def remote() -> AsyncIterator[Anvil]:
    async for node in _anvil(31338):
        yield node


@pytest.fixture
async def second() -> AsyncIterator[Anvil]:
    async for node in _anvil(31339):
        yield node


def config_dict(native: Anvil, second: Anvil, remote: Anvil, dsn: str, tmp: Path) -> dict[str, Any]:
    chain: dict[str, Any] = {
        "kind": "evm",
        "token": DETERMINISTIC_TOKEN_ADDRESS,
        "decimals": 18,
        "finality": {"tag": "finalized"},
        "poll_interval": "50ms",
        "request_timeout": "5s",
    }
    lock = {"bridge": "ccip", "non_circulating": [{"address": POOL, "label": "bridge_lock"}]}
    return {
        "database": {"dsn": dsn},
        "data_dir": str(tmp),
        "chains": [
            {**chain, "name": NATIVE, "rpc": [native.url], **lock},
            {**chain, "name": NATIVE2, "rpc": [second.url], **lock},
            {**chain, "name": BRIDGED, "rpc": [remote.url], "role": "bridged", "bridge": "ccip"},
        ],
        "bridges": [{"name": "ccip", "in_flight_allowance_tokens": ALLOWANCE}],
    }


class Running(daemon_run.Running):
    async def settled(self, *nodes: tuple[str, Anvil]) -> dict[str, int]:
        """Mine past finality on each chain, wait until both are indexed there; the finalized
        block per chain."""
        out = {}
        for name, node in nodes:
            await node.mine(6)
            head = await node.block_number()
            st = self.rt.statuses[name]
            await wait_for(
                lambda st=st, head=head: st.indexed == head and st.indexed_finalized >= head - 4, 30, name
            )
            out[name] = await node.block_number("finalized")
        return out


def running(cfg: Config) -> contextlib.AbstractAsyncContextManager[Running]:
    return daemon_run.running(cfg, NATIVE, Running)


async def test_global_circulating_and_gap_exact_against_the_chains(
    anvil: Anvil,
    token: TestToken,
    second: Anvil,
    remote: Anvil,
    token_artifact: Artifact,
    dsn: str,
    tmp_path: Path,
) -> None:
    """Two native chains, each with a lock pool for ccip, and one chain bridged by ccip."""
    bridged = await TestToken.deploy(remote, token_artifact, expect_address=DETERMINISTIC_TOKEN_ADDRESS)
    token2 = await TestToken.deploy(second, token_artifact, expect_address=DETERMINISTIC_TOKEN_ADDRESS)
    natives = {NATIVE: (anvil, token), NATIVE2: (second, token2)}
    nodes = {NATIVE: anvil, NATIVE2: second, BRIDGED: remote}
    raw = config_dict(anvil, second, remote, dsn, tmp_path)
    cfg = Config.model_validate(raw)
    holders = [h.lower() for h in holder_addresses(7, 6)]
    rng = random.Random(16)
    async with running(cfg) as run:
        for h in holders:
            for _, t in natives.values():
                await t.mint(h, rng.randrange(10**20, 10**21))
        locked_by_us = 0
        for _ in range(50):
            op = rng.choice(["out", "out", "back", "native", "remote"])
            h, other = rng.sample(holders, 2)
            token = natives[rng.choice([NATIVE, NATIVE2])][1]
            if op == "out":  # lock on the native chain, then mint the same amount on the bridged one
                amount = rng.randrange(1, await token.balance_of(h) // 2 + 2)
                if amount <= await token.balance_of(h):
                    await token.transfer(h, POOL, amount)
                    await bridged.mint(other, amount)
                    locked_by_us += amount
            elif op == "back":  # burn on the bridged chain, release from the pool
                have = min(await bridged.balance_of(h), await token.balance_of(POOL))
                if have:
                    amount = rng.randrange(1, have + 1)
                    await bridged.burn(h, amount)
                    await token.transfer(POOL, other, amount)
                    locked_by_us -= amount
            elif op == "native":
                have = await token.balance_of(h)
                if have:
                    await token.transfer(h, other, rng.randrange(1, have + 1))
            else:
                have = await bridged.balance_of(h)
                if have:
                    await bridged.transfer(h, other, rng.randrange(1, have + 1))
        assert locked_by_us > 0
        assert all([await t.balance_of(POOL) > 0 for _, t in natives.values()])  # both pools lock

        async def check(expected_gap: int) -> None:
            fin = await run.settled((NATIVE, anvil), (NATIVE2, second), (BRIDGED, remote))
            metrics = run.rt.metrics
            assert await SupplyClassesExporter(cfg, run.rt.pool, metrics).refresh()
            body = await run.get("/api/v1/supply")
            native_total = sum([await t.total_supply(fin[name]) for name, (_, t) in natives.items()])
            lock = sum([await t.balance_of(POOL, fin[name]) for name, (_, t) in natives.items()])
            minted = await bridged.total_supply(fin[BRIDGED])
            b = body["bridges"]["ccip"]
            assert (b["native_chains"], b["bridged_chains"], b["decimals"]) == (
                [NATIVE, NATIVE2],
                [BRIDGED],
                18,
            )
            assert b["in_flight_allowance"] == {"raw": "5", "amount": ALLOWANCE}
            assert int(b["finalized"]["locked"]["raw"]) == lock
            assert int(b["finalized"]["minted"]["raw"]) == minted
            gap = int(b["finalized"]["gap"]["raw"])
            assert gap == minted - lock - 5 == expected_gap
            # each token once: the locked tokens are circulating on the bridged chain only
            circulating = int(body["total"]["circulating"]["finalized"]["raw"])
            assert circulating == native_total - lock + minted
            assert circulating != int(body["total"]["finalized"]["raw"]) or lock == 0
            assert metrics.registry.get_sample_value(
                "usd1_bridge_backing_gap_tokens", {"bridge": "ccip"}
            ) == (to_float(gap, 18))
            got = metrics.registry.get_sample_value(
                "usd1_supply_circulating_total", {"finality": "finalized"}
            )
            assert got == to_float(circulating, 18)

        # Every lock minted its twin: fully backed, the allowance below zero.
        await check(-5)
        # An unbacked mint on the bridged chain (no lock): the gap goes positive by its amount.
        await bridged.mint(holders[0], 10**18 + 12)
        await check(10**18 + 7)
        gauge = run.rt.metrics.registry.get_sample_value
        assert gauge("usd1_bridge_backing_gap_tokens", {"bridge": "ccip"}) == to_float(10**18 + 7, 18) > 0

        # The attestation package at a final time: each chain's block at or before it, the bridge
        # figures exact against the chains at those blocks.
        # (blocks of one second share a timestamp: TIME is the newest head's, and blocks mined a
        # second later make every block at or before it final)
        heads = [await node.rpc("eth_getBlockByNumber", ["latest", False]) for node in nodes.values()]
        t0 = max(int(h["timestamp"], 16) for h in heads)
        await asyncio.sleep(1.1)
        await run.settled(*nodes.items())
        at = await run.get("/api/v1/supply/at", time=str(t0))
        block = {c["chain"]: c["block"]["number"] for c in at["chains"]}
        g = at["global"]
        assert g["bridges_deduplicated"] is True
        lock = sum([await t.balance_of(POOL, block[name]) for name, (_, t) in natives.items()])
        minted = await bridged.total_supply(block[BRIDGED])
        assert int(g["bridges"]["ccip"]["locked"]["raw"]) == lock
        assert int(g["bridges"]["ccip"]["minted"]["raw"]) == minted
        assert int(g["bridges"]["ccip"]["gap"]["raw"]) == minted - lock - 5
        native_total = sum([await t.total_supply(block[name]) for name, (_, t) in natives.items()])
        assert int(g["circulating"]["raw"]) == native_total - lock + minted

        # At head only: an unbacked mint shows in the API's head gap, not in the finalized metric;
        # a reorg that drops its block takes it out again.
        await bridged.mint(holders[1], 3)
        await until_head_gap(run, 10**18 + 10)
        assert await SupplyClassesExporter(cfg, run.rt.pool, run.rt.metrics).refresh()
        assert gauge("usd1_bridge_backing_gap_tokens", {"bridge": "ccip"}) == to_float(10**18 + 7, 18)
        await remote.rpc("anvil_reorg", [1, []])
        await until_head_gap(run, 10**18 + 7)
        assert (gauge("usd1_reorgs_total", {"chain": BRIDGED}) or 0) >= 1

        # The CLI's table/csv gains the global circulating row and each bridge's gap row.
        path = tmp_path / "bridges.yaml"
        path.write_text(yaml.safe_dump(raw))
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "indexer", "query", "supply", "--config", str(path), "--format", "csv"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        rows = {r["chain"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
        body = await run.get("/api/v1/supply")
        assert rows["gap ccip"]["finalized"] == rows["gap ccip"]["head"] == "1.000000000000000007"
        assert rows["circulating"]["finalized"] == body["total"]["circulating"]["finalized"]["amount"]


async def until_head_gap(run: Running, want: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    got = None
    while time.monotonic() < deadline:
        b = (await run.get("/api/v1/supply"))["bridges"]["ccip"]["head"]
        got = None if b["gap"] is None else int(b["gap"]["raw"])
        if got == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"head gap {got}, expected {want}")
