"""The drills' actions on real anvil chains (the devnet of `start_evm_devnet`): each one changes
the chain the way its plan says. (depeg and upgrade also run end to end through Prometheus and
Alertmanager: tests/e2e/test_drills_alertmanager.py.)"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.config import Config
from indexer.devnet.drill_actions import run_drill
from indexer.devnet.evm_devnet import DevnetChainSpec, EvmDevnet, start_evm_devnet
from indexer.devnet.orderbook_mock import DevnetBook
from indexer.devnet.pools import DEVNET_POOL_ADDRESS
from indexer.devnet.solana_admin import SolanaAdminClient
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import SolanaTraffic
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS
from indexer.devnet.usd1 import DEVNET_USD1_ADDRESS, USD1_TOPICS
from indexer.drills import ChainTarget, DrillOptions, DrillTarget, plan_drill, target_from_config
from tests.support.daemon_run import Running, running
from tests.support.prometheus import wait_for

TOKEN = DETERMINISTIC_TOKEN_ADDRESS

pytestmark = pytest.mark.integration
VENUE = "devnet-univ2-usd1-usdc"


@pytest.fixture
async def devnet() -> AsyncIterator[EvmDevnet]:
    specs = [
        DevnetChainSpec(name="devnet-a", port=0, chain_id=31337, seed=1, holders=4, pool=True),
        DevnetChainSpec(name="devnet-usd1", port=0, chain_id=31339, seed=3, holders=4, token="usd1"),
    ]
    net = await start_evm_devnet(specs, reorg_every=None, ops_per_second=2.0)
    try:
        yield net
    finally:
        await net.stop()


def _target(net: EvmDevnet) -> DrillTarget:
    chain: dict[str, Any] = {"kind": "evm", "decimals": 18, "finality": {"tag": "finalized"}}
    cfg = Config.model_validate(
        {
            "token": {"symbol": "USD1", "peg_usd": 1.0},
            "chains": [
                {
                    **chain,
                    "name": "devnet-a",
                    "rpc": [net.chain("devnet-a").url],
                    "token": DETERMINISTIC_TOKEN_ADDRESS,
                },
                {
                    **chain,
                    "name": "devnet-usd1",
                    "rpc": [net.chain("devnet-usd1").url],
                    "token": DEVNET_USD1_ADDRESS,
                    "profile": "usd1",
                },
            ],
            "venues": [
                {
                    "name": VENUE,
                    "kind": "uniswap_v2",
                    "chain": "devnet-a",
                    "pool": DEVNET_POOL_ADDRESS,
                    "quote_usd": 1.0,
                }
            ],
        }
    )
    return target_from_config(cfg)


async def test_stall_deep_reorg_pool_drain_and_redemption_run(devnet: EvmDevnet) -> None:
    target = _target(devnet)
    said: list[str] = []
    a = devnet.chain("devnet-a").anvil

    # stall: no block for 2.5 s of 1 s blocks, then mining resumes
    await run_drill(plan_drill("stall", target, DrillOptions(chain="devnet-a")), say=said.append)
    stalled = await a.block_number()
    await asyncio.sleep(2.5)
    assert await a.block_number() == stalled
    await run_drill(
        plan_drill("stall", target, DrillOptions(chain="devnet-a", restore=True)), say=said.append
    )
    await asyncio.sleep(2.5)
    assert await a.block_number() > stalled

    # deep-reorg: deeper than head - finalized, the head height stays, the fork point's hash changes
    async def tall() -> bool:
        return await a.block_number() >= 12

    await wait_for(tall, 30, "12 blocks on devnet-a")
    head = await a.block_number()
    finalized = await a.block_number("finalized")
    depth = head - finalized + 2
    old = await a.rpc("eth_getBlockByNumber", [hex(head - depth + 1), False])
    await run_drill(plan_drill("deep-reorg", target, DrillOptions(chain="devnet-a")), say=said.append)
    new = await a.rpc("eth_getBlockByNumber", [hex(head - depth + 1), False])
    assert new["hash"] != old["hash"] and head - depth + 1 <= finalized
    assert any(f"reorged {depth} blocks" in line for line in said), said

    # pool-drain: 90% of the deployer's liquidity leaves, the price stays
    pool = devnet.chain("devnet-a").pool
    assert pool is not None
    x0, y0 = await pool.reserves()
    await run_drill(plan_drill("pool-drain", target), say=said.append)
    x1, y1 = await pool.reserves()
    assert 0.05 < x1 / x0 < 0.15 and 0.05 < y1 / y0 < 0.15
    assert abs(x1 / y1 - x0 / y0) / (x0 / y0) < 1e-3

    # redemption-run: burns of 5% of the supply; the chain's USD1 Burn events say how much
    usd1 = devnet.chain("devnet-usd1").usd1
    assert usd1 is not None
    plan = plan_drill("redemption-run", target, DrillOptions(burns=3, every=0.2, share=0.05))
    start = await devnet.chain("devnet-usd1").anvil.block_number()
    supply = await usd1.token.total_supply()
    await run_drill(plan, say=said.append)
    burns = [line for line in said if line.startswith("burn ")]
    assert len(burns) == 3, said
    amounts = [int(line.split(": ")[1].split()[0]) for line in burns]
    assert amounts, burns
    for amount in amounts:
        assert 0.99 < amount / (supply * 0.05 / 3) < 1.01, (amount, supply)
    logs = await usd1.token.logs([USD1_TOPICS["Burn"]], from_block=start)
    logged = {int(log["data"][-64:], 16) for log in logs}
    assert set(amounts) <= logged, (amounts, logged)


async def test_stall_and_deep_reorg_on_the_solana_devnet() -> None:
    """The Solana devnet's admin methods: stall pauses the slot producer, deep-reorg forks below
    the finalized slot (a finality violation on purpose)."""
    async with SolanaDevnet(
        finality_depth=6, confirmed_depth=1, admin=True, slot_seconds=0.1, produce=True
    ) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=3, owners=2)
        traffic.setup()
        assert dn.admin is not None
        dn.admin.token = traffic
        dn.advance(12)
        chain = ChainTarget("devnet-sol", "solana", dn.url, traffic.mint_address, 6, "solana", None, None)
        target = DrillTarget((chain,), ())
        said: list[str] = []
        async with SolanaAdminClient(dn.url) as admin:
            await run_drill(plan_drill("stall", target, DrillOptions(chain="devnet-sol")), say=said.append)
            tip = (await admin.status())["tip"]
            await asyncio.sleep(0.6)
            assert (await admin.status())["tip"] == tip
            await run_drill(
                plan_drill("stall", target, DrillOptions(chain="devnet-sol", restore=True)), say=said.append
            )
            await asyncio.sleep(0.6)
            assert (await admin.status())["tip"] > tip
            await run_drill(plan_drill("stall", target, DrillOptions(chain="devnet-sol")), say=said.append)
            before = await admin.status()
            await run_drill(
                plan_drill("deep-reorg", target, DrillOptions(chain="devnet-sol")), say=said.append
            )
            after = await admin.status()
        assert after["forkEpoch"] == before["forkEpoch"] + 1
        assert after["tip"] < before["finalized"], (before, after)  # blocks below finalized are gone
        assert any("forked" in line for line in said), said


async def test_cli_depeg_with_hold_on_a_running_devnet(devnet: EvmDevnet, tmp_path: Path) -> None:
    """`usd1-indexer drill depeg --hold 1` as a process: plan, swap off the peg, swap back, the alerts
    to watch; exit 0."""
    cfg = {
        "token": {"symbol": "USD1", "peg_usd": 1.0},
        "chains": [
            {
                "name": "devnet-a",
                "kind": "evm",
                "rpc": ["http://127.0.0.1:1"],  # replaced by --devnet
                "token": DETERMINISTIC_TOKEN_ADDRESS,
                "finality": {"tag": "finalized"},
            }
        ],
        "venues": [
            {
                "name": VENUE,
                "kind": "uniswap_v2",
                "chain": "devnet-a",
                "pool": DEVNET_POOL_ADDRESS,
                "quote_usd": 1.0,
            }
        ],
    }
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "indexer",
        "drill",
        "depeg",
        "--config",
        str(path),
        "--devnet",
        f"devnet-a={devnet.chain('devnet-a').url}",
        "--bps",
        "-300",
        "--hold",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert text.index("expected alerts, in order") < text.index("running:") < text.index("Watch for")
    assert "now at 0.9700" in text and "back at 1.0000" in text, text
    assert "USD1PegDeviationUnconfirmed" in text and "pages expected: none" in text
    pool = devnet.chain("devnet-a").pool
    assert pool is not None and abs(float(await pool.price()) - 1.0) < 0.001


async def test_deep_reorg_drill_halts_the_daemon(devnet: EvmDevnet, dsn: str, tmp_path: Path) -> None:
    """What the deep-reorg drill promises: the daemon's follower halts the chain on a finality
    violation (usd1_finality_violation 1, state halted), finalized rows untouched."""
    cfg = Config.model_validate(
        {
            "token": {"symbol": "USD1", "peg_usd": 1.0},
            "database": {"dsn": dsn},
            "data_dir": str(tmp_path),
            "chains": [
                {
                    "name": "devnet-a",
                    "kind": "evm",
                    "rpc": [devnet.chain("devnet-a").url],
                    "token": DETERMINISTIC_TOKEN_ADDRESS,
                    "finality": {"tag": "finalized"},
                    "poll_interval": "200ms",
                }
            ],
        }
    )
    async with running(cfg, "devnet-a", Running) as d:
        st = d.rt.statuses["devnet-a"]

        async def caught_up() -> bool:
            return st.indexed_finalized >= 6 and st.indexed >= st.head - 1

        await wait_for(caught_up, 60, "devnet-a indexed past block 6 as final")
        said: list[str] = []
        await run_drill(plan_drill("deep-reorg", target_from_config(cfg)), say=said.append)

        async def halted() -> bool:
            return d.metric("usd1_finality_violation") == 1.0

        await wait_for(halted, 30, "the finality violation halt")
        status = await d.get("/api/v1/status")
        (chain,) = status["chains"]
        assert chain["state"] == "halted", chain
        assert st.halted_reason, st


async def test_venue_outage_takes_the_devnet_book_down_and_back(tmp_path: Path) -> None:
    """The drill drives the devnet book through its admin method; the market poller's fetch sees
    the outage as an HTTP failure and the book's own figures again after `--restore`."""
    import aiohttp

    from indexer.market.errors import VenueError
    from indexer.market.orderbook import fetch_order_book

    async with DevnetBook() as book, aiohttp.ClientSession() as session:
        cfg = Config.model_validate(
            {
                "chains": [
                    {"name": "devnet-a", "kind": "evm", "rpc": ["http://127.0.0.1:1"], "token": TOKEN}
                ],
                "venues": [
                    {
                        "name": "book",
                        "kind": "orderbook",
                        "exchange": "binance",
                        "url": book.url,
                        "quote_usd": 1.0,
                    }
                ],
            }
        )
        target = target_from_config(cfg)
        ob = await fetch_order_book(session, "binance", book.url, 5.0)
        assert (ob.bids[0].price, ob.asks[0].price) == (Decimal("0.9999"), Decimal("1.0001"))
        said: list[str] = []
        await run_drill(plan_drill("venue-outage", target), say=said.append)
        assert book.down and said == ["venue book down (503)"]
        with pytest.raises(VenueError) as err:
            await fetch_order_book(session, "binance", book.url, 5.0)
        assert err.value.kind == "http" and "503" in str(err.value)
        await run_drill(plan_drill("venue-outage", target, DrillOptions(restore=True)), say=said.append)
        assert not book.down and said[-1] == "venue book back up"
        await run_drill(plan_drill("venue-outage", target, DrillOptions(hold=0.2)), say=said.append)
        assert not book.down and said[-3:] == ["venue book down (503)", "holding 0.2s", "venue book back up"]
        assert (await fetch_order_book(session, "binance", book.url, 5.0)).bids[0].price == Decimal("0.9999")
