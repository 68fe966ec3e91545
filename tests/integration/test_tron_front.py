"""`dialect: tron` end to end: the daemon (in-process, with its HTTP API) on anvil behind the
java-tron JSON-RPC front of tests/support/tron_front.py (zero blooms, height-prefixed block hashes,
prefix-less log addresses, `latest`-only state reads, `finalized` = solidified head - 6, `safe`
refused, eth_getLogs range and result caps, HTTP-200 rate-limit bodies), the TestToken configured
by its base58 address. No java-tron node runs here (see README, "Tron").

Random traffic with shallow reorgs (above the solidified block): the index is exactly the chain's
(every Transfer once, under the front's hashes), supply and balances equal anvil's own
totalSupply()/balanceOf(), the latest-only supply check compared at the head; the API finds an
account by any Tron spelling. A reorg below the solidified block halts the chain. The real USD1
proxy's control events and latest-only control checks work through the front too."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from structlog.testing import capture_logs

from indexer.chains import tron
from indexer.config import Config
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.devnet.usd1 import deploy_usd1
from indexer.sync.status import State
from tests.integration.test_controls_pipeline import CHAIN as CONTROLS_CHAIN
from tests.integration.test_controls_pipeline import NEW_OWNER, A, chain_kinds
from tests.integration.test_controls_pipeline import config as controls_config
from tests.integration.test_controls_pipeline import running as controls_running
from tests.integration.test_evm_pipeline import wait_for
from tests.integration.test_finality_breaks import assert_halted, final_state
from tests.support.chain_truth import chain_transfer_events, indexed_events
from tests.support.daemon_run import Running, running
from tests.support.tron_front import RATE_LIMIT_BODY, ZERO_BLOOM, TronFront

pytestmark = pytest.mark.integration
CHAIN = "tron"
SOLID = 6  # the front's solidified block: head - 6 (anvil's own finalized = head - 4 is not used)


def tron_config(dsn: str, tmp: Path, url: str, token: str) -> Config:
    return Config.model_validate(tron_config_dict(dsn, tmp, url, token))


def tron_config_dict(dsn: str, tmp: Path, url: str, token: str) -> dict[str, Any]:
    return {
        "database": {"dsn": dsn},
        "data_dir": str(tmp),
        "chains": [
            {
                "name": CHAIN,
                "kind": "evm",
                "dialect": "tron",
                "rpc": [url],
                "token": tron.to_base58(token),
                "decimals": 18,
                "finality": {"tag": "finalized"},
                "poll_interval": "50ms",
                "request_timeout": "5s",
                "audit": {"enabled": False},
            }
        ],
    }


def front_truth(front: TronFront, truth: set[Any]) -> set[Any]:
    """anvil's Transfer events with their block hashes as the front showed them."""
    return {(front.hashes.tron_of(k[0]), *k[1:]) for k in truth}


async def _rpc(http: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    async with http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    ) as r:
        assert r.status == 200
        return await r.json(content_type=None)


