"""Finality breaks on real parts: anvil reorgs deeper than the finality rule (while the daemon
follows the head and while it is stopped; one endpoint, and three where one lies), and LiteSVM
devnet forks below the confirmed and the finalized slot. Each must halt the chain: state
`halted`, `usd1_finality_violation{chain}` = 1, one critical log naming the block, the stored hash,
the new hash and which endpoints said what; and nothing final changes in the store. A lying
minority endpoint must not halt anything: it is outvoted and the index stays exact.

The lying endpoint is a second anvil cloned from the first one's state (`Anvil.clone`): the same
history up to the clone, then its own blocks — a consistent, hash-linked alternative chain."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from indexer.config import Config
from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import SolanaTraffic
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import Runtime, open_runtime
from indexer.sync.status import State
from indexer.sync.supervisor import Supervisor
from tests.integration.test_evm_pipeline import wait_for
from tests.support.chain_truth import chain_transfer_events, indexed_events

pytestmark = pytest.mark.integration
CHAIN = "devnet"
SOL = "sol"


def config(dsn: str, tmp: Path, chain: dict[str, Any]) -> Config:
    return Config.model_validate({"database": {"dsn": dsn}, "data_dir": str(tmp), "chains": [chain]})


def evm_chain(urls: list[str], token: str, finality: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": CHAIN,
        "kind": "evm",
        "rpc": urls,
        "token": token,
        "finality": finality or {"tag": "finalized"},
        "poll_interval": "50ms",
        "request_timeout": "2s",
        "audit": {"enabled": False},
    }


def sol_chain(url: str, mint: str, commitment: str) -> dict[str, Any]:
    return {
        "name": SOL,
        "kind": "solana",
        "rpc": [url],
        "mint": mint,
        "decimals": 6,
        "finality": {"commitment": commitment},
        "poll_interval": "50ms",
        "audit": {"enabled": False},
    }


@contextlib.asynccontextmanager
async def following(cfg: Config) -> AsyncIterator[Runtime]:
    """The runtime with its supervisor running until the block exits."""
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        try:
            yield rt
        finally:
            stop.set()
            await task


async def final_state(pool: asyncpg.Pool, chain: str) -> tuple[Any, ...]:
    """Everything the index holds as final: the finalized height, events, supply rows and the
    anchor block at or below it."""
    fin = await pool.fetchval("SELECT finalized_number FROM cursors WHERE chain = $1", chain)
    events = await pool.fetch(
        "SELECT block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount FROM events"
        " WHERE chain = $1 AND block_number <= $2 ORDER BY block_number, log_index, tx_hash",
        chain,
        fin,
    )
    supply = await pool.fetch(
        "SELECT block_number, block_hash, minted, burned FROM supply WHERE chain = $1 AND block_number <= $2"
        " ORDER BY block_number",
        chain,
        fin,
    )
    return fin, [tuple(r) for r in events], [tuple(r) for r in supply]


async def stored_hash(pool: asyncpg.Pool, chain: str, number: int) -> str | None:
    """The hash the index holds at `number`: a kept block ref, or an event's block there."""
    got = await pool.fetchval("SELECT hash FROM blocks WHERE chain = $1 AND number = $2", chain, number)
    if got is None:
        got = await pool.fetchval(
            "SELECT block_hash FROM events WHERE chain = $1 AND block_number = $2 LIMIT 1", chain, number
        )
    return str(got) if got is not None else None


def assert_halted(rt: Runtime, chain: str, logs: list[dict[str, Any]]) -> dict[str, Any]:
    status = rt.statuses[chain]
    assert status.state() == State.HALTED, (status.phase, status.last_error)
    m = rt.metrics.registry.get_sample_value
    assert m("usd1_finality_violation", {"chain": chain}) == 1
    assert m("usd1_chain_state", {"chain": chain, "state": "halted"}) == 1
    crit = [e for e in logs if e["event"] == "finality_violation_chain_halted"]
    assert len(crit) == 1, [e["event"] for e in logs if e["log_level"] in ("error", "critical")]
    assert crit[0]["log_level"] == "critical"
    entry = crit[0]
    assert {"block", "stored_hash", "new_hash", "endpoints"} <= set(entry)
    assert entry["stored_hash"] != entry["new_hash"]
    # The endpoints map covers every configured endpoint that answered, each with what it said.
    assert set(entry["endpoints"]) <= set(rt.sources[chain].endpoints())
    assert entry["endpoints"], entry
    return entry


