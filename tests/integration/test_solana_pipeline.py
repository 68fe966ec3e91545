"""Solana through the whole path: LiteSVM devnet (real SPL Token and Token-2022 programs) ->
SolanaSource -> reorg/finality -> PostgreSQL. Ground truth: the devnet's own accounts and supply."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from indexer.config import Config
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SolanaTraffic
from indexer.runtime import open_runtime
from indexer.sync.supervisor import Supervisor

pytestmark = pytest.mark.integration
CHAIN = "sol"


def token_amount(dn: SolanaDevnet, account: Pubkey, commitment: str) -> int:
    acct = dn.ledger.account(account, commitment)  # type: ignore[arg-type]
    return 0 if acct is None else int.from_bytes(bytes(acct.data)[64:72], "little")


def mint_supply(dn: SolanaDevnet, mint: Pubkey, commitment: str) -> int:
    acct = dn.ledger.account(mint, commitment)  # type: ignore[arg-type]
    assert acct is not None
    return int.from_bytes(bytes(acct.data)[36:44], "little")


async def until(cond: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


@pytest.fixture(params=[TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID], ids=["token", "token2022"])
async def net(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SolanaDevnet, SolanaTraffic]]:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=5) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=5, owners=8, program_id=request.param)
        traffic.setup()
        dn.advance(1)
        yield dn, traffic


async def test_solana_follow_with_fork(
    net: tuple[SolanaDevnet, SolanaTraffic], dsn: str, tmp_path: Path
) -> None:
    dn, traffic = net
    cfg = Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp_path),
            "chains": [
                {
                    "name": CHAIN,
                    "kind": "solana",
                    "rpc": [dn.url],
                    "mint": traffic.mint_address,
                    "decimals": 6,
                    "finality": {"commitment": "finalized"},
                    "poll_interval": "50ms",
                }
            ],
        }
    )
    rng = random.Random(3)
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]
        forks = 0
        for i in range(60):
            traffic.step(rng)
            dn.advance(1, skip=rng.random() < 0.15)
            await asyncio.sleep(0.01)
            if i % 20 == 19:
                tip = dn.ledger.commitment_slot("confirmed")
                await until(lambda tip=tip: status.indexed >= tip, 15, "the follower to reach the tip")
                dropped = dn.fork()  # drops the provisional slots above finalized
                assert dropped
                forks += 1
        dn.advance(12)  # finalize everything
        fin_slot = dn.ledger.commitment_slot("finalized")
        await until(lambda: status.indexed_finalized >= fin_slot, 20, "finalization")
        await until(lambda: status.mismatch_block is not None and status.mismatch == 0, 20, "supply check")
        stop.set()
        await task

        fin = status.indexed_finalized
        assert (await rt.store.supply_at(CHAIN, fin)).supply == mint_supply(dn, traffic.mint, "finalized")
        for ata in traffic.atas:
            assert await rt.store.balance(CHAIN, str(ata), fin) == token_amount(dn, ata, "finalized")
        dup = await rt.pool.fetchval(
            "SELECT count(*) - count(DISTINCT (block_hash, tx_hash, log_index)) FROM events WHERE chain = $1",
            CHAIN,
        )
        assert dup == 0
        kinds = {r["kind"] for r in await rt.pool.fetch("SELECT DISTINCT kind FROM events")}
        assert kinds == {"mint", "burn", "transfer"}
        assert len(await rt.store.reorgs(CHAIN)) >= 1, "no fork was observed by the follower"
