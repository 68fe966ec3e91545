"""Control events end to end on real parts: the REAL USD1 (OpenZeppelin 4.8.1 proxy + ProxyAdmin)
and the Tether-style token on anvil -> EvmSource (one filter, the dispatch) -> PostgreSQL -> API and
metrics. Ground truth is the chain: its logs (decoded here with the devnet helpers' own topic table),
`owner()`, `pendingOwner()`, `paused()`, `frozen(account)`, the EIP-1967 slots, `totalSupply()`."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.api.app import create_app
from indexer.config import Config
from indexer.daemon import backfill, fill_family, serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.contract import ANVIL_ACCOUNT0, TxReceipt
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.tether import TETHER_TOPICS, TetherStyleToken, TetherTraffic
from indexer.devnet.usd1 import ADMIN_SLOT, USD1_TOPICS, Usd1Deployment, deploy_usd1
from indexer.model import Family
from indexer.runtime import open_runtime
from tests.integration.test_evm_pipeline import make_config, wait_for
from tests.support import daemon_run

pytestmark = pytest.mark.integration
CHAIN = "devnet"
A, B, C = ("0x" + c * 40 for c in "abc")
NEW_OWNER, ADMIN_OWNER = "0x" + "d1" * 20, "0x" + "d2" * 20
EOA = "0x" + "e0" * 20  # a watched address with no code
ZERO = "0x" + "0" * 40

# Control kinds by the devnet helpers' topic tables (independent of the indexer's decoder table).
USD1_KINDS = {
    USD1_TOPICS["OwnershipTransferStarted"]: "ownership_transfer_started",
    USD1_TOPICS["OwnershipTransferred"]: "ownership_transferred",
    USD1_TOPICS["Upgraded"]: "upgraded",
    USD1_TOPICS["AdminChanged"]: "admin_changed",
    USD1_TOPICS["BeaconUpgraded"]: "beacon_upgraded",
    USD1_TOPICS["Paused"]: "paused",
    USD1_TOPICS["Unpaused"]: "unpaused",
    USD1_TOPICS["Freeze"]: "frozen",
    USD1_TOPICS["Unfreeze"]: "unfrozen",
}


def config(rpc: list[str], d: Usd1Deployment, dsn: str, tmp: Any, **chain: Any) -> Config:
    """The pipeline tests' chain with the USD1 profile and its ProxyAdmin watched."""
    usd1: dict[str, Any] = {
        "profile": "usd1",
        "watch": [{"address": d.proxy_admin.address, "label": "proxy_admin", "controls": ["ownable"]}],
        "control_check_interval": "100ms",
    }
    return make_config(rpc, d.token.address, dsn, tmp, **{**usd1, **chain})


class Running(daemon_run.Running):
    async def settled(self, anvil: Anvil, after_block: int) -> None:
        """Mine past finality, then wait until the index and the control check are there."""
        await anvil.mine(6)
        head = await anvil.block_number()
        st = self.rt.statuses[CHAIN]
        await wait_for(lambda: st.indexed == head and st.indexed_finalized >= head - 4, 20, "finalization")
        await wait_for(
            lambda: st.control_check is not None and st.control_check["block"] >= after_block,
            20,
            "control check",
        )


@pytest.fixture
async def usd1(anvil: Anvil) -> Usd1Deployment:
    return await deploy_usd1(anvil)


def running(cfg: Config) -> contextlib.AbstractAsyncContextManager[Running]:
    return daemon_run.running(cfg, CHAIN, Running)


async def chain_kinds(anvil: Anvil, addresses: list[str], upto: int | str) -> Counter[str]:
    """Control events per kind in the chain's own logs of these contracts."""
    logs = await anvil.rpc(
        "eth_getLogs",
        [{"fromBlock": "0x0", "toBlock": upto if isinstance(upto, str) else hex(upto), "address": addresses}],
    )
    return Counter(USD1_KINDS[lg["topics"][0]] for lg in logs if lg["topics"][0] in USD1_KINDS)