# ---------------------------------------------------------------------------------------------
# EVM: anvil reorgs deeper than `finality: {tag: finalized}` (finalized = head - 4)


async def _index_to_tip(rt: Runtime, anvil: Anvil) -> None:
    status = rt.statuses[CHAIN]
    tip = await anvil.block_number()
    await wait_for(lambda: status.phase == State.LIVE and status.indexed >= tip, 30, "live at the tip")
    await wait_for(lambda: status.indexed_finalized >= tip - 4, 10, "finality of tip - 4")


@pytest.mark.parametrize(
    ("mode", "rule"),
    [
        ("live", {"tag": "finalized"}),
        ("live", {"tag": "safe"}),
        ("live", {"confirmations": 3}),
        ("stopped", {"tag": "finalized"}),
    ],
    ids=["live-finalized", "live-safe", "live-confirmations", "stopped-finalized"],
)
async def test_evm_deep_reorg_with_one_endpoint_halts(
    anvil: Anvil,
    token: TestToken,
    traffic: Traffic,
    dsn: str,
    tmp_path: Path,
    mode: str,
    rule: dict[str, Any],
) -> None:
    await traffic.run(12)
    cfg = config(dsn, tmp_path, evm_chain([anvil.url], token.address, rule))
    with capture_logs() as logs:
        async with following(cfg) as rt:
            await _index_to_tip(rt, anvil)
            before = await final_state(rt.pool, CHAIN)
            if mode == "live":
                result = await traffic.reorg(8)  # the fork point is final
                await anvil.mine(1)
                await wait_for(lambda: rt.statuses[CHAIN].state() == State.HALTED, 20, "the chain to halt")
                await asyncio.sleep(0.3)  # nothing more happens: one critical line, no retries
                crit = assert_halted(rt, CHAIN, logs)
                assert await final_state(rt.pool, CHAIN) == before
        if mode == "stopped":
            result = await traffic.reorg(8)
            await anvil.mine(1)
            async with following(cfg) as rt:
                await wait_for(lambda: rt.statuses[CHAIN].state() == State.HALTED, 20, "the chain to halt")
                await asyncio.sleep(0.3)
                crit = assert_halted(rt, CHAIN, logs)
                assert await final_state(rt.pool, CHAIN) == before
    assert result.fork_point <= before[0]
    # The bug this pins: with one endpoint, its new answer used to be "outvoted" by its old one.
    assert not [e for e in logs if e["event"] in ("rpc_contradiction", "sync_step_failed")]
    (label,) = rt.sources[CHAIN].endpoints()
    block = crit["block"]
    assert result.fork_point <= block <= before[0]
    assert crit["new_hash"] == result.new_hashes[block - result.fork_point]
    assert crit["endpoints"] == {label: crit["new_hash"]}
    assert crit["stored_hash"] == result.old_hashes[block - result.fork_point]


