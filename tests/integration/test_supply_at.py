"""The attestation package (`GET /api/v1/supply/at`, `usd1-indexer report supply --at`) on real
PostgreSQL: synthetic history written through `Store.commit` (expected classes computed
independently by `tests.support.api_data`), and a live anvil chain indexed by the real follower
(the token's own totalSupply at the picked block, and the supply history API at the same time)."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml

from indexer.api.app import create_app
from indexer.daemon import serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.metrics import Metrics
from indexer.runtime import open_runtime
from indexer.store.store import Store
from indexer.sync.supervisor import Supervisor
from tests.integration.test_api_history import canonical_blocks
from tests.integration.test_evm_pipeline import CHAIN as ANVIL_CHAIN
from tests.integration.test_evm_pipeline import make_config, wait_for
from tests.support import api_data
from tests.support.api_data import Synthetic
from tests.support.chain_truth import chain_transfer_events

pytestmark = pytest.mark.integration
CHAIN = "devnet"


@dataclass
class Live:
    base: str
    syn: Synthetic
    config_path: Path


@pytest.fixture
async def live(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> AsyncIterator[Live]:
    syn = await api_data.load(pool, CHAIN)
    cfg_dict = api_data.config_dict(dsn, tmp_path, with_solana=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    cfg = api_data.config(dsn, tmp_path, with_solana=False)
    app = create_app(cfg, Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield Live(f"http://127.0.0.1:{port}", syn, path)


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params or None) as r:
        return r.status, orjson.loads(await r.read())


def iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def report(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "indexer", "report", "supply", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_supply_at_synthetic_history(live: Live) -> None:
    syn = live.syn
    times = syn.block_times
    async with aiohttp.ClientSession() as http:
        # Between two blocks (ten minutes apart): the block at or before; and exactly at a block.
        for block, offset in ((40, 299), (75, 0), (syn.finalized, 0), (1, 1)):
            status, body = await get(http, f"{live.base}/api/v1/supply/at", time=str(times[block] + offset))
            assert status == 200, body
            (c,) = body["chains"]
            want = syn.classes_at(block)
            # The store knows blocks with events or control events (and the unfinalized window):
            # the picked block is the last of those at or before the time, with the same supply.
            known = max(
                b
                for b in range(1, block + 1)
                if any(e.block_number == b for e in syn.events)
                or any(e.block_number == b for e in syn.controls)
                or b > syn.finalized - 1
            )
            assert c["status"] == "indexed"
            assert c["block"]["number"] == known
            assert c["block"]["time"] == iso(times[known])
            assert c["block"]["hash"] == "0x" + f"b{known:x}".rjust(64, "0")
            assert c["block"]["final"] is True
            assert int(c["total"]["raw"]) == want["total"] == syn.supply_at(block)
            cl = c["classes"]
            assert cl["frozen_status"] == "derived" and cl["circulating_exact"] is True
            assert int(cl["frozen"]["raw"]) == want["frozen"]
            assert int(cl["circulating"]["raw"]) == want["circulating"]
            assert {k: int(v["raw"]) for k, v in cl["non_circulating"]["by_label"].items()} == want[
                "by_label"
            ]
            assert body["global"]["total"] == c["total"]
            assert body["global"]["circulating"] == cl["circulating"]
            assert body["global"]["complete"] is True
            assert body["provenance"]["finalized"][CHAIN]["block"] == syn.finalized
            assert body["provenance"]["index_complete"] == {CHAIN: True}
            assert body["time"] == iso(times[block] + offset)

        # Above what is final: refused, naming the chain and its final time.
        final_t = times[syn.finalized]
        for t in (final_t + 1, times[syn.head], final_t + 10**6):
            status, body = await get(http, f"{live.base}/api/v1/supply/at", time=str(t))
            assert status == 400, body
            assert f"chain {CHAIN}" in body["error"] and iso(final_t) in body["error"], body
        # ISO-8601 is the same as Unix seconds.
        _, a = await get(http, f"{live.base}/api/v1/supply/at", time=str(times[30]))
        _, b = await get(http, f"{live.base}/api/v1/supply/at", time=iso(times[30]))
        assert a["chains"] == b["chains"]
        # Before the first block: not indexed there (and the global figures say incomplete).
        status, body = await get(http, f"{live.base}/api/v1/supply/at", time=str(times[1] - 1))
        assert status == 200, body
        assert body["chains"][0]["status"] == "not_indexed" and body["chains"][0]["block"] is None
        assert body["global"]["complete"] is False and body["global"]["total"]["raw"] == "0"
        # Bad input: 400 with a message, never a 500.
        for params in ({}, {"time": "yesterday"}, {"time": "-5"}, {"time": "1e9"}, {"time": "1", "x": "2"}):
            status, body = await get(http, f"{live.base}/api/v1/supply/at", **params)
            assert status == 400, (params, body)
            assert "time" in body["error"] or "unknown" in body["error"]


async def test_report_cli_prints_the_api_body(live: Live) -> None:
    syn = live.syn
    t = syn.block_times[63] + 123
    async with aiohttp.ClientSession() as http:
        status, api = await get(http, f"{live.base}/api/v1/supply/at", time=str(t))
    assert status == 200, api
    out = await asyncio.to_thread(report, live.config_path, "--at", iso(t), "--format", "json")
    assert out.returncode == 0, out.stderr
    body = orjson.loads(out.stdout)
    for doc in (body, api):
        doc["provenance"].pop("generated_at")
    assert body == api

    out = await asyncio.to_thread(report, live.config_path, "--at", str(t), "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["chain"] for r in rows] == [CHAIN, "global"]
    c = api["chains"][0]
    assert rows[0]["as_of_block"] == str(c["block"]["number"])
    assert rows[0]["as_of_time"] == c["block"]["time"]
    assert rows[0]["total"] == c["total"]["amount"]
    assert rows[0]["circulating"] == c["classes"]["circulating"]["amount"]
    assert rows[0]["frozen"] == c["classes"]["frozen"]["amount"]
    assert (
        rows[0]["non_circulating_treasury"]
        == c["classes"]["non_circulating"]["by_label"]["treasury"]["amount"]
    )
    assert rows[1]["circulating"] == api["global"]["circulating"]["amount"]

    out = await asyncio.to_thread(report, live.config_path, "--at", str(t), "--format", "md")
    assert out.returncode == 0, out.stderr
    assert f"supply at {iso(t)}" in out.stdout
    assert f"| {CHAIN} | indexed | {c['block']['number']} |" in out.stdout
    assert f"circulating {api['global']['circulating']['amount']}" in out.stdout

    # Above final: exit 2 with the API's message.
    above = syn.block_times[syn.head]
    out = await asyncio.to_thread(report, live.config_path, "--at", str(above))
    assert out.returncode == 2
    assert f"above what is final on chain {CHAIN}" in out.stderr


async def test_supply_at_on_anvil_matches_chain_and_history(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    """Random traffic with a reorg, blocks 10 s apart, indexed live by the real follower: at a
    time between two blocks the package picks the block at or before it, its total is the token's
    own totalSupply there and the supply history's figure at that time (API and report agree),
    and a time above the finalized block is refused."""
    await anvil.rpc("anvil_setBlockTimestampInterval", [10])
    cfg = make_config(anvil.url, token.address, dsn, tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"dsn": dsn},
                "data_dir": str(tmp_path),
                "chains": [
                    {
                        "name": ANVIL_CHAIN,
                        "kind": "evm",
                        "rpc": [anvil.url],
                        "token": token.address,
                        "decimals": 18,
                        "finality": {"tag": "finalized"},
                    }
                ],
            }
        )
    )
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[ANVIL_CHAIN]
        try:
            for i in range(30):
                await traffic.step()
                if i == 20:
                    tip = await anvil.block_number()
                    await wait_for(lambda tip=tip: status.indexed >= tip, 10, "follower to reach the tip")
                    await traffic.reorg(2)
            await anvil.mine(6)
            head = await anvil.block_number()
            await wait_for(
                lambda: status.indexed == head and status.indexed_finalized >= head - 4, 20, "follower"
            )
        finally:
            stop.set()
            await task
        fin = status.indexed_finalized
        assert fin < head
        times, numbers = await canonical_blocks(anvil, head)
        hashes = {n: h for h, n in numbers.items()}
        truth = await chain_transfer_events(anvil, token.address, head)
        event_blocks = {numbers[k[0]] for k in truth}
        assert len({times[n] for n in range(1, head + 1)}) == head, "block times must differ"
        app = create_app(cfg, rt.store, rt.metrics, rt.statuses)
        async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            picks = [n for n in sorted(event_blocks) if n < fin][:: max(1, len(event_blocks) // 6)]
            for n in [*picks, fin - 1]:
                t = times[n] + 5  # between block n and block n + 1
                st, body = await get(http, f"{base}/api/v1/supply/at", time=str(t))
                assert st == 200, body
                (c,) = body["chains"]
                b = c["block"]
                # The block at or before the time: n itself, or the last block the store knows
                # below it when no token event lies in between (the supply is the same there).
                assert b["number"] <= n and not any(b["number"] < e <= n for e in event_blocks), (b, n)
                assert b["hash"] == hashes[b["number"]] and b["final"] is True
                assert b["time"] == iso(times[b["number"]])
                assert int(c["total"]["raw"]) == await token.total_supply(n)
                assert c["classes"]["frozen_status"] == "not_decoded" and c["classes"]["frozen"] is None
                assert c["classes"]["circulating_exact"] is False
                assert body["global"]["complete"] is True
                # The supply history at the same time (blocks before t + 1 s: at or before t).
                st, hist = await get(
                    http,
                    f"{base}/api/v1/supply/history",
                    chain=ANVIL_CHAIN,
                    since=str(t - 60),
                    until=str(t + 1),
                    interval="1m",
                )
                assert st == 200, hist
                assert hist["chains"][0]["points"][-1]["raw"] == c["total"]["raw"]
                # The report prints the same package.
                out = await asyncio.to_thread(report, path, "--at", str(t))
                assert out.returncode == 0, out.stderr
                got = orjson.loads(out.stdout)
                got["provenance"].pop("generated_at")
                body["provenance"].pop("generated_at")
                assert got == body
            # Exactly at the finalized block: that block; just after it: refused (not final yet).
            st, body = await get(http, f"{base}/api/v1/supply/at", time=str(times[fin]))
            assert st == 200 and body["chains"][0]["block"]["number"] == fin, body
            for t in (times[fin] + 5, times[head]):
                st, body = await get(http, f"{base}/api/v1/supply/at", time=str(t))
                assert st == 400, body
                assert f"final on chain {ANVIL_CHAIN}" in body["error"] and iso(times[fin]) in body["error"]
            out = await asyncio.to_thread(report, path, "--at", str(times[head]), "--format", "md")
            assert out.returncode == 2 and f"final on chain {ANVIL_CHAIN}" in out.stderr


async def test_frozen_not_derivable_and_a_chain_not_indexed(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    """Controls coverage that does not reach the start block: frozen is null (not a guess), the
    `owner` label cannot be resolved, circulating says it is not exact. A configured chain that was
    never indexed (sol) is reported not_indexed, not refused."""
    syn = await api_data.load(pool, CHAIN)
    await pool.execute("UPDATE coverage SET from_block = 50 WHERE chain = $1 AND family = 'controls'", CHAIN)
    app = create_app(api_data.config(dsn, tmp_path), Store(pool), Metrics())
    block = 90
    async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
        status, body = await get(
            http, f"http://127.0.0.1:{port}/api/v1/supply/at", time=str(syn.block_times[block])
        )
    assert status == 200, body
    dev, sol = body["chains"]
    cl = dev["classes"]
    assert cl["frozen"] is None and cl["frozen_status"] == "coverage_incomplete"
    assert cl["circulating_exact"] is False and "backfill --family controls" in cl["frozen_note"]
    assert dev["index"] == {
        "complete": True,
        "start_block": 0,
        "transfers_from_block": 0,
        "controls_from_block": 50,
    }
    labels = {k: int(v["raw"]) for k, v in cl["non_circulating"]["by_label"].items()}
    treasury, bridge = api_data.NON_CIRCULATING[0][0], api_data.NON_CIRCULATING[2][0]
    assert labels == {
        "treasury": syn.balance_at(treasury, block),
        "bridge_lock": syn.balance_at(bridge, block),
        "issuer": 0,  # `owner` unresolved without the control state
    }
    total = syn.supply_at(block)
    assert int(dev["total"]["raw"]) == total
    assert int(cl["circulating"]["raw"]) == total - sum(labels.values())  # frozen balances included
    assert sol["status"] == "not_indexed" and sol["reason"] == "the chain has not been indexed yet"
    g = body["global"]
    assert g["chains_counted"] == [CHAIN] and g["complete"] is False and g["circulating_exact"] is False
    assert g["total"] == dev["total"]
