"""The EVM event-family dispatch: every decoder against the realdata topic table (topic0 and
indexed-ness of USD1, USDC and USDT), against an independent ABI encoder (eth_abi) for every
layout it accepts, and on real logs; the filter, the cross product, and what is an error."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chains.decode_worker import DecodedLogs, decode_reply
from indexer.chains.evm_decode import TRANSFER_TOPIC, ZERO_ADDRESS
from indexer.chains.evm_families import (
    FAMILIES,
    PROFILES,
    TRANSFER,
    ControlFamily,
    EventSpec,
    LogDispatch,
    UnaskedLog,
    decode_logs,
)
from indexer.errors import MalformedReply
from indexer.model import ControlEvent, ControlKind, EventKind, Family, TokenEvent
from tests.support.evm_logs import node_filter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TABLE = json.loads((FIXTURES / "stablecoin_control_events.json").read_text())
SPECS: dict[str, EventSpec] = {s.signature: s for fam in FAMILIES.values() for s in fam} | {
    TRANSFER.signature: TRANSFER
}
# The families each realdata token decodes (its profile).
PROFILE_OF = {"USD1": "usd1", "USDC": "fiattoken", "USDT_ethereum": "tether"}
# Events of the table that no family decodes, and why.
NOT_DECODED = {
    "Mint(address,address,uint256)",  # the Transfer from 0x0 next to it is the supply move
    "Burn(address,address,uint256)",
    "Burn(address,uint256)",
    "Initialized(uint8)",  # not a control change
    "RescuerChanged(address)",  # not in the control vocabulary
    "Deprecate(address)",
    "Params(uint256,uint256)",
}
TOKEN = "0x" + "11" * 20
ADMIN = "0x" + "22" * 20
RECEIPTS = "erigon_getBlockReceiptsByBlockHash__test_07.json"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"


def _indexed(declaration: str) -> tuple[bool, ...]:
    args = declaration[declaration.index("(") + 1 : declaration.rindex(")")]
    return tuple(" indexed " in f" {a.strip()} " for a in args.split(",") if a.strip())


@pytest.mark.parametrize("token", sorted(PROFILE_OF))
def test_every_event_of_the_realdata_table_has_its_topic0_and_layout(token: str) -> None:
    families = {s for fam in PROFILES[PROFILE_OF[token]] for s in FAMILIES[fam]} | {TRANSFER}
    seen = 0
    for ev in TABLE[token]["events"]:
        sig = ev["signature"]
        if sig in NOT_DECODED:
            assert sig not in {s.signature for s in families}
            continue
        spec = SPECS[sig]
        assert spec in families, f"{token} profile lacks {sig}"
        assert spec.topic0 == ev["topic0"], sig
        assert _indexed(ev["declaration"]) in spec.layouts, (sig, ev["declaration"])
        seen += 1
    assert seen >= 7


# ---- an independent encoder for every spec and layout ------------------------------------------
def _word(value: Any, typ: str) -> str:
    return "0x" + encode([typ], [value]).hex()


def _log(
    spec: EventSpec, layout: tuple[bool, ...], values: dict[str, Any], address: str = TOKEN
) -> dict[str, Any]:
    topics = [spec.topic0] + [
        _word(values[p.name], p.type) for p, i in zip(spec.params, layout, strict=True) if i
    ]
    rest = [(p.type, values[p.name]) for p, i in zip(spec.params, layout, strict=True) if not i]
    data = "0x" + encode([t for t, _ in rest], [v for _, v in rest]).hex()
    return {
        "address": address,
        "topics": topics,
        "data": data,
        "blockNumber": "0x10",
        "blockHash": "0x" + "aa" * 32,
        "transactionHash": "0x" + "bb" * 32,
        "logIndex": "0x3",
        "blockTimestamp": "0x64000000",
        "removed": False,
    }


ALL = LogDispatch.build(TOKEN, [f for f in ControlFamily if f is not ControlFamily.TETHER]).only(
    [Family.CONTROLS]
)
TETHER = LogDispatch.build(TOKEN, PROFILES["tether"])
addresses = st.integers(0, 2**160 - 1).map(lambda n: "0x" + format(n, "040x"))
values = {
    "address": addresses,
    "uint256": st.integers(0, 2**256 - 1),
    "bytes32": st.binary(min_size=32, max_size=32),
}
control_specs = [s for fam in FAMILIES.values() for s in fam if s.control is not None and s.supply is None]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_control_decoder_agrees_with_eth_abi(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(control_specs))
    layout = data.draw(st.sampled_from(spec.layouts))
    args = {p.name: data.draw(values[p.type]) for p in spec.params}
    dispatch = TETHER.only([Family.CONTROLS]) if spec in FAMILIES[ControlFamily.TETHER] else ALL
    got = decode_logs("c", [_log(spec, layout, args)], dispatch)
    assert got.events == [] and got.supply == [] and got.claims == []
    (ev,) = got.controls

    def norm(name: str | None) -> Any:
        if name is None:
            return None
        v = args[name]
        return "0x" + v.hex() if isinstance(v, bytes) else v

    assert ev == ControlEvent(
        "c",
        16,
        "0x" + "aa" * 32,
        "0x" + "bb" * 32,
        3,
        spec.control,
        spec.name,
        TOKEN,
        subject=norm(spec.subject),
        previous=norm(spec.previous),
        actor=norm(spec.actor),
        role=norm(spec.role),
        amount=norm(spec.amount),
        timestamp=0x64000000,
    )
    assert [m.topics for m in got.marks] == [tuple(t.lower() for t in _log(spec, layout, args)["topics"])]


def test_tether_supply_events_move_supply_without_a_transfer() -> None:
    from indexer.chains.evm_families import DESTROYED_BLACK_FUNDS, ISSUE, REDEEM

    user = "0x" + "33" * 20
    logs = [
        _log(ISSUE, ISSUE.layouts[0], {"amount": 500}),
        {**_log(REDEEM, REDEEM.layouts[0], {"amount": 20}), "logIndex": "0x4"},
        {
            **_log(DESTROYED_BLACK_FUNDS, (False, False), {"_blackListedUser": user, "_balance": 7}),
            "logIndex": "0x5",
        },
    ]
    got = decode_logs("c", logs, TETHER)
    assert [(c.kind, c.amount, c.log_index) for c in got.claims] == [
        (EventKind.MINT, 500, 3),
        (EventKind.BURN, 20, 4),
    ]
    owner = "0x" + "44" * 20
    assert got.claims[0].resolve(owner) == TokenEvent(
        "c", 16, "0x" + "aa" * 32, "0x" + "bb" * 32, 3, EventKind.MINT, ZERO_ADDRESS, owner, 500, 0x64000000
    )
    assert (
        got.claims[1].resolve(owner).from_addr == owner
        and got.claims[1].resolve(owner).to_addr == ZERO_ADDRESS
    )
    (burn,) = got.supply
    assert (burn.kind, burn.from_addr, burn.to_addr, burn.amount, burn.log_index) == (
        EventKind.BURN,
        user,
        ZERO_ADDRESS,
        7,
        5,
    )
    (destroyed,) = got.controls
    assert (destroyed.kind, destroyed.subject, destroyed.amount) == (
        ControlKind.FROZEN_FUNDS_DESTROYED,
        user,
        7,
    )
    # A controls-only read (a fill) keeps the control event and leaves supply alone.
    only = decode_logs("c", logs[2:], TETHER.only([Family.CONTROLS]))
    assert only.supply == [] and only.claims == [] and len(only.controls) == 1
    with pytest.raises(UnaskedLog):
        decode_logs("c", logs[:1], TETHER.only([Family.CONTROLS]))  # Issue is not asked for


# ---- the dispatch ----------------------------------------------------------------------------
def test_one_filter_asks_for_exactly_the_configured_addresses_and_topics() -> None:
    d = LogDispatch.build(TOKEN, PROFILES["usd1"], [(ADMIN, "proxy_admin", [ControlFamily.OWNABLE])])
    f = d.log_filter(fromBlock="0x1", toBlock="0x2")
    assert f["address"] == [TOKEN, ADMIN]
    assert f["topics"][0][0] == TRANSFER_TOPIC
    want = {s.topic0 for fam in PROFILES["usd1"] for s in FAMILIES[fam]} | {TRANSFER_TOPIC}
    assert set(f["topics"][0]) == want and len(f["topics"]) == 1
    # Transfers only: the plain form, as before.
    plain = LogDispatch.build(TOKEN).log_filter(blockHash="0x" + "ab" * 32)
    assert plain == {"blockHash": "0x" + "ab" * 32, "address": TOKEN, "topics": [TRANSFER_TOPIC]}
    # The cross product: a Transfer or a Freeze from the ProxyAdmin is skipped (counted), not an
    # error, and never a token movement.
    from indexer.chains.evm_families import FREEZE

    stray = [
        {**_log(TRANSFER, TRANSFER.layouts[0], {"from": TOKEN, "to": ADMIN, "value": 5}, address=ADMIN)},
        {
            **_log(FREEZE, FREEZE.layouts[0], {"caller": TOKEN, "account": ADMIN}, address=ADMIN),
            "logIndex": "0x9",
        },
    ]
    got = decode_logs("c", stray, d)
    assert got.skipped == 2 and got.events == [] and got.controls == []
    assert d.label_of(ADMIN) == "proxy_admin" and d.label_of(TOKEN) == "token"
    assert ControlKind.FROZEN in d.control_kinds() and ControlKind.MINTER_CONFIGURED not in d.control_kinds()


def test_a_log_not_asked_for_is_an_error() -> None:
    d = LogDispatch.build(TOKEN, PROFILES["usd1"])
    from indexer.chains.evm_families import BLACKLISTED, OWNERSHIP_TRANSFERRED

    other = _log(
        OWNERSHIP_TRANSFERRED, (True, True), {"previousOwner": TOKEN, "newOwner": ADMIN}, address=ADMIN
    )
    with pytest.raises(UnaskedLog, match=f"log of {ADMIN} .* was not asked for"):
        decode_logs("c", [other], d)
    usdc_topic = _log(BLACKLISTED, (True,), {"_account": ADMIN})
    with pytest.raises(UnaskedLog, match="not asked for"):
        decode_logs("c", [usdc_topic], d)
    with pytest.raises(UnaskedLog, match="without an address or topic0"):
        decode_logs("c", [{**usdc_topic, "topics": []}], d)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda lg: lg["topics"].pop(),
            "has 2 topics and 0 data words; Freeze.address,address. takes 3 topics",
        ),
        (lambda lg: lg.update(data="0x" + "00" * 32), "has 3 topics and 1 data words"),
        (lambda lg: lg.update(data="0x1"), "data is not 32-byte words"),
        (lambda lg: lg.update(data=None), "data is not 32-byte words"),
        (lambda lg: lg["topics"].__setitem__(2, "0x" + "ff" * 32), "account is not an address"),
        (lambda lg: lg["topics"].__setitem__(1, "0x12"), "caller is not a 32-byte hex word"),
        (lambda lg: lg.update(blockHash=None), "missing blockHash"),
        (lambda lg: lg.update(removed=True), "removed"),
    ],
)
def test_a_known_topic0_with_malformed_data_is_a_clear_error(mutate: Any, message: str) -> None:
    from indexer.chains.evm_families import FREEZE

    lg = _log(FREEZE, FREEZE.layouts[0], {"caller": TOKEN, "account": ADMIN})
    mutate(lg)
    with pytest.raises(MalformedReply, match=message) as exc:
        decode_logs("c", [lg], LogDispatch.build(TOKEN, PROFILES["usd1"]))
    assert not isinstance(exc.value, UnaskedLog)


def test_both_layouts_of_ownable_and_proxy_events_decode_alike() -> None:
    from indexer.chains.evm_families import ADMIN_CHANGED, OWNERSHIP_TRANSFERRED, UPGRADED

    d = LogDispatch.build(TOKEN, PROFILES["fiattoken"])
    for spec, args in (
        (OWNERSHIP_TRANSFERRED, {"previousOwner": TOKEN, "newOwner": ADMIN}),
        (UPGRADED, {"implementation": ADMIN}),
        (ADMIN_CHANGED, {"previousAdmin": TOKEN, "newAdmin": ADMIN}),
    ):
        assert len(spec.layouts) == 2
        a, b = (decode_logs("c", [_log(spec, lay, args)], d).controls for lay in spec.layouts)
        assert a == b and len(a) == 1 and a[0].subject == ADMIN


def test_duplicate_control_logs_are_dropped_and_conflicting_ones_refused() -> None:
    from indexer.chains.evm_families import FREEZE

    lg = _log(FREEZE, FREEZE.layouts[0], {"caller": TOKEN, "account": ADMIN})
    d = LogDispatch.build(TOKEN, PROFILES["usd1"])
    assert len(decode_logs("c", [lg, copy.deepcopy(lg)], d).controls) == 1
    other = copy.deepcopy(lg)
    other["topics"][2] = "0x" + "0" * 24 + "99" * 20
    with pytest.raises(MalformedReply, match="one identity"):
        decode_logs("c", [lg, other], d)


def test_config_conflicts_are_refused() -> None:
    with pytest.raises(ValueError, match="supply events belong to the token only"):
        LogDispatch.build(TOKEN, [], [(ADMIN, "w", [ControlFamily.TETHER])])


# ---- real logs ---------------------------------------------------------------------------------
def _receipt_logs() -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / RECEIPTS).read_text())
    return [log for receipt in data[0]["response"]["result"] for log in receipt["logs"]]


def test_real_ownership_transferred_log_of_a_watched_contract() -> None:
    """Block 19,999,999 holds an OpenZeppelin OwnershipTransferred (from 0x0, a deployment): as a
    watched contract's event it decodes to the new owner, the transaction's sender."""
    watched = "0xc6f8087bb4c1ebd0106c7b8faa6f6744a8ded906"
    d = LogDispatch.build(USDC, PROFILES["fiattoken"], [(watched, "proxy_admin", [ControlFamily.OWNABLE])])
    logs = node_filter(_receipt_logs(), d)
    got = decode_logs("ethereum", logs, d)
    (ev,) = got.controls
    assert (ev.kind, ev.address, ev.previous, ev.subject) == (
        ControlKind.OWNERSHIP_TRANSFERRED,
        watched,
        ZERO_ADDRESS,
        "0xc9aad2fc90eddacf02bd11fa690e3b44e318aa9b",
    )
    assert (ev.block_number, ev.log_index, ev.tx_hash) == (
        19999999,
        0xFE,
        "0x1f7b27bb1e5322df96003d04a7ce63bbb1d53007e05345b67999c9a53aa746d3",
    )


def test_usdc_with_the_fiattoken_profile_on_real_mints_and_burns() -> None:
    """USDC's Mint/Burn share the Transfer shape (and USD1's Mint topic0): the fiattoken filter
    does not ask for them, and its Transfer events equal the transfers-only decoding."""
    logs = _receipt_logs()
    fiat = LogDispatch.build(USDC, PROFILES["fiattoken"])
    plain = LogDispatch.build(USDC)
    asked = node_filter(logs, fiat)
    assert not {lg["topics"][0] for lg in asked} - set(fiat.topics)
    mint_topic = next(e["topic0"] for e in TABLE["USDC"]["events"] if e["signature"].startswith("Mint("))
    assert any(lg["topics"][0] == mint_topic for lg in logs) and not any(
        lg["topics"][0] == mint_topic for lg in asked
    )
    got = decode_logs("ethereum", asked, fiat)
    assert got.events == decode_logs("ethereum", node_filter(logs, plain), plain).events
    assert {e.kind for e in got.events} == {EventKind.MINT, EventKind.BURN, EventKind.TRANSFER}
    assert got.controls == []


# ---- through the decode worker ------------------------------------------------------------------
def test_decode_reply_carries_every_family_and_pickles() -> None:
    from indexer.chains.evm_families import DESTROYED_BLACK_FUNDS, FREEZE

    d = LogDispatch.build(TOKEN, [ControlFamily.USD1])
    logs = [
        _log(TRANSFER, TRANSFER.layouts[0], {"from": ZERO_ADDRESS, "to": ADMIN, "value": 9}),
        {**_log(FREEZE, FREEZE.layouts[0], {"caller": TOKEN, "account": ADMIN}), "logIndex": "0x7"},
    ]
    reply = decode_reply(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": logs}), "c", d, encode=True)
    part = pickle.loads(pickle.dumps(reply["result"]))
    assert isinstance(part, DecodedLogs) and part.copy is not None
    got = part.decoded()
    assert [e.amount for e in got.events] == [9] and [c.kind for c in got.controls] == [ControlKind.FROZEN]
    # Supply moved by another event: the rows are no longer the whole batch, no COPY bytes.
    t = LogDispatch.build(TOKEN, PROFILES["tether"])
    destroy = _log(DESTROYED_BLACK_FUNDS, (False, False), {"_blackListedUser": ADMIN, "_balance": 3})
    reply = decode_reply(
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": [logs[0], {**destroy, "logIndex": "0x8"}]}),
        "c",
        t,
        encode=True,
    )
    assert reply["result"].copy is None and len(reply["result"].decoded().supply) == 1
    # A log not asked for: the reply says so (the source blames the endpoint).
    bad = decode_reply(
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": [{**logs[1], "address": ADMIN}]}), "c", d
    )
    assert bad["result"].unasked
    with pytest.raises(UnaskedLog):
        bad["result"].decoded()
