"""The background audits on real parts: anvil / the LiteSVM devnet, the embedded PostgreSQL and
FaultProxies. A healthy index audits silently; a row deliberately corrupted in the test database
(an event amount, a folded balance) is found, named in /api/v1/status and logged once, and logged
once again when repaired; a range an endpoint served with a dropped log is found by re-reading it
from the other endpoint; the balance reads never exceed the hourly budget."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from indexer.api.app import create_app
from indexer.daemon import serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy, JsonObj
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import SolanaTraffic
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import Runtime
from indexer.sync.status import State
from tests.integration.test_finality_breaks import (
    CHAIN,
    SOL,
    config,
    evm_chain,
    following,
    sol_chain,
    wait_for,
)
from tests.support.chain_truth import TRANSFER

pytestmark = pytest.mark.integration
BALANCE_OF = "0x70a08231"


class CountingProxy(FaultProxy):
    """Counts balanceOf calls; optionally drops one transaction's logs from range queries."""

    balance_calls = 0
    drop_tx: str | None = None

    async def _process(self, items: list[Any]) -> list[JsonObj]:
        for item in items:
            if isinstance(item, dict) and item.get("method") == "eth_call":
                data = str(item["params"][0].get("data", ""))
                if data.startswith(BALANCE_OF):
                    self.balance_calls += 1
        replies = await super()._process(items)
        if self.drop_tx is None:
            return replies
        out = []
        for item, reply in zip(items, replies, strict=True):
            result = reply.get("result")
            if isinstance(item, dict) and item.get("method") == "eth_getLogs" and isinstance(result, list):
                if not item["params"][0].get("blockHash"):
                    kept = [lg for lg in result if lg["transactionHash"] != self.drop_tx]
                    if len(kept) != len(result):
                        self.faults["drop_tx"] += 1
                    reply = {**reply, "result": kept}
            out.append(reply)
        return out


def audited(chain: dict[str, Any], **audit: Any) -> dict[str, Any]:
    return {**chain, "audit": {"enabled": True, "interval": "50ms", **audit}}


async def status_json(rt: Runtime, cfg: Any) -> dict[str, Any]:
    app = create_app(cfg, rt.store, rt.metrics, rt.statuses)
    async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/api/v1/status") as r:
            assert r.status == 200
            body = await r.json()
    return dict(body["chains"][0])


def metric(rt: Runtime, name: str, chain: str) -> float | None:
    return rt.metrics.registry.get_sample_value(name, {"chain": chain})


async def _live(rt: Runtime, anvil: Anvil, chain: str = CHAIN) -> None:
    st = rt.statuses[chain]
    tip = await anvil.block_number()
    await wait_for(lambda: st.phase == State.LIVE and st.indexed >= tip, 30, "live at the tip")
    await wait_for(lambda: st.indexed_finalized >= tip - 4, 10, "finality")


