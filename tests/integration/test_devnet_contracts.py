"""The devnet's real contracts on one shared anvil: USD1 (Stablecoin.sol behind OZ 4.8.1
TransparentUpgradeableProxy + ProxyAdmin, solc 0.8.14), the Tether-style token, Chainlink's
MockV3Aggregator.

Ground truth: the chain's own state (eth_call, eth_getStorageAt, logs) and the realdata decoder
table `tests/fixtures/stablecoin_control_events.json` (topic0 and indexed layout of each event);
USD1 facts from `tests/fixtures/usd1_contract_NOTES.md`. Every test runs between an evm_snapshot
and an evm_revert, so they share one deployment and do not depend on each other's order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import to_checksum_address

from indexer.devnet import solc
from indexer.devnet.anvil import Anvil, RpcCallError
from indexer.devnet.chainlink import ChainlinkFeed
from indexer.devnet.contract import ZERO_ADDRESS, TxReceipt, calldata, revert_reason
from indexer.devnet.solc import USD1_SOLC, solc_package_version
from indexer.devnet.tether import TETHER_TOPICS, TetherStyleToken, TetherTraffic
from indexer.devnet.usd1 import (
    USD1_SOURCE,
    USD1_SOURCE_SHA256,
    USD1_TOPICS,
    ProxyAdmin,
    Usd1Deployment,
    Usd1Token,
    deploy_usd1,
)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TABLE = json.loads((FIXTURES / "stablecoin_control_events.json").read_text())
NOTES = (FIXTURES / "usd1_contract_NOTES.md").read_text()

ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b0" * 20)
CAROL = to_checksum_address("0x" + "c0" * 20)
UNIT = 10**18


# -- the realdata table: declarations -> expected log layout ----------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    topic0: str
    params: tuple[tuple[str, str, bool], ...]  # (type, name, indexed)


def _spec(entry: dict[str, Any]) -> EventSpec:
    m = re.fullmatch(r"event (\w+)\((.*)\)", entry["declaration"])
    assert m, entry["declaration"]
    params = []
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        words = part.split()
        typ = {"uint": "uint256"}.get(words[0], words[0])
        params.append((typ, words[-1], "indexed" in words[1:-1]))
    return EventSpec(m.group(1), entry["topic0"], tuple(params))


def _table(section: str) -> dict[str, EventSpec]:
    return {s.name: s for s in map(_spec, TABLE[section]["events"])}


USD1_TABLE = _table("USD1")
USDT_TABLE = _table("USDT_ethereum")


def decode_log(log: dict[str, Any], spec: EventSpec) -> dict[str, Any]:
    """Decode one raw log by the realdata declaration, asserting its topic0 and indexed layout."""
    assert log["topics"][0] == spec.topic0, spec.name
    indexed = [(t, n) for t, n, ix in spec.params if ix]
    plain = [(t, n) for t, n, ix in spec.params if not ix]
    assert len(log["topics"]) == 1 + len(indexed), f"{spec.name}: topics {log['topics']}"
    data = bytes.fromhex(log["data"][2:])
    assert len(data) == 32 * len(plain), f"{spec.name}: data {log['data']}"  # static types only
    out: dict[str, Any] = {}
    for (typ, name), topic in zip(indexed, log["topics"][1:], strict=True):
        out[name] = decode([typ], bytes.fromhex(topic[2:]))[0]
    out.update(zip((n for _, n in plain), decode([t for t, _ in plain], data), strict=True))
    return {k: to_checksum_address(v) if isinstance(v, str) else v for k, v in out.items()}


def events(receipt: TxReceipt, table: dict[str, EventSpec], address: str) -> list[tuple[str, dict[str, Any]]]:
    """[(event name, decoded args)] of the receipt, every log emitted by `address`."""
    by_topic = {s.topic0: s for s in table.values()}
    out = []
    for log in receipt.logs:
        assert log["address"].lower() == address.lower(), log
        spec = by_topic[log["topics"][0]]
        out.append((spec.name, decode_log(log, spec)))
    return out


# -- one anvil, one deployment of each; a snapshot per test --------------------------------------


@dataclass(frozen=True, slots=True)
class Chain:
    anvil: Anvil
    usd1: Usd1Deployment
    tether: TetherStyleToken
    feed: ChainlinkFeed


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    node = Anvil(port=0, chain_id=31337, slots_in_an_epoch=2)
    await node.start()
    try:
        usd1 = await deploy_usd1(node)
        tether = await TetherStyleToken.deploy(node)
        feed = await ChainlinkFeed.deploy(node, decimals=8, initial_answer=100_000_000)
        yield Chain(node, usd1, tether, feed)
    finally:
        await node.stop()


@pytest.fixture
async def fresh(chain: Chain) -> AsyncIterator[Chain]:
    """The shared chain, reverted after the test; fresh helper objects (owners as deployed)."""
    snap = await chain.anvil.rpc("evm_snapshot")
    d = chain.usd1
    usd1 = replace(
        d,
        token=Usd1Token(chain.anvil, d.token.address, owner=d.token.owner),
        proxy_admin=ProxyAdmin(chain.anvil, d.proxy_admin.address, default_sender=d.proxy_admin.owner),
    )
    tether = TetherStyleToken(chain.anvil, chain.tether.address, owner=chain.tether.owner, decimals=6)
    try:
        yield Chain(chain.anvil, usd1, tether, chain.feed)
    finally:
        assert await chain.anvil.rpc("evm_revert", [snap]) is True


# -- USD1: source, compiler, deployment ------------------------------------------------------------


def test_stablecoin_source_is_the_real_one_byte_for_byte() -> None:
    notes_sha = re.search(r"Its sha256 is `([0-9a-f]{64})`", NOTES)
    assert notes_sha is not None
    assert hashlib.sha256(USD1_SOURCE.read_bytes()).hexdigest() == notes_sha.group(1) == USD1_SOURCE_SHA256


def test_helper_topics_equal_the_realdata_table() -> None:
    assert {n: USD1_TOPICS[n] for n in USD1_TABLE} == {n: s.topic0 for n, s in USD1_TABLE.items()}
    assert {n: TETHER_TOPICS[n] for n in USDT_TABLE if n in TETHER_TOPICS} == {
        n: s.topic0 for n, s in USDT_TABLE.items() if n in TETHER_TOPICS
    }
    # Every event of the table's Tether profile that our token models (not Deprecate / Params).
    assert set(USDT_TABLE) - set(TETHER_TOPICS) == {"Deprecate", "Params"}


async def test_usd1_deployment_matches_the_deploy_script(fresh: Chain) -> None:
    d = fresh.usd1
    token, admin = d.token, d.proxy_admin
    deployer = to_checksum_address(token.owner)
    assert "0.8.14+commit.80d49f37" in NOTES
    assert d.artifacts.stablecoin.solc_version.startswith("0.8.14+commit.80d49f37")
    assert solc_package_version(USD1_SOLC) == "0.8.14-fixed"

    # Order on the proxy at deployment (NOTES.md): Upgraded, OwnershipTransferred, Initialized, AdminChanged.
    evs = events(d.proxy_receipt, USD1_TABLE, token.address)
    assert [n for n, _ in evs] == ["Upgraded", "OwnershipTransferred", "Initialized", "AdminChanged"]
    assert (
        "`Upgraded`, then `OwnershipTransferred` and `Initialized`" in NOTES
        and "then `AdminChanged`" in NOTES
    )
    assert evs[0][1] == {"implementation": d.implementation}
    assert evs[1][1] == {"previousOwner": ZERO_ADDRESS, "newOwner": deployer}
    assert evs[2][1] == {"version": 1}
    assert evs[3][1] == {"previousAdmin": ZERO_ADDRESS, "newAdmin": admin.address}
    # The ProxyAdmin's own Ownable constructor, and the bare implementation's initialize.
    assert events(d.proxy_admin_receipt, USD1_TABLE, admin.address) == [
        ("OwnershipTransferred", {"previousOwner": ZERO_ADDRESS, "newOwner": deployer})
    ]
    init = events(d.implementation_init_receipt, USD1_TABLE, d.implementation)
    assert [n for n, _ in init] == ["OwnershipTransferred", "Initialized"]
    assert d.implementation_receipt.logs == ()

    # State, read from the chain: EIP-1967 slots, ProxyAdmin's view of them, ERC-20 metadata.
    assert await token.implementation() == d.implementation == await admin.proxy_implementation(token.address)
    assert await token.admin() == admin.address == await admin.proxy_admin(token.address)
    assert await token.current_owner() == deployer == await admin.current_owner()
    assert await token.pending_owner() == ZERO_ADDRESS
    assert (await token.name(), await token.symbol()) == ("World Liberty Financial USD", "USD1")
    assert await token.total_supply() == 0 and not await token.paused()


# -- USD1: every action's logs against the realdata table -------------------------------------------


async def test_usd1_supply_and_freeze_actions_emit_the_table_layout(fresh: Chain) -> None:
    token = fresh.usd1.token
    owner = to_checksum_address(token.owner)

    r = await token.mint(100 * UNIT)  # mints to the owner only, Transfer then Mint
    assert events(r, USD1_TABLE, token.address) == [
        ("Transfer", {"from": ZERO_ADDRESS, "to": owner, "value": 100 * UNIT}),
        ("Mint", {"caller": owner, "to": owner, "amount": 100 * UNIT}),
    ]
    r = await token.burn(30 * UNIT)
    assert events(r, USD1_TABLE, token.address) == [
        ("Transfer", {"from": owner, "to": ZERO_ADDRESS, "value": 30 * UNIT}),
        ("Burn", {"caller": owner, "from": owner, "amount": 30 * UNIT}),
    ]
    assert await token.total_supply() == 70 * UNIT == await token.balance_of(owner)

    r = await token.freeze(ALICE)
    assert events(r, USD1_TABLE, token.address) == [("Freeze", {"caller": owner, "account": ALICE})]
    assert await token.is_frozen(ALICE)
    r = await token.unfreeze(ALICE)
    assert events(r, USD1_TABLE, token.address) == [("Unfreeze", {"caller": owner, "account": ALICE})]
    assert not await token.is_frozen(ALICE)

    r = await token.pause()
    assert events(r, USD1_TABLE, token.address) == [("Paused", {"account": owner})]
    assert await token.paused()
    r = await token.unpause()
    assert events(r, USD1_TABLE, token.address) == [("Unpaused", {"account": owner})]
    assert not await token.paused()

    # Only the owner may: a holder's mint is mined reverted, with no logs and no supply change.
    r = await token.send(token.tx(ALICE, token.mint_tx(1)["data"]), check=False)
    assert not r.ok and r.logs == ()
    assert await token.total_supply() == 70 * UNIT


async def test_usd1_two_step_ownership_and_renounce_reverts(fresh: Chain) -> None:
    token = fresh.usd1.token
    old = to_checksum_address(token.owner)

    r = await token.renounce_ownership()
    assert not r.ok and r.logs == ()
    with pytest.raises(RpcCallError) as exc:
        await token.call(calldata("renounceOwnership()", [], []), sender=old)
    assert revert_reason(exc.value) == "Unsupported"
    assert await token.current_owner() == old

    r = await token.transfer_ownership(ALICE)
    assert events(r, USD1_TABLE, token.address) == [
        ("OwnershipTransferStarted", {"previousOwner": old, "newOwner": ALICE})
    ]
    assert (await token.current_owner(), await token.pending_owner()) == (old, ALICE)
    # Until accepted, control stays with the old owner.
    assert (await token.mint(5)).ok
    assert not (await token.send(token.tx(ALICE, token.mint_tx(5)["data"]), check=False)).ok
    assert not (await token.accept_ownership(BOB, check=False)).ok  # not the pending owner

    r = await token.accept_ownership(ALICE)
    assert events(r, USD1_TABLE, token.address) == [
        ("OwnershipTransferred", {"previousOwner": old, "newOwner": ALICE})
    ]
    assert (await token.current_owner(), await token.pending_owner()) == (ALICE, ZERO_ADDRESS)
    assert to_checksum_address(token.owner) == ALICE
    assert not (await token.send(token.tx(old, token.mint_tx(1)["data"]), check=False)).ok
    r = await token.mint(7)  # now from ALICE, to ALICE
    assert events(r, USD1_TABLE, token.address)[1] == ("Mint", {"caller": ALICE, "to": ALICE, "amount": 7})
    assert await token.balance_of(ALICE) == 7 and await token.total_supply() == 12


async def test_usd1_upgrade_admin_change_and_proxy_admin_ownership(fresh: Chain) -> None:
    d = fresh.usd1
    token, admin = d.token, d.proxy_admin
    await token.mint(50 * UNIT)
    await token.transfer(token.owner, ALICE, 20 * UNIT)
    await token.freeze(BOB)

    r = await d.upgrade_to_v2()
    [(name, args)] = events(r, USD1_TABLE, token.address)
    new_impl = args["implementation"]
    assert name == "Upgraded" and new_impl != d.implementation
    assert await token.implementation() == new_impl == await admin.proxy_implementation(token.address)
    assert await token.read_uint("version()") == 2  # the proxy runs our V2 now
    # State survives the upgrade: supply, balances, freeze, owner.
    assert await token.total_supply() == 50 * UNIT and await token.balance_of(ALICE) == 20 * UNIT
    assert await token.is_frozen(BOB) and await token.current_owner() == to_checksum_address(token.owner)

    # ProxyAdmin ownership (Ownable, one step), logged on the ProxyAdmin.
    old_admin_owner = to_checksum_address(admin.owner)
    not_owner = ProxyAdmin(fresh.anvil, admin.address, default_sender=CAROL)
    assert not (await not_owner.upgrade(token.address, d.implementation, check=False)).ok
    r = await admin.transfer_ownership(CAROL)
    assert events(r, USD1_TABLE, admin.address) == [
        ("OwnershipTransferred", {"previousOwner": old_admin_owner, "newOwner": CAROL})
    ]
    assert await admin.current_owner() == CAROL
    stale = ProxyAdmin(fresh.anvil, admin.address, default_sender=old_admin_owner)
    assert not (await stale.upgrade(token.address, d.implementation, check=False)).ok
    r = await admin.upgrade(token.address, d.implementation)  # CAROL rolls back to V1
    assert events(r, USD1_TABLE, token.address) == [("Upgraded", {"implementation": d.implementation})]
    with pytest.raises(RpcCallError):
        await token.read_uint("version()")

    # changeProxyAdmin: AdminChanged(ProxyAdmin, new) on the proxy; the old ProxyAdmin is out.
    r = await admin.change_proxy_admin(token.address, BOB)
    assert events(r, USD1_TABLE, token.address) == [
        ("AdminChanged", {"previousAdmin": admin.address, "newAdmin": BOB})
    ]
    assert await token.admin() == BOB
    assert not (await admin.upgrade(token.address, new_impl, check=False)).ok


async def test_usd1_pause_and_freeze_block_transfers_not_mint_or_burn(fresh: Chain) -> None:
    token = fresh.usd1.token
    owner = token.owner
    await token.mint(100 * UNIT)
    await token.transfer(owner, ALICE, 40 * UNIT)

    await token.pause()
    assert not (await token.transfer(ALICE, BOB, UNIT, check=False)).ok
    assert not (await token.transfer(owner, BOB, UNIT, check=False)).ok
    assert not (await token.approve(ALICE, BOB, UNIT, check=False)).ok
    assert (await token.mint(10 * UNIT)).ok and (await token.burn(5 * UNIT)).ok
    assert await token.total_supply() == 105 * UNIT
    await token.unpause()
    assert (await token.transfer(ALICE, BOB, UNIT)).ok

    await token.freeze(ALICE)
    assert not (await token.transfer(ALICE, BOB, UNIT, check=False)).ok  # frozen sender
    assert not (await token.transfer(BOB, ALICE, UNIT, check=False)).ok  # frozen receiver
    assert not (await token.approve(ALICE, BOB, UNIT, check=False)).ok
    assert (await token.mint(UNIT)).ok and (await token.burn(UNIT)).ok
    # The frozen balance stays in supply: totalSupply is still the sum of all balances.
    balances = [await token.balance_of(a) for a in (owner, ALICE, BOB)]
    assert balances[1] == 39 * UNIT and sum(balances) == await token.total_supply() == 105 * UNIT
    await token.unfreeze(ALICE)
    assert (await token.transfer(ALICE, BOB, UNIT)).ok
    assert await token.balance_of(BOB) == 2 * UNIT


# -- Tether profile ---------------------------------------------------------------------------------


async def test_tether_supply_moves_without_transfer_events(fresh: Chain) -> None:
    t = fresh.tether
    owner = to_checksum_address(t.owner)
    r = await t.issue(1_000_000)
    assert events(r, USDT_TABLE, t.address) == [("Issue", {"amount": 1_000_000})]  # no Transfer
    assert (await t.total_supply(), await t.balance_of(owner)) == (1_000_000, 1_000_000)
    r = await t.redeem(250_000)
    assert events(r, USDT_TABLE, t.address) == [("Redeem", {"amount": 250_000})]
    assert (await t.total_supply(), await t.balance_of(owner)) == (750_000, 750_000)
    r = await t.transfer(owner, ALICE, 300_000)
    assert [n for n, _ in events(r, _erc20_and(USDT_TABLE), t.address)] == ["Transfer"]

    r = await t.add_black_list(ALICE)
    assert events(r, USDT_TABLE, t.address) == [("AddedBlackList", {"_user": ALICE})]  # in data
    assert await t.is_black_listed(ALICE)
    assert not (await t.transfer(ALICE, BOB, 1, check=False)).ok  # cannot send...
    assert (await t.transfer(owner, ALICE, 1)).ok  # ...can receive
    r = await t.destroy_black_funds(ALICE)
    assert events(r, USDT_TABLE, t.address) == [
        ("DestroyedBlackFunds", {"_blackListedUser": ALICE, "_balance": 300_001})
    ]
    assert (await t.balance_of(ALICE), await t.total_supply()) == (0, 449_999)
    r = await t.remove_black_list(ALICE)
    assert events(r, USDT_TABLE, t.address) == [("RemovedBlackList", {"_user": ALICE})]

    r = await t.pause()
    assert events(r, USDT_TABLE, t.address) == [("Pause", {})]
    assert not (await t.transfer(owner, BOB, 1, check=False)).ok
    assert (await t.issue(1)).ok  # issue is not whenNotPaused
    r = await t.unpause()
    assert events(r, USDT_TABLE, t.address) == [("Unpause", {})]

    r = await t.transfer_ownership(CAROL)  # USDT emits NO event on an owner change
    assert r.ok and r.logs == ()
    assert await t.current_owner() == CAROL
    assert (await t.issue(5)).ok and await t.balance_of(CAROL) == 5


def _erc20_and(table: dict[str, EventSpec]) -> dict[str, EventSpec]:
    """The realdata USDT section has no Transfer row: take USD1's (the same ERC-20 declaration)."""
    return {**table, "Transfer": USD1_TABLE["Transfer"]}