async def test_usd1_controls_follow_the_chain_through_every_action_and_a_reorg(
    anvil: Anvil, usd1: Usd1Deployment, dsn: str, tmp_path: Path
) -> None:
    token, pa = usd1.token, usd1.proxy_admin
    cfg = config([anvil.url], usd1, dsn, tmp_path)
    contracts = [token.address, pa.address]
    async with running(cfg) as run:
        last: TxReceipt = await token.mint(1000 * 10**18)
        for holder, amount in ((A, 100), (B, 200), (C, 50)):
            await token.transfer(token.owner, holder, amount * 10**18)
        for step in (
            token.freeze(A),
            token.unfreeze(A),
            token.freeze(B),
            token.pause(),
            token.unpause(),
            token.transfer_ownership(NEW_OWNER),
        ):
            last = await step
        await token.prepare_account(NEW_OWNER)
        last = await token.accept_ownership(NEW_OWNER)
        await token.mint(5 * 10**18)  # mint and burn by the new owner
        await token.burn(2 * 10**18)
        last = await usd1.upgrade_to_v2()
        last = await pa.transfer_ownership(ADMIN_OWNER)
        await run.settled(anvil, last.block_number)

        body = await run.get("/api/v1/controls")
        c = body["chains"][0]
        assert c["enabled"] and c["coverage"] == {"from_block": 0, "complete": True}
        head, fin = c["head"], c["finalized"]
        assert head["block"] > fin["block"] >= last.block_number
        for st in (head, fin):
            assert st["owner"] == NEW_OWNER == (await token.current_owner()).lower()
            assert st["pending_owner"] is None and (await token.pending_owner()).lower() == ZERO
            assert (
                st["implementation"] == (await token.implementation()).lower() != usd1.implementation.lower()
            )
            assert st["admin"] == (await token.admin()).lower() == pa.address.lower()
            assert st["paused"] is False is await token.paused()
            assert [a["address"] for a in st["frozen"]["accounts"]] == [B]
            assert await token.is_frozen(B) and not await token.is_frozen(A)
            assert int(st["frozen"]["raw"]) == await token.balance_of(B) == 200 * 10**18
            assert st["watched"][0]["owner"] == ADMIN_OWNER == (await pa.current_owner()).lower()
        assert head["last_change"]["kind"] == "ownership_transferred"
        assert head["last_change"]["block"] == last.block_number
        # The check agreed with the chain on every field it read.
        check = c["check"]
        assert check["mismatches"] == {} and set(check["checked"]) >= {
            "owner",
            "implementation",
            "admin",
            "paused",
            "frozen",
        }

        # Every control event of the chain's logs, once (the event list), by kind.
        events = (await run.get("/api/v1/control-events", chain=CHAIN, limit="1000"))["events"]
        want = await chain_kinds(anvil, contracts, "latest")
        assert Counter(e["kind"] for e in events) == want
        assert want["ownership_transferred"] == 4 and want["upgraded"] == 2 and want["frozen"] == 2
        assert {e["contract"] for e in events} == {"token", "proxy_admin"}
        # Metrics: finalized counter, head gauges, state, no mismatch.
        fin_kinds = await chain_kinds(anvil, contracts, fin["block"])
        for kind, n in want.items():
            assert run.metric("usd1_control_events_total", kind=kind) == fin_kinds[kind], kind
            assert run.metric("usd1_control_head_events", kind=kind) == n, kind
        assert run.metric("usd1_paused") == 0 and run.metric("usd1_frozen_accounts") == 1
        assert run.metric("usd1_frozen_tokens") == 200.0
        info = {"owner": NEW_OWNER, "admin": pa.address.lower(), "implementation": head["implementation"]}
        assert run.metric("usd1_control_info", **info) == 1
        series = [
            s for m in run.rt.metrics.registry.collect() if m.name == "usd1_control_info" for s in m.samples
        ]
        assert len(series) == 1  # the old owner/implementation label sets were removed
        for field in ("owner", "pending_owner", "implementation", "admin", "paused", "frozen"):
            assert run.metric("usd1_control_mismatch", field=field) == 0, field
        # Supply still reconciles (mint/burn to and from the owner are Transfers).
        assert run.rt.statuses[CHAIN].mismatch == 0

        # A reorg orphans a freeze and a pause: gone from state, API and head metrics, exactly.
        paused_before = run.metric("usd1_last_control_event_timestamp_seconds", kind="paused")
        frozen_before = run.metric("usd1_control_head_events", kind="frozen")
        reorgs = len(await run.rt.store.reorgs(CHAIN))
        await token.freeze(C)
        pause = await token.pause()
        st = run.rt.statuses[CHAIN]
        await wait_for(lambda: st.indexed >= pause.block_number, 10, "the pause block")
        await wait_for(lambda: run.metric("usd1_paused") == 1, 10, "paused at head")
        assert (
            run.metric("usd1_frozen_accounts") == 2
            and run.metric("usd1_control_head_events", kind="frozen") == frozen_before + 1
        )
        pause_time = int(
            (await anvil.rpc("eth_getBlockByNumber", [hex(pause.block_number), False]))["timestamp"], 16
        )
        assert run.metric("usd1_last_control_event_timestamp_seconds", kind="paused") == pause_time
        counted = run.metric("usd1_control_events_total", kind="frozen")
        await anvil.rpc("anvil_reorg", [2, []])  # the two blocks again, without those transactions
        await wait_for(lambda: run.metric("usd1_paused") == 0, 15, "the reorg")
        assert run.metric("usd1_frozen_accounts") == 1
        assert run.metric("usd1_control_head_events", kind="frozen") == frozen_before
        assert run.metric("usd1_last_control_event_timestamp_seconds", kind="paused") == paused_before
        assert run.metric("usd1_control_events_total", kind="frozen") == counted  # finalized: untouched
        body = await run.get("/api/v1/controls")
        assert body["chains"][0]["head"]["paused"] is False
        assert [a["address"] for a in body["chains"][0]["head"]["frozen"]["accounts"]] == [B]
        events = (await run.get("/api/v1/control-events", chain=CHAIN, address=C))["events"]
        assert events == []
        record = (await run.get("/api/v1/reorgs", chain=CHAIN))["reorgs"]
        assert len(record) == reorgs + 1 and record[0]["orphaned"] == {"transfers": 0, "controls": 2}

        # The chain changes under the index (the admin slot rewritten, no event): a mismatch,
        # exported while it lasts and cleared when the chain agrees again.
        slot = hex(ADMIN_SLOT)
        await anvil.rpc("anvil_setStorageAt", [token.address, slot, "0x" + "0" * 24 + "ee" * 20])
        await anvil.mine(6)
        await wait_for(lambda: run.metric("usd1_control_mismatch", field="admin") == 1, 15, "the mismatch")
        assert run.metric("usd1_control_mismatch", field="owner") == 0
        await anvil.rpc("anvil_setStorageAt", [token.address, slot, "0x" + "0" * 24 + pa.address[2:].lower()])
        await anvil.mine(6)
        await wait_for(
            lambda: run.metric("usd1_control_mismatch", field="admin") == 0, 15, "the mismatch to end"
        )