async def test_the_front_over_anvil_behaves_like_java_tron(
    anvil: Anvil, token: TestToken, traffic: Traffic
) -> None:
    """The front itself against a real anvil: hash links and lookups by hash through the map,
    zero blooms, `finalized`/`safe`, latest-only state reads, caps and the rate-limit body."""
    await traffic.run(12)
    async with (
        TronFront(anvil.url, solid_depth=SOLID, max_block_range=4) as front,
        aiohttp.ClientSession() as http,
    ):
        url = front.url
        head = int((await _rpc(http, url, "eth_blockNumber"))["result"], 16)
        b = (await _rpc(http, url, "eth_getBlockByNumber", hex(head), False))["result"]
        parent = (await _rpc(http, url, "eth_getBlockByNumber", hex(head - 1), False))["result"]
        assert b["hash"][:18] == f"0x{head:016x}" and b["parentHash"] == parent["hash"]
        assert b["logsBloom"] == ZERO_BLOOM
        assert (await _rpc(http, url, "eth_getBlockByHash", parent["hash"], False))["result"] == parent
        receipts = (await _rpc(http, url, "eth_getBlockReceipts", b["hash"]))["result"]
        assert receipts and all(
            r["blockHash"] == b["hash"] and r["logsBloom"] == ZERO_BLOOM for r in receipts
        )
        logs = (await _rpc(http, url, "eth_getLogs", {"blockHash": b["hash"]}))["result"]
        assert logs and {lg["address"] for lg in logs} == {token.address.lower()}
        assert all(lg["blockHash"] == b["hash"] for lg in logs)
        fin = (await _rpc(http, url, "eth_getBlockByNumber", "finalized", False))["result"]
        assert int(fin["number"], 16) == head - SOLID
        err = (await _rpc(http, url, "eth_getBlockByNumber", "safe", False))["error"]
        assert err["message"] == "TAG safe not supported"
        call = {"to": "41" + token.address[2:], "data": "0x18160ddd"}  # totalSupply(), 21-byte address
        at_latest = (await _rpc(http, url, "eth_call", call, "latest"))["result"]
        assert int(at_latest, 16) == await token.total_supply(head)
        assert (await _rpc(http, url, "eth_call", call, {"blockNumber": "0x1"}))["result"] == at_latest
        err = (await _rpc(http, url, "eth_call", call, hex(head - 1)))["error"]
        assert err == {
            "code": -32602,
            "message": "QUANTITY not supported, just support TAG as latest",
            "data": "{}",
        }
        err = (await _rpc(http, url, "eth_getLogs", {"fromBlock": "0x1", "toBlock": "0x6"}))["error"]
        assert err["message"] == "exceed max block range: 4"
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(101)]
        async with http.post(url, json=batch) as r:
            assert (await r.json())["error"]["message"].startswith("Batch size ")
        front.rate_limit_next = 1
        assert await _rpc(http, url, "eth_blockNumber") == RATE_LIMIT_BODY
        assert "result" in await _rpc(http, url, "eth_blockNumber")