async def test_tether_traffic_with_reorgs_reconciles_from_its_events(fresh: Chain) -> None:
    """Random traffic and reorgs; afterwards totalSupply equals (a) the sum of every balance and (b)
    what the canonical logs say: Issue - Redeem - DestroyedBlackFunds (no Transfer mints)."""
    t = fresh.tether
    start = await fresh.anvil.block_number()
    traffic = TetherTraffic(t, seed=7, holders=6, max_mint_tokens=1_000)
    await traffic.run(60)
    await traffic.reorg(3)
    await traffic.run(40)
    await traffic.reorg(2, txs_per_block=2)
    await traffic.run(20)
    kinds = traffic.stats.ops
    for kind in ("issue", "redeem", "distribute", "transfer", "blacklist", "destroy_black_funds", "reorg"):
        assert kinds.get(kind, 0) > 0, kinds

    supply = await t.total_supply()
    assert supply == sum([await t.balance_of(a) for a in [t.owner, *traffic.holders]])
    delta = 0
    for log in await t.logs([], start + 1):
        name = {v: k for k, v in TETHER_TOPICS.items()}.get(log["topics"][0], "")
        if name in ("Issue", "Redeem", "DestroyedBlackFunds"):
            args = decode_log(log, USDT_TABLE[name])
            amount = args["amount"] if name != "DestroyedBlackFunds" else args["_balance"]
            delta += amount if name == "Issue" else -amount
        elif name == "Transfer":
            args = decode_log(log, USD1_TABLE["Transfer"])
            assert ZERO_ADDRESS not in (args["from"], args["to"])
    assert delta == supply - await t.total_supply(start) and supply > 0