async def test_evm_deep_reorg_with_one_dissenting_endpoint_of_three_halts(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    """Two endpoints in front of the node that reorgs deeply, a third (a clone of its old chain)
    still serving the old blocks: the majority says the final block changed, so it did."""
    await traffic.run(12)
    async with FaultProxy(anvil.url) as p1, FaultProxy(anvil.url) as p2:
        twin: Anvil | None = None
        try:
            with capture_logs() as logs:
                async with following(config(dsn, tmp_path, evm_chain([p1.url, p2.url], token.address))) as rt:
                    await _index_to_tip(rt, anvil)
                    before = await final_state(rt.pool, CHAIN)
                twin = await anvil.clone(tmp_path)  # keeps the chain as it is now
                result = await traffic.reorg(8)
                await anvil.mine(1)
                urls = [p1.url, p2.url, twin.url]
                async with following(config(dsn, tmp_path, evm_chain(urls, token.address))) as rt:
                    await wait_for(
                        lambda: rt.statuses[CHAIN].state() == State.HALTED, 30, "the chain to halt"
                    )
                    crit = assert_halted(rt, CHAIN, logs)
                    assert await final_state(rt.pool, CHAIN) == before
        finally:
            if twin is not None:
                await twin.stop()
    labels = rt.sources[CHAIN].endpoints()
    votes = crit["endpoints"]
    block = crit["block"]
    new, old = result.new_hashes[block - result.fork_point], result.old_hashes[block - result.fork_point]
    assert votes[labels[0]] == votes[labels[1]] == new == crit["new_hash"]
    assert votes.get(labels[2], old) == old == crit["stored_hash"]


async def test_evm_lying_endpoint_of_three_is_outvoted(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    """The primary endpoint serves a consistent alternative chain that left the real one below
    its finalized height: it is penalized, never halts the chain, and nothing of it is stored."""
    await traffic.run(6)
    liar = await anvil.clone(tmp_path)
    try:
        fake = TestToken(liar, token.address)
        for _ in range(3):  # the liar's own history: different blocks and token events
            await fake.mint("0x" + "ab" * 20, 10**20)
        await liar.mine(8)
        await traffic.run(12)  # the real chain moves on
        head = await anvil.block_number()
        async with FaultProxy(anvil.url) as p1, FaultProxy(anvil.url) as p2:
            urls = [liar.url, p1.url, p2.url]
            with capture_logs() as logs:
                async with following(config(dsn, tmp_path, evm_chain(urls, token.address))) as rt:
                    status = rt.statuses[CHAIN]
                    await wait_for(lambda: status.indexed >= head, 40, "the real head")
                    await traffic.run(4)
                    head = await anvil.block_number()
                    await wait_for(lambda: status.indexed >= head, 40, "the real head again")
                    assert status.state() == State.LIVE
                    blamed = rt.metrics.registry.get_sample_value(
                        "usd1_rpc_requests_total",
                        {
                            "chain": CHAIN,
                            "endpoint": rt.sources[CHAIN].endpoints()[0],
                            "outcome": "contradiction",
                        },
                    )
                    got = await indexed_events(rt.pool, CHAIN)
    finally:
        await liar.stop()
    assert blamed and blamed >= 1
    assert not [e for e in logs if e["event"] == "finality_violation_chain_halted"]
    truth = await chain_transfer_events(anvil, token.address, head)
    assert set(got) == truth and len(got) == len(truth)


# ---------------------------------------------------------------------------------------------
# Solana: LiteSVM devnet forks below the index's final slot, for both commitments


@pytest.fixture
async def sol_net() -> AsyncIterator[tuple[SolanaDevnet, SolanaTraffic]]:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=11) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=11, owners=6)
        traffic.setup()
        dn.advance(1)
        yield dn, traffic


def _run_slots(dn: SolanaDevnet, traffic: SolanaTraffic, rng: random.Random, slots: int) -> None:
    for _ in range(slots):
        traffic.step(rng)
        dn.advance(1, skip=rng.random() < 0.2)


