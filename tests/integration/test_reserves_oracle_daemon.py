"""The proof-of-reserve feed through the real daemon (`run_daemon`) on anvil + PostgreSQL: the feed
(Chainlink's MockV3Aggregator) read through the indexed chain's own source, compared with the
attestation in force and with the circulating supply the supply-class exporter computes at the
finalized blocks; `/api/v1/reserves` and the metrics agree, exactly, with the chain."""

from __future__ import annotations

import asyncio
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.config import Config
from indexer.daemon import run_daemon
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.chainlink import ChainlinkFeed
from indexer.devnet.token import TestToken
from indexer.reserves import _ratio_str
from indexer.runtime import Runtime
from tests.integration.test_evm_pipeline import CHAIN, wait_for

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "reserves.example.json"
ATTESTED = Fraction("2200000000.25")  # config/reserves.example.json
ANSWER = 1_000_000_000_50000000  # 1,000,000,000.5 USD at 8 decimals
HOLDER = "0x" + "cd" * 20
E18 = 10**18


async def test_daemon_exports_the_feed_and_compares_it_exactly(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Path
) -> None:
    feed = await ChainlinkFeed.deploy(anvil, decimals=8, initial_answer=ANSWER)
    await token.mint(HOLDER, 999_999_999 * E18 + 7)  # circulating a hair below the feed
    await anvil.mine(5)
    shutil.copy(EXAMPLE, tmp_path / "reserves.json")
    port = free_port()
    cfg = Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp_path),
            "http": {"listen": f"127.0.0.1:{port}"},
            "chains": [
                {
                    "name": CHAIN,
                    "kind": "evm",
                    "rpc": [anvil.url],
                    "token": token.address,
                    "finality": {"tag": "finalized"},
                    "poll_interval": "50ms",
                }
            ],
            "reserves": {
                "url": "file://reserves.json",
                "oracle": {"chain": CHAIN, "address": feed.address, "interval": "200ms"},
            },
        }
    )
    holder: dict[str, Runtime] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_daemon(cfg, stop, on_ready=lambda rt, _p: holder.setdefault("rt", rt), config_dir=tmp_path)
    )
    try:
        await wait_for(lambda: "rt" in holder, 30, "daemon start")
        rt = holder["rt"]
        fin = await anvil.block_number("finalized")
        supply_hex = await anvil.rpc("eth_call", [{"to": token.address, "data": "0x18160ddd"}, hex(fin)])
        supply = int(supply_hex, 16)
        assert supply >= 999_999_999 * E18 + 7
        value = Fraction(ANSWER, 10**8)
        want_cov = _ratio_str(value / Fraction(supply, E18))

        async with aiohttp.ClientSession() as http:
            body: dict[str, Any] = {}

            async def poll() -> None:
                while True:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/reserves") as r:
                        assert r.status == 200
                        body.update(await r.json())
                    exported = rt.metrics.registry.get_sample_value("usd1_reserves_oracle_coverage")
                    if body["oracle"]["coverage"] is not None and exported == exported:  # not NaN
                        return
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(poll(), 30)
        o = body["oracle"]
        assert o["configured"] and o["up"] and o["chain"] == CHAIN and o["address"] == feed.address.lower()
        assert o["answer"] == "1000000000.5" and o["decimals"] == 8 and o["round_id"] == "1"
        assert o["block"] is not None and o["block"] >= fin
        assert o["vs_attestation"] == _ratio_str(value / ATTESTED)
        assert o["coverage"] == want_cov
        m = rt.metrics.registry.get_sample_value
        assert m("usd1_reserves_oracle_up") == 1
        assert m("usd1_reserves_oracle_usd") == 1_000_000_000.5
        assert m("usd1_reserves_oracle_coverage") == pytest.approx(float(value / Fraction(supply, E18)))
        assert m("usd1_reserves_oracle_vs_attestation_ratio") == pytest.approx(float(value / ATTESTED))
        assert m("usd1_reserves_oracle_max_age_seconds") == 26 * 3600
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