# -- Chainlink --------------------------------------------------------------------------------------


async def test_chainlink_feed_answers_what_was_set(fresh: Chain) -> None:
    feed = fresh.feed
    assert await feed.decimals() == 8
    assert await feed.description() == "v0.8/tests/MockV3Aggregator.sol"
    first = await feed.latest_round_data()
    assert (first.round_id, first.answer, first.answered_in_round) == (1, 100_000_000, 1)

    r = await feed.update_answer(99_950_000)
    block = await fresh.anvil.rpc("eth_getBlockByNumber", [hex(r.block_number), False])
    latest = await feed.latest_round_data()
    assert (latest.round_id, latest.answer) == (2, 99_950_000)
    assert latest.updated_at == latest.started_at == int(block["timestamp"], 16)
    assert await feed.latest_round_data(r.block_number - 1) == first  # at an earlier block
    assert (await feed.get_round_data(1)).answer == 100_000_000

    await feed.update_round_data(10, -5, updated_at=1_700_000_000, started_at=1_699_999_000)
    stale = await feed.latest_round_data()
    assert (stale.round_id, stale.answer, stale.updated_at, stale.started_at) == (
        10,
        -5,
        1_700_000_000,
        1_699_999_000,
    )
    assert (await feed.get_round_data(2)).answer == 99_950_000


# -- the compile cache ------------------------------------------------------------------------------


def test_compile_cache_is_keyed_by_every_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "Lib.sol").write_text(
        "pragma solidity ^0.8.0;\nlibrary Lib { function one() internal pure returns (uint) { return 1; } }\n"
    )
    main = src / "Main.sol"
    main.write_text(
        'pragma solidity ^0.8.0;\nimport "./Lib.sol";\ncontract Main { function f() external pure returns (uint) { return Lib.one(); } }\n'
    )
    cache = tmp_path / "cache"
    first = solc.compile_contract(main, "Main", cache_dir=cache)
    assert first.bytecode.startswith("0x6080") and first.solc_version.startswith("0.8.28")

    def no_compiler(*_: object) -> None:
        raise AssertionError("compiled again although nothing changed")

    monkeypatch.setattr(solc, "_run_solc", no_compiler)
    assert solc.compile_contract(main, "Main", cache_dir=cache) == first  # from the cache
    (src / "Lib.sol").write_text((src / "Lib.sol").read_text().replace("return 1", "return 2"))
    with pytest.raises(AssertionError, match="compiled again"):  # an imported file changed
        solc.compile_contract(main, "Main", cache_dir=cache)