async def test_balance_audit_finds_corrupted_rows_and_their_repair(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(30)
    await anvil.mine(5)
    cfg = config(dsn, tmp_path, audited(evm_chain([anvil.url], token.address), accounts_per_hour=100_000))
    with capture_logs() as logs:
        async with following(cfg) as rt:
            await _live(rt, anvil)
            auditor = rt.auditors[CHAIN]
            auditor.per_round = auditor.accounts.per_round = 50  # every holder in one round
            await auditor.round()
            healthy = rt.statuses[CHAIN].audit
            assert healthy is not None and healthy["accounts_checked"] >= 10
            assert healthy["mismatches"] == [] and healthy["mismatched_accounts"] == 0
            assert metric(rt, "usd1_balance_mismatch_accounts", CHAIN) == 0
            assert metric(rt, "usd1_balance_audit_accounts_total", CHAIN) == healthy["accounts_checked"]

            # Corrupt one finalized event's amount (a transfer lost between two holders would look
            # like this to the supply check: nothing) and one folded balance.
            fin = rt.statuses[CHAIN].indexed_finalized
            ev = await rt.pool.fetchrow(
                "SELECT tx_hash, log_index, block_hash, to_addr, from_addr FROM events WHERE chain = $1"
                " AND kind = 'transfer' AND block_number <= $2 ORDER BY block_number LIMIT 1",
                CHAIN,
                fin,
            )
            await rt.pool.execute(
                "UPDATE events SET amount = amount - 1 WHERE chain = $1 AND tx_hash = $2 AND log_index = $3"
                " AND block_hash = $4",
                CHAIN,
                ev["tx_hash"],
                ev["log_index"],
                ev["block_hash"],
            )
            other = await rt.pool.fetchval(
                "SELECT address FROM balances WHERE chain = $1 AND address <> ALL($2::text[]) AND raw > 0"
                " ORDER BY raw DESC LIMIT 1",
                CHAIN,
                [ev["to_addr"], ev["from_addr"]],
            )
            await rt.pool.execute(
                "UPDATE balances SET raw = raw + 7 WHERE chain = $1 AND address = $2", CHAIN, other
            )
            await auditor.round()
            await auditor.round()  # found once, logged once
            bad = rt.statuses[CHAIN].audit
            assert bad is not None
            wrong = {m["address"] for m in bad["mismatched"]}
            assert wrong == {ev["to_addr"], ev["from_addr"], other}
            assert metric(rt, "usd1_balance_mismatch_accounts", CHAIN) == 3
            body = await status_json(rt, cfg)
            assert {m["address"] for m in body["audit"]["mismatched"]} == wrong
            row = next(m for m in body["audit"]["mismatched"] if m["address"] == other)
            assert int(row["indexed_balances_table"]) == int(row["onchain"]) + 7
            assert row["indexed"] == row["onchain"]  # the events are right for this one

            # Repair: the next round sees it and says so once.
            await rt.pool.execute(
                "UPDATE events SET amount = amount + 1 WHERE chain = $1 AND tx_hash = $2 AND log_index = $3"
                " AND block_hash = $4",
                CHAIN,
                ev["tx_hash"],
                ev["log_index"],
                ev["block_hash"],
            )
            await rt.pool.execute(
                "UPDATE balances SET raw = raw - 7 WHERE chain = $1 AND address = $2", CHAIN, other
            )
            await auditor.round()
            await auditor.round()
            assert metric(rt, "usd1_balance_mismatch_accounts", CHAIN) == 0
            assert rt.statuses[CHAIN].audit["mismatched"] == []  # type: ignore[index]
    found = [e["address"] for e in logs if e["event"] == "balance_mismatch"]
    cleared = [e["address"] for e in logs if e["event"] == "balance_mismatch_cleared"]
    assert sorted(found) == sorted(wrong) and sorted(cleared) == sorted(wrong)
    assert all(e["log_level"] == "error" for e in logs if e["event"] == "balance_mismatch")


async def test_balance_audit_stays_within_its_hourly_budget(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(20)
    await anvil.mine(5)
    async with CountingProxy(anvil.url) as proxy:
        cfg = config(dsn, tmp_path, audited(evm_chain([proxy.url], token.address), accounts_per_hour=12))
        async with following(cfg) as rt:
            await _live(rt, anvil)
            auditor = rt.auditors[CHAIN]
            stop = asyncio.Event()
            task = asyncio.create_task(auditor.run(stop))
            await wait_for(lambda: auditor.requests >= 12, 15, "the hour's budget to be used")
            await asyncio.sleep(1.5)  # ~30 more rounds: nothing more may be read this hour
            stop.set()
            await task
            checked = metric(rt, "usd1_balance_audit_accounts_total", CHAIN)
    assert auditor.requests == 12
    assert proxy.balance_calls == 12  # what the node saw: the audit is the only balanceOf reader
    assert checked == 12


async def test_range_audit_finds_a_range_served_with_a_dropped_log(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(25)
    await anvil.mine(6)
    logs_ = await anvil.rpc(
        "eth_getLogs",
        [{"fromBlock": "0x0", "toBlock": "latest", "address": token.address, "topics": [TRANSFER]}],
    )
    per_tx = Counter(lg["transactionHash"] for lg in logs_)
    # A plain transfer (supply reconciliation cannot see it go missing), alone in its transaction.
    victim = next(
        lg
        for lg in logs_
        if int(lg["topics"][1], 16) and int(lg["topics"][2], 16) and per_tx[lg["transactionHash"]] == 1
    )
    async with CountingProxy(anvil.url) as liar, CountingProxy(anvil.url) as good:
        liar.drop_tx = victim["transactionHash"]
        # The index is built through the liar alone (a backfill has no negative bloom check).
        chain = audited(evm_chain([liar.url], token.address), ranges_per_hour=100, range_blocks=10_000)
        async with following(config(dsn, tmp_path, chain)) as rt:
            await _live(rt, anvil)
        assert liar.faults["drop_tx"] >= 1
        # Now with a second endpoint: the range audit re-reads the finalized range from both.
        chain = audited(
            evm_chain([liar.url, good.url], token.address), ranges_per_hour=100, range_blocks=10_000
        )
        with capture_logs() as logs:
            async with following(config(dsn, tmp_path, chain)) as rt:
                await _live(rt, anvil)
                auditor = rt.auditors[CHAIN]
                await auditor.audit_range()
                report = rt.statuses[CHAIN].range_audit
                mismatches = metric(rt, "usd1_range_audit_mismatch_total", CHAIN)
                labels = rt.sources[CHAIN].endpoints()
    assert report is not None and report["start"] == 0
    assert int(victim["blockNumber"], 16) <= report["end"]
    assert report["endpoints"][labels[0]]["match"] is True  # the liar agrees with what it served
    assert report["endpoints"][labels[1]]["match"] is False
    assert report["endpoints"][labels[1]]["events"] == report["stored_events"] + 1
    assert mismatches == 1
    assert not [e for e in logs if e["event"] == "supply_mismatch"], "a transfer: supply cannot see it"
    (entry,) = [e for e in logs if e["event"] == "range_audit_mismatch"]
    assert entry["endpoint"] == labels[1]
    assert [k.split()[0] for k in entry["only_at_endpoint"]] == [
        f"{int(victim['blockNumber'], 16)}:{victim['transactionHash']}#{int(victim['logIndex'], 16)}"
    ]


async def test_range_audit_is_silent_on_a_healthy_index(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(15)
    await anvil.mine(6)
    async with FaultProxy(anvil.url) as p1, FaultProxy(anvil.url) as p2:
        chain = audited(evm_chain([p1.url, p2.url], token.address), ranges_per_hour=100, range_blocks=8)
        with capture_logs() as logs:
            async with following(config(dsn, tmp_path, chain)) as rt:
                await _live(rt, anvil)
                auditor = rt.auditors[CHAIN]
                st = rt.statuses[CHAIN]
                for _ in range(3):
                    await auditor.round()
                    was = st.indexed_finalized
                    await traffic.run(2)
                    await anvil.mine(1)
                    await wait_for(lambda was=was: st.indexed_finalized > was, 10, "finality to move")
                ranges = metric(rt, "usd1_range_audit_ranges_total", CHAIN)
                mismatches = metric(rt, "usd1_range_audit_mismatch_total", CHAIN)
                report = rt.statuses[CHAIN].range_audit
    assert ranges is not None and ranges >= 2 and mismatches == 0
    assert report is not None and all(e["match"] for e in report["endpoints"].values())
    assert not [e for e in logs if e["event"] in ("range_audit_mismatch", "balance_mismatch", "audit_failed")]


async def test_solana_balance_audit_at_the_commitment_slot(dsn: str, tmp_path: Path) -> None:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=13) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=13, owners=6)
        traffic.setup()
        rng = random.Random(2)
        for _ in range(30):
            traffic.step(rng)
            dn.advance(1)
        cfg = config(
            dsn,
            tmp_path,
            audited(sol_chain(dn.url, traffic.mint_address, "finalized"), accounts_per_hour=100_000),
        )
        with capture_logs() as logs:
            async with following(cfg) as rt:
                st = rt.statuses[SOL]
                fin = dn.ledger.commitment_slot("finalized")
                await wait_for(lambda: st.phase == State.LIVE and st.indexed_finalized >= fin, 20, "live")
                auditor = rt.auditors[SOL]
                auditor.per_round = auditor.accounts.per_round = 50
                await auditor.round()
                healthy = st.audit
                assert healthy is not None and healthy["accounts_checked"] >= 5
                assert healthy["mismatched_accounts"] == 0
                ata = str(traffic.atas[0])
                await rt.pool.execute(
                    "UPDATE balances SET raw = raw + 3 WHERE chain = $1 AND address = $2", SOL, ata
                )
                dn.advance(2)  # the finalized slot moves: the audit waits for the index to reach it
                await auditor.round()
                bad = st.audit
    assert bad is not None
    assert [m["address"] for m in bad["mismatched"]] == [ata]
    assert bad["mismatched"][0]["block"] <= st.indexed_finalized
    assert [e["address"] for e in logs if e["event"] == "balance_mismatch"] == [ata]
