"""The real `usd1-indexer` process: SIGKILL mid-backfill and resume, SIGTERM drain, check-config."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import holder_addresses
from tests.support.chain_truth import chain_transfer_events, indexed_events

pytestmark = pytest.mark.integration
CHAIN = "devnet"


def write_config(path: Path, rpc: str, token: str, dsn: str, port: int = 0, **chain: Any) -> Path:
    cfg = {
        "database": {"dsn": dsn},
        "data_dir": str(path.parent / "data"),
        "http": {"listen": f"127.0.0.1:{port}"},
        "log": {"level": "info", "format": "json"},
        "chains": [
            {
                "name": CHAIN,
                "kind": "evm",
                "rpc": [rpc],
                "token": token,
                "finality": {"tag": "finalized"},
                "poll_interval": "100ms",
                **chain,
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "indexer", *args]


async def test_sigkill_mid_backfill_then_resume(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Path
) -> None:
    holders = [h.lower() for h in holder_addresses(99, 60)]
    for i in range(120):  # 120 blocks x 60 mints, plus transfers in between
        await token.batch_mint(holders, [10**18 + i * 7 + j for j in range(len(holders))])
        if i % 10 == 0:
            await token.transfer(holders[i % 60], holders[(i + 1) % 60], 5 * 10**17)
            await token.burn(holders[(i + 2) % 60], 10**17)
    await anvil.mine(5)
    fin = await anvil.block_number("finalized")
    cfg = write_config(
        tmp_path / "c.yaml", anvil.url, token.address, dsn, max_block_range=3, max_concurrency=1
    )

    kills = 0
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(3):  # kill it up to three times at different points
            proc = subprocess.Popen(
                cli("backfill", "--config", str(cfg), "--no-progress"), stderr=subprocess.DEVNULL
            )
            try:
                start = time.monotonic()
                threshold = 10 + kills * 35
                while time.monotonic() - start < 60 and proc.poll() is None:
                    try:
                        cur = await conn.fetchval(
                            "SELECT indexed_number FROM cursors WHERE chain = $1", CHAIN
                        )
                    except asyncpg.UndefinedTableError:
                        cur = None
                    if cur is not None and cur >= threshold:
                        break
                    await asyncio.sleep(0.01)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            finally:
                proc.wait(timeout=30)
        assert kills >= 1, "backfill finished before it could be killed"
        partial = await conn.fetchval("SELECT indexed_number FROM cursors WHERE chain = $1", CHAIN)
        assert partial < fin
        # A first backfill runs without the secondary event indexes; a kill leaves them deferred.
        assert await conn.fetchval("SELECT usd1_missing_event_indexes($1)", CHAIN) == 4

        done = subprocess.run(
            cli("backfill", "--config", str(cfg), "--no-progress"), capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        # The resumed backfill kept them deferred and built them once it reached its target.
        assert await conn.fetchval("SELECT usd1_missing_event_indexes($1)", CHAIN) == 0
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        got = await indexed_events(pool, CHAIN)
        truth = await chain_transfer_events(anvil, token.address, fin)
        assert len(got) == len(set(got)), "an event was stored twice"
        assert set(got) == truth
        assert len(got) > 7000
        supply = await pool.fetchval(
            "SELECT minted - burned FROM supply WHERE chain = $1 AND block_number <= $2 ORDER BY block_number DESC LIMIT 1",
            CHAIN,
            fin,
        )
        assert int(supply) == await token.total_supply(fin)
        for h in holders[:10]:
            bal = await pool.fetchval("SELECT raw FROM balances WHERE chain = $1 AND address = $2", CHAIN, h)
            assert int(bal) == await token.balance_of(h, fin)
    finally:
        await pool.close()


async def test_run_serves_http_and_drains_on_sigterm(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Path
) -> None:
    holder = holder_addresses(5, 1)[0].lower()
    await token.mint(holder, 123 * 10**18)
    await anvil.mine(6)
    port = free_port()
    cfg = write_config(tmp_path / "c.yaml", anvil.url, token.address, dsn, port=port, lag_budget="30s")
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(cli("run", "--config", str(cfg)), stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            ready = False
            while time.monotonic() < deadline and not ready:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        ready = r.status == 200
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            assert ready, "daemon never became ready"
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/api/v1/supply") as r:
                body = await r.json()
            chain = body["chains"][0]
            assert chain["finalized"]["raw"] == str(123 * 10**18)
            assert chain["finalized"]["amount"] == "123"
            async with http.get(f"{base}/api/v1/accounts/{CHAIN}/{holder}") as r:
                acct = await r.json()
            assert acct["finalized"]["raw"] == str(await token.balance_of(holder, acct["finalized"]["block"]))
            async with http.get(f"{base}/api/v1/accounts/{CHAIN}/not-an-address") as r:
                assert r.status == 400
                assert "invalid address" in (await r.json())["error"]
            async with http.get(f"{base}/api/v1/supply?bogus=1") as r:
                assert r.status == 400
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
            assert f'usd1_supply{{chain="{CHAIN}",finality="finalized"}} 123.0' in text
            assert 'usd1_rpc_requests_total{chain="devnet"' in text
            # The supply-class task (every 5 s): all 123 tokens circulate (nothing labelled or frozen).
            want = 'usd1_supply_circulating_total{finality="finalized"} 123.0'
            deadline = time.monotonic() + 15
            while want not in text and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                async with http.get(f"{base}/metrics") as r:
                    text = await r.text()
            assert want in text
            assert (
                f'usd1_supply_class_tokens{{chain="{CHAIN}",class="circulating",finality="head"}} 123.0'
                in text
            )
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        assert code == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_check_config_names_every_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "chains:\n"
        "  - {name: a, kind: evm, rpc: ['http://x:1'], token: '0x12', finality: {}}\n"
        "  - {name: a, kind: evm, rpc: ['http://x:1'], token: '0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d', colour: red}\n"
    )
    r = subprocess.run(cli("check-config", str(bad)), capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 2
    err = r.stderr
    assert "chains.0.token: invalid EVM address" in err
    assert "chains.0.finality" in err
    assert "chains.1.colour: unknown key" in err
    good = subprocess.run(cli("check-config", "config/devnet.yaml"), capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