@pytest.mark.parametrize(
    ("commitment", "mode", "reuse_slots"),
    [
        ("confirmed", "live", False),
        ("confirmed", "live", True),
        ("confirmed", "stopped", False),
        ("finalized", "live", False),
        ("finalized", "live", True),
        ("finalized", "stopped", True),
    ],
)
async def test_solana_fork_below_the_final_slot_halts(
    sol_net: tuple[SolanaDevnet, SolanaTraffic],
    dsn: str,
    tmp_path: Path,
    commitment: str,
    mode: str,
    reuse_slots: bool,
) -> None:
    dn, traffic = sol_net
    rng = random.Random(4)
    _run_slots(dn, traffic, rng, 40)
    cfg = config(dsn, tmp_path, sol_chain(dn.url, traffic.mint_address, commitment))
    led = dn.ledger

    async def caught_up(rt: Runtime) -> int:
        st = rt.statuses[SOL]
        tip = led.commitment_slot("confirmed")
        fin = led.commitment_slot(commitment)  # type: ignore[arg-type]
        await wait_for(lambda: st.indexed >= tip and st.indexed_finalized >= fin, 20, "the index at the tip")
        return st.indexed_finalized

    def fork_below(final: int) -> int:
        # The last block 3+ slots below what the index holds as final: final blocks are dropped.
        slots = [s for s in led.block_slots(0, final) if s <= final - 3]
        at = slots[-1]
        dropped = led.fork(at, reuse_slots=reuse_slots, below_finalized=True)
        assert dropped and dropped[0] <= final
        _run_slots(dn, traffic, rng, 12)
        return at

    with capture_logs() as logs:
        async with following(cfg) as rt:
            final = await caught_up(rt)
            before = await final_state(rt.pool, SOL)
            if mode == "live":
                at = fork_below(final)
                await wait_for(lambda: rt.statuses[SOL].state() == State.HALTED, 20, "the chain to halt")
                crit = assert_halted(rt, SOL, logs)
                assert await final_state(rt.pool, SOL) == before
                held = await stored_hash(rt.pool, SOL, crit["block"])
        if mode == "stopped":
            at = fork_below(final)
            async with following(cfg) as rt:
                await wait_for(lambda: rt.statuses[SOL].state() == State.HALTED, 20, "the chain to halt")
                crit = assert_halted(rt, SOL, logs)
                assert await final_state(rt.pool, SOL) == before
                held = await stored_hash(rt.pool, SOL, crit["block"])
    block = crit["block"]
    assert at < block <= final
    # What the index held there (a block, or "none" for a slot it held as empty) and what the
    # devnet has there now.
    assert crit["stored_hash"] == (held or "none")
    now = led.blocks.get(block)
    assert crit["new_hash"] == (now.blockhash if now is not None else "none")
    assert list(crit["endpoints"].values()) == [crit["new_hash"]]
    assert not [e for e in logs if e["event"] == "supply_mismatch"], "caught before any supply check"


async def test_solana_slot_reusing_forks_record_the_exact_ancestor(
    sol_net: tuple[SolanaDevnet, SolanaTraffic], dsn: str, tmp_path: Path
) -> None:
    """Forks above the finalized slot that refill the dropped slot numbers with new blocks: each
    reorg record names the fork point itself as the ancestor (the last common block)."""
    dn, traffic = sol_net
    rng = random.Random(9)
    led = dn.ledger
    _run_slots(dn, traffic, rng, 30)
    cfg = config(dsn, tmp_path, sol_chain(dn.url, traffic.mint_address, "finalized"))
    forks: list[int] = []
    async with following(cfg) as rt:
        st = rt.statuses[SOL]
        for _ in range(4):
            tip = led.commitment_slot("confirmed")
            await wait_for(lambda tip=tip: st.indexed >= tip, 20, "the index at the tip")
            unfinal = [s for s in led.block_slots(led.commitment_slot("finalized"), st.indexed)]
            at = unfinal[len(unfinal) // 2]  # keep some indexed blocks above finality
            assert led.fork(at, reuse_slots=True)
            forks.append(at)
            _run_slots(dn, traffic, rng, 10)
        tip = led.commitment_slot("confirmed")
        await wait_for(lambda: st.indexed >= tip, 20, "the index at the tip")
        rows = await rt.store.reorgs(SOL)
        assert st.state() == State.LIVE
    assert sorted(r["ancestor_number"] for r in rows) == sorted(forks)


async def test_backfill_cli_exits_4_on_a_finality_violation(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    """`usd1-indexer backfill` to the finalized head, a reorg below it, a second backfill: its
    first range no longer follows the cursor, so the chain halts and the command says so."""
    import subprocess

    from tests.integration.test_cli_daemon import cli, write_config

    await traffic.run(10)
    cfg = write_config(tmp_path / "c.yaml", anvil.url, token.address, dsn)
    first = subprocess.run(
        cli("backfill", "--config", str(cfg), "--no-progress"), capture_output=True, timeout=120
    )
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    result = await traffic.reorg(8)  # reaches below the first backfill's cursor (head - 4)
    await anvil.mine(6)
    second = subprocess.run(
        cli("backfill", "--config", str(cfg), "--no-progress"), capture_output=True, timeout=120
    )
    err = second.stderr.decode()
    assert second.returncode == 4, err[-2000:]
    assert "finality violation, chain halted" in err
    assert "finality_violation_chain_halted" in err and any(h in err for h in result.new_hashes)
    assert "Traceback" not in err