async def test_enabling_controls_on_an_indexed_chain_fills_only_that_family(
    anvil: Anvil, usd1: Usd1Deployment, dsn: str, tmp_path: Path
) -> None:
    token = usd1.token
    await token.mint(100 * 10**18)
    await token.transfer(token.owner, A, 10 * 10**18)
    await token.freeze(A)
    await token.pause()
    await token.unpause()
    await anvil.mine(5)
    plain = config([anvil.url], usd1, dsn, tmp_path, profile="erc20", watch=[])
    indexed = (await backfill(plain, None, None))[CHAIN]
    async with open_runtime(plain) as rt:
        events_before = await rt.pool.fetch("SELECT * FROM events ORDER BY block_number, log_index")
        assert events_before and await rt.pool.fetchval("SELECT count(*) FROM control_events") == 0

    full = config([anvil.url], usd1, dsn, tmp_path)
    async with open_runtime(full) as rt:
        cov = (await rt.store.coverage(CHAIN))[Family.CONTROLS]
        assert cov.from_block == indexed + 1  # never claims what it has not read
        app = create_app(full, rt.store, rt.metrics, rt.statuses)
        async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v1/controls") as r:
                c = (await r.json())["chains"][0]
            assert c["coverage"] == {"from_block": indexed + 1, "complete": False}
            assert c["head"]["owner"] is None  # nothing read yet: no state claimed
    assert (await fill_family(full, None, Family.CONTROLS)) == {CHAIN: 0}
    async with open_runtime(full) as rt:
        assert await rt.pool.fetch("SELECT * FROM events ORDER BY block_number, log_index") == events_before
        assert (await rt.store.load_checkpoint(CHAIN)).cursor.number == indexed  # type: ignore[union-attr]
        rows = await rt.pool.fetch("SELECT kind FROM control_events WHERE chain = $1", CHAIN)
        assert Counter(r["kind"] for r in rows) == await chain_kinds(
            anvil, [token.address, usd1.proxy_admin.address], indexed
        )
        assert (await rt.store.coverage(CHAIN))[Family.CONTROLS].from_block == 0
    # Filling again is a no-op.
    assert (await fill_family(full, None, Family.CONTROLS)) == {CHAIN: 0}


