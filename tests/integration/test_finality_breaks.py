"""Finality breaks on real parts: anvil reorgs deeper than the finality rule (while the daemon
follows the head and while it is stopped; one endpoint, and three where one lies), and LiteSVM
devnet forks below the confirmed and the finalized slot. Each must halt the chain: state
`halted`, `usd1_finality_violation{chain}` = 1, one critical log naming the block, the stored hash,
the new hash and which endpoints said what; and nothing final changes in the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from structlog.testing import capture_logs

from indexer.config import Config
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import Runtime, open_runtime
from indexer.sync.status import State
from indexer.sync.supervisor import Supervisor

pytestmark = pytest.mark.integration
CHAIN = "devnet"


async def wait_for(cond: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


def evm_config(urls: list[str], token: str, dsn: str, tmp: Path, **chain: Any) -> Config:
    return Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp),
            "chains": [
                {
                    "name": CHAIN,
                    "kind": "evm",
                    "rpc": urls,
                    "token": token,
                    "finality": {"tag": "finalized"},
                    "poll_interval": "50ms",
                    "request_timeout": "2s",
                    **chain,
                }
            ],
        }
    )


class Running:
    """A runtime with its supervisor running in the background."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await self.task


async def final_rows(pool: asyncpg.Pool, chain: str, upto: int) -> list[tuple[Any, ...]]:
    """Every stored event at or below `upto` (the index's finalized height), in order."""
    rows = await pool.fetch(
        "SELECT block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount FROM events"
        " WHERE chain = $1 AND block_number <= $2 ORDER BY block_number, log_index",
        chain,
        upto,
    )
    return [tuple(r) for r in rows]


def assert_halted(rt: Runtime, chain: str, logs: list[dict[str, Any]]) -> dict[str, Any]:
    status = rt.statuses[chain]
    assert status.state() == State.HALTED, status
    m = rt.metrics.registry.get_sample_value
    assert m("usd1_finality_violation", {"chain": chain}) == 1
    assert m("usd1_chain_state", {"chain": chain, "state": "halted"}) == 1
    crit = [e for e in logs if e["event"] == "finality_violation_chain_halted"]
    assert len(crit) == 1, [e["event"] for e in logs]
    assert crit[0]["log_level"] == "critical"
    return crit[0]


@pytest.fixture
async def evm_running(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Any] = []

    async def start(urls: list[str]) -> Running:
        cm = open_runtime(evm_config(urls, token.address, dsn, tmp_path))
        rt = await cm.__aenter__()
        opened.append(cm)
        run = Running(rt)
        opened.append(run)
        return run

    yield start
    for item in reversed(opened):
        if isinstance(item, Running):
            await item.close()
        else:
            await item.__aexit__(None, None, None)


async def test_evm_deep_reorg_while_live_one_endpoint_halts(
    anvil: Anvil, token: TestToken, traffic: Traffic, evm_running: Callable[..., Any]
) -> None:
    await traffic.run(12)
    with capture_logs() as logs:
        run = await evm_running([anvil.url])
        status = run.rt.statuses[CHAIN]
        tip = await anvil.block_number()
        await wait_for(lambda: status.phase == State.LIVE and status.indexed >= tip, 20, "live at the tip")
        await wait_for(lambda: status.indexed_finalized >= tip - 4, 10, "finality of tip - 4")
        fin = status.indexed_finalized
        before = await final_rows(run.rt.pool, CHAIN, fin)
        stored = await run.rt.pool.fetchrow(
            "SELECT number, hash FROM blocks WHERE chain = $1 AND number <= $2 ORDER BY number DESC LIMIT 1",
            CHAIN,
            fin,
        )
        result = await traffic.reorg(8)  # finalized = head - 4: the fork point is final
        assert result.fork_point <= fin
        await anvil.mine(1)
        await wait_for(lambda: status.state() == State.HALTED, 20, "the chain to halt")
        await asyncio.sleep(0.3)
        crit = assert_halted(run.rt, CHAIN, logs)
        assert await final_rows(run.rt.pool, CHAIN, fin) == before
        cursor = await run.rt.pool.fetchrow("SELECT * FROM cursors WHERE chain = $1", CHAIN)
        assert cursor["finalized_number"] == fin
    assert not [e for e in logs if e["event"] == "rpc_contradiction"], "one endpoint is not a fault"
    text = str(crit)
    assert str(stored["hash"]) in text or any(h in text for h in result.old_hashes)
    assert any(h in text for h in result.new_hashes)
    assert run.rt.sources[CHAIN].rpc.labels()[0] in text  # type: ignore[attr-defined]
    structlog.reset_defaults()