async def test_tron_front_random_traffic_shallow_reorgs_exact(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(30)  # a backlog wider than the front's range cap
    rng = random.Random(18)
    async with TronFront(anvil.url, solid_depth=SOLID, max_block_range=8, max_results=12) as front:
        cfg = tron_config(dsn, tmp_path, front.url, token.address)
        assert cfg.chains[0].token == token.address.lower()  # base58 in, the logs' hex form kept
        async with running(cfg, CHAIN, Running) as d:
            status = d.rt.statuses[CHAIN]
            reorgs = 0
            for i in range(48):
                await traffic.step()
                if i == 20:
                    front.rate_limit_next = 3  # three HTTP-200 "lack of computing resources" bodies
                if i % 8 == 7:
                    tip = await anvil.block_number()
                    await wait_for(lambda tip=tip: status.indexed >= tip, 20, "the follower at the tip")
                    await traffic.reorg(rng.randint(1, 3))  # above the solidified block
                    reorgs += 1
            await anvil.mine(SOLID + 2)
            head = await anvil.block_number()
            await wait_for(
                lambda: status.indexed == head and status.indexed_finalized >= head - SOLID, 30, "finality"
            )
            fin = status.indexed_finalized
            assert status.state() != State.HALTED
            # The latest-only supply check (totalSupply() at latest, the head hash unchanged around
            # the call) compared at the head, and agreed.
            await wait_for(lambda: status.mismatch_block == head, 20, "a supply check at the head")
            assert status.mismatch == 0

            # Every Transfer once, under the front's height-prefixed hashes; orphans gone.
            got = await indexed_events(d.rt.pool, CHAIN)
            assert len(got) == len(set(got)), "an event was stored twice"
            assert set(got) == front_truth(front, await chain_transfer_events(anvil, token.address, head))
            rows = await d.rt.pool.fetch(
                "SELECT block_number, block_hash FROM events WHERE chain = $1", CHAIN
            )
            assert rows and all(r["block_hash"][:18] == f"0x{r['block_number']:016x}" for r in rows)

            # Supply and balances exact against anvil's own state, at the finalized block and the head.
            supply = (await d.rt.store.supply_at(CHAIN, fin)).supply
            assert supply > 0 and supply == await token.total_supply(fin)
            for holder in traffic.holders:
                h = holder.lower()
                assert await d.rt.store.balance(CHAIN, h, fin) == await token.balance_of(holder, fin), h
                assert await d.rt.store.balance(CHAIN, h) == await token.balance_of(holder, head), h
            assert d.metric("usd1_reorgs_total") == reorgs
            assert len(await d.rt.store.reorgs(CHAIN)) == reorgs

            # The API finds a holder by any of its three spellings, shows it in base58, and serves
            # its balance exactly.
            holder = traffic.holders[0].lower()
            by_hex = await d.get(f"/api/v1/accounts/{CHAIN}/{holder}")
            assert by_hex["address"] == tron.to_base58(holder)
            assert await d.get(f"/api/v1/accounts/{CHAIN}/41{holder[2:]}") == by_hex
            assert await d.get(f"/api/v1/accounts/{CHAIN}/{tron.to_base58(holder)}") == by_hex
            assert int(by_hex["head"]["raw"]) == await token.balance_of(holder, by_hex["head"]["block"])
            assert int(by_hex["finalized"]["raw"]) == await token.balance_of(holder, fin)
            as_of = by_hex["as_of"]
            assert as_of["block_hash"][:18] == f"0x{as_of['block']:016x}"
            # Timestamps in seconds, taken as seconds.
            ts = int((await anvil.rpc("eth_getBlockByNumber", [hex(as_of["block"]), False]))["timestamp"], 16)
            assert as_of["block_time"] == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # The query CLI on the same index: base58 in, base58 out, the finalized balance exact.
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tron_config_dict(dsn, tmp_path, front.url, token.address)))
    b58 = tron.to_base58(holder)

    def cli(*args: str) -> Any:
        r = subprocess.run(
            [sys.executable, "-m", "indexer.cli_query", *args, "--config", str(cfg_path), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return orjson.loads(r.stdout)

    body = cli("account", CHAIN, b58, "--block", str(fin))
    assert body["address"] == b58 and int(body["at"]["raw"]) == await token.balance_of(holder, fin)
    rows = cli("transfers", "--chain", CHAIN, "--address", b58, "--limit", "1000")["transfers"]
    mine = [k for k in got if holder in (k[4], k[5])]
    assert len(rows) == len(mine) > 0 and all(b58 in (e["from"], e["to"]) for e in rows)

    # The front's differences were met, not avoided: the range and result caps refused requests and
    # shrank the range, the rate-limit bodies were retried, and no state read asked for a past block.
    assert front.refused["exceed max block range: N"] > 0
    assert front.refused["query returned more than N results"] > 0
    assert front.refused["rate limit"] == 3
    # Nothing else was refused: no past-state read, no `safe`, no base58 address, no batch over 100.
    caps = {"exceed max block range: N", "query returned more than N results", "rate limit"}
    assert set(front.refused) == caps, front.refused
    assert front.calls["eth_getLogs"] > 0
    assert front.calls["eth_getBlockReceipts"] >= 1  # the receipts check that replaces the blooms
    assert front.calls["eth_call"] >= 1  # the latest-only supply check


async def test_tron_front_reorg_below_the_solidified_block_halts(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(14)
    async with TronFront(anvil.url, solid_depth=SOLID) as front:
        front.rate_limit_every = 9  # every 9th HTTP request: the rate-limit body
        cfg = tron_config(dsn, tmp_path, front.url, token.address)
        with capture_logs() as logs:
            async with running(cfg, CHAIN, Running) as d:
                status = d.rt.statuses[CHAIN]
                tip = await anvil.block_number()
                await wait_for(
                    lambda: status.phase == State.LIVE and status.indexed >= tip, 30, "live at the tip"
                )
                await wait_for(lambda: status.indexed_finalized >= tip - SOLID, 10, "solidified tip - 6")
                before = await final_state(d.rt.pool, CHAIN)
                result = await traffic.reorg(SOLID + 4)  # the fork point is below the solidified block
                await anvil.mine(1)
                await wait_for(lambda: status.state() == State.HALTED, 20, "the chain to halt")
                await asyncio.sleep(0.3)
                crit = assert_halted(d.rt, CHAIN, logs)
                assert await final_state(d.rt.pool, CHAIN) == before
    assert result.fork_point <= before[0]
    block = crit["block"]
    assert result.fork_point <= block <= before[0]
    # The halt names the block by the hashes the node served (height-prefixed), old and new.
    i = block - result.fork_point
    assert crit["stored_hash"] == front.hashes.tron_of(result.old_hashes[i])
    assert crit["new_hash"] == front.hashes.tron_of(result.new_hashes[i])
    assert crit["new_hash"][:18] == crit["stored_hash"][:18] == f"0x{block:016x}"
    assert front.refused["rate limit"] >= 1


async def test_usd1_control_events_and_checks_through_the_front(
    anvil: Anvil, dsn: str, tmp_path: Path
) -> None:
    """The real USD1 proxy's control events through the front: stored once each, the state the
    API shows in base58, the latest-only control check agreeing with the chain."""
    d = await deploy_usd1(anvil)
    token = d.token
    async with TronFront(anvil.url, solid_depth=SOLID, max_block_range=6) as front:
        cfg = controls_config([front.url], d, dsn, tmp_path, dialect="tron")
        async with controls_running(cfg) as run:
            await token.mint(1000 * 10**18)
            await token.transfer(token.owner, A, 100 * 10**18)
            for step in (
                token.freeze(A),
                token.pause(),
                token.unpause(),
                token.transfer_ownership(NEW_OWNER),
            ):
                await step
            await anvil.mine(6)
            head = await anvil.block_number()
            st = run.rt.statuses[CONTROLS_CHAIN]
            await wait_for(
                lambda: st.control_check is not None and st.control_check["block"] == head,
                20,
                "control check",
            )
            assert st.control_check is not None and st.control_check["mismatches"] == {}
            events = (await run.get("/api/v1/control-events", chain=CONTROLS_CHAIN, limit="1000"))["events"]
            want = await chain_kinds(anvil, [token.address, d.proxy_admin.address], "latest")
            assert Counter(e["kind"] for e in events) == want and want["frozen"] == 1
            assert all(int(e["block_hash"][2:18], 16) == e["block_number"] for e in events)
            frozen = [e for e in events if e["kind"] == "frozen"]
            assert [tron.to_hex(e["subject"]) for e in frozen] == [A]
            body = await run.get("/api/v1/controls")
            h = body["chains"][0]["head"]
            assert tron.to_hex(h["pending_owner"]) == NEW_OWNER == (await token.pending_owner()).lower()
            assert h["paused"] is False is await token.paused()
            assert run.rt.statuses[CONTROLS_CHAIN].mismatch == 0
    assert not [k for k in front.refused if "not supported" in k], front.refused


async def test_the_ethereum_dialect_fails_on_the_front(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    """The control experiment: the same chain read as `dialect: ethereum` trusts the zero blooms,
    finds its logs missing from them and blames the endpoint; nothing is stored. (So the Tron
    test above passes because of the dialect, not because the front changes nothing.)"""
    await traffic.run(6)
    async with TronFront(anvil.url, solid_depth=SOLID) as front:
        raw = tron_config_dict(dsn, tmp_path, front.url, token.address)
        raw["chains"][0] |= {"dialect": "ethereum", "token": token.address}
        with capture_logs() as logs:
            async with running(Config.model_validate(raw), CHAIN, Running) as d:
                await wait_for(
                    lambda: any(e["event"] == "rpc_contradiction" for e in logs), 15, "a bloom contradiction"
                )
                await asyncio.sleep(1.0)  # retried, and still stuck before the first event
                assert d.rt.statuses[CHAIN].indexed < await anvil.block_number()
                assert await d.rt.pool.fetchval("SELECT count(*) FROM events WHERE chain = $1", CHAIN) == 0
    reasons = {e["reason"] for e in logs if e["event"] == "rpc_contradiction"}
    assert reasons and all("logs bloom" in r for r in reasons), reasons