async def test_tether_profile_reconciles_exactly_through_random_traffic_and_reorgs(
    anvil: Anvil, dsn: str, tmp_path: Path
) -> None:
    """Issue/Redeem/DestroyedBlackFunds move supply without a Transfer: supply, balances and the
    blacklist at the finalized block equal the chain's, to the base unit, through reorgs, and an
    owner change in the very block of an Issue is resolved exactly."""
    t = await TetherStyleToken.deploy(anvil)
    cfg = make_config(
        anvil.url, t.address, dsn, tmp_path, decimals=6, profile="tether", control_check_interval="100ms"
    )
    traffic = TetherTraffic(t, seed=11, holders=6, max_mint_tokens=1_000)
    async with running(cfg) as run:
        st = run.rt.statuses[CHAIN]
        # The owner changes in the block of an Issue (Tether logs no event for it).
        await t.issue(50 * 10**6)
        await anvil.rpc("evm_setAutomine", [False])
        await t.prepare_account(NEW_OWNER)
        await t.submit(t.tx(t.owner, "0xf2fde38b" + NEW_OWNER[2:].rjust(64, "0")))  # transferOwnership
        t.owner = NEW_OWNER
        issue = await t.submit(t.issue_tx(7 * 10**6))
        await anvil.rpc("evm_mine")
        await anvil.rpc("evm_setAutomine", [True])
        receipt = await anvil.rpc("eth_getTransactionReceipt", [issue])
        assert receipt["status"] == "0x1"
        for i in range(3):
            await traffic.run(25)
            tip = await anvil.block_number()
            await wait_for(lambda tip=tip: st.indexed >= tip, 15, "the tip")
            await traffic.reorg(2 + i % 2, txs_per_block=1 + i % 2)
        await traffic.run(15)
        await anvil.mine(6)
        head = await anvil.block_number()
        await wait_for(lambda: st.indexed == head and st.indexed_finalized >= head - 4, 20, "finalization")
        fin = st.indexed_finalized
        await wait_for(
            lambda: st.mismatch_block is not None and st.mismatch_block >= fin - 1, 20, "supply check"
        )
        assert st.mismatch == 0
        assert (await run.rt.store.supply_at(CHAIN, fin)).supply == await t.total_supply(fin) > 0
        for holder in [ANVIL_ACCOUNT0, NEW_OWNER, *traffic.holders]:
            assert await run.rt.store.balance(CHAIN, holder.lower(), fin) == await t.balance_of(
                holder, fin
            ), holder
        ops = traffic.stats.ops
        for kind in ("issue", "redeem", "blacklist", "destroy_black_funds", "reorg"):
            assert ops.get(kind, 0) > 0, ops
        # The owner credited by the Issue of the owner-changing block is the new owner.
        row = await run.rt.pool.fetchrow("SELECT kind, to_addr, amount FROM events WHERE tx_hash = $1", issue)
        assert (row["kind"], row["to_addr"], int(row["amount"])) == ("mint", NEW_OWNER, 7 * 10**6)
        # The blacklist at head is the chain's; its count is exported.
        body = await run.get("/api/v1/controls")
        listed = {a["address"] for a in body["chains"][0]["head"]["frozen"]["accounts"]}
        assert listed == {h.lower() for h in traffic.holders if await t.is_black_listed(h)}
        assert run.metric("usd1_frozen_accounts") == len(listed)
        logs = await anvil.rpc(
            "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(fin), "address": t.address}]
        )
        destroyed = sum(1 for lg in logs if lg["topics"][0] == TETHER_TOPICS["DestroyedBlackFunds"])
        assert run.metric("usd1_control_events_total", kind="frozen_funds_destroyed") == destroyed > 0


async def test_bad_input_is_a_clear_error_or_a_counted_skip_and_loses_nothing(
    anvil: Anvil, usd1: Usd1Deployment, dsn: str, tmp_path: Path
) -> None:
    token, pa = usd1.token, usd1.proxy_admin
    watch = [
        {"address": EOA, "label": "multisig"},  # no code at that address
        {"address": pa.address, "label": "proxy_admin", "controls": ["ownable", "pausable"]},  # no paused()
    ]
    async with FaultProxy(anvil.url) as proxy:
        # 1. An endpoint that returns a log the filter did not ask for is blamed; the other one serves.
        def stray(logs: list[Any]) -> list[Any]:
            return logs + [{**lg, "address": "0x" + "99" * 20} for lg in logs[:1]]

        proxy.logs_hook = stray
        cfg = config([proxy.url, anvil.url], usd1, dsn, tmp_path, watch=watch)
        async with running(cfg) as run:
            await token.mint(10 * 10**18)
            last = await token.freeze(A)
            await run.settled(anvil, last.block_number)
            assert proxy.faults["logs_hook"] > 0
            blamed = run.metric(
                "usd1_rpc_requests_total", endpoint=f"127.0.0.1:{proxy.port}", outcome="contradiction"
            )
            assert blamed is not None and blamed > 0
            events = (await run.get("/api/v1/control-events", chain=CHAIN))["events"]
            assert Counter(e["kind"] for e in events) == await chain_kinds(
                anvil, [token.address, pa.address], "latest"
            )
            # The EOA and the reverting getter: skipped, counted, no crash, the rest checked.
            assert (run.metric("usd1_control_check_skipped_total", field="all", reason="no_code") or 0) > 0
            assert (
                run.metric("usd1_control_check_skipped_total", field="paused", reason="reverted") or 0
            ) > 0
            assert run.metric("usd1_control_mismatch", field="frozen") == 0
            assert run.rt.statuses[CHAIN].control_check["mismatches"] == {}  # type: ignore[index]

        # 2. An endpoint that drops a control log: the block's bloom says it may be there, the
        # other endpoint has it (the negative bloom check, live mode); the dropping one is blamed.
        def drop(logs: list[Any]) -> list[Any]:
            return [lg for lg in logs if lg["topics"][0] != USD1_TOPICS["Freeze"]]

        proxy.logs_hook = drop
        proxy.reset_counters()
        async with running(cfg) as run:
            st = run.rt.statuses[CHAIN]
            await wait_for(lambda: st.phase.value == "live", 15, "live")
            dropped = await token.freeze(C)
            await run.settled(anvil, dropped.block_number)
            assert proxy.faults["logs_hook"] > 0
            label = f"127.0.0.1:{proxy.port}"
            assert (run.metric("usd1_rpc_requests_total", endpoint=label, outcome="contradiction") or 0) > 0
            head = (await run.get("/api/v1/controls"))["chains"][0]["head"]
            assert sorted(a["address"] for a in head["frozen"]["accounts"]) == [A, C]

        # 3. A control log of a known topic0 with a layout its spec does not have (a topic
        # dropped): a clear error, nothing stored past it; once the endpoint heals, nothing is lost.
        def garble(logs: list[Any]) -> list[Any]:
            return [
                {**lg, "topics": lg["topics"][:2]} if lg["topics"][0] == USD1_TOPICS["Freeze"] else lg
                for lg in logs
            ]

        proxy.logs_hook = garble
        cfg = config([proxy.url], usd1, dsn, tmp_path, watch=watch)
        async with running(cfg) as run:
            st = run.rt.statuses[CHAIN]
            bad = await token.freeze(B)
            await anvil.mine(2)
            await wait_for(
                lambda: st.last_error is not None and "Freeze log" in st.last_error, 15, "the error"
            )
            assert "takes 3 topics" in (st.last_error or "")
            assert st.indexed < bad.block_number
            proxy.logs_hook = None
            await run.settled(anvil, bad.block_number)
            head = (await run.get("/api/v1/controls"))["chains"][0]["head"]
            assert sorted(a["address"] for a in head["frozen"]["accounts"]) == [A, B, C]


async def test_legacy_dialect_reads_state_by_number_and_needs_no_finality_tag(
    anvil: Anvil, usd1: Usd1Deployment, dsn: str, tmp_path: Path
) -> None:
    """A node of the `legacy` dialect (no finalized/safe tags, no EIP-1898): finality by
    confirmations, totalSupply and the control getters read by block number, and the same answers."""
    token = usd1.token
    cfg = config([anvil.url], usd1, dsn, tmp_path, dialect="legacy", finality={"confirmations": 3})
    async with running(cfg) as run:
        await token.mint(7 * 10**18)
        last = await token.freeze(A)
        await run.settled(anvil, last.block_number)
        st = run.rt.statuses[CHAIN]
        await wait_for(lambda: st.mismatch_block is not None, 10, "the supply check")
        assert st.mismatch == 0 and st.indexed_finalized == await anvil.block_number() - 3
        check = st.control_check
        assert check is not None and check["mismatches"] == {} and "frozen" in check["checked"]
        head = (await run.get("/api/v1/controls"))["chains"][0]["finalized"]
        assert head["owner"] == (await token.current_owner()).lower()
