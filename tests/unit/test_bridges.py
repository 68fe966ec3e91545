"""Bridges (issue #16 item 2): the global circulating figure counts each token once, and the
backing gap per bridge is exact to the base unit; the config keys and their errors."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.bridges import BRIDGE_LOCK, Bridge, ChainRole, Position, Topology, backing, global_circulating
from indexer.config import load_config_text
from indexer.errors import ConfigError
from indexer.supply_classes import classify
from indexer.units import tokens_to_raw

# The real CCIP pools (realdata/ccip/usd1_ccip_registry_subset.json): Ethereum's Hybrid pool locks.
ETH_POOL = "0x36a72ed0096b414521c45e3ddc9ed657d1d9c141"
USD1_ETH = "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"
USD1_BRIDGED = "0x111111d2bf19e43C34263401e0CAd979eD1cdb61"
HOLDER = "0x" + "0a" * 20


def position(chain: str, decimals: int, total: int, labelled: dict[str, int], frozen: int = 0) -> Position:
    accounts = [(f"0x{i:040x}", label) for i, label in enumerate(labelled)]
    balances = {a: labelled[label] for a, label in accounts}
    fz = {HOLDER: frozen} if frozen else {}
    return Position(chain, decimals, classify(total, accounts, balances | fz, fz))


CCIP = Topology(
    (Bridge("ccip", "2.5"),),
    {"ethereum": ChainRole("native", "ccip"), "monad": ChainRole("bridged", "ccip")},
)


def test_worked_example_gap_and_global_circulating() -> None:
    eth = position("ethereum", 18, 1_000 * 10**18, {BRIDGE_LOCK: 300 * 10**18, "issuer": 50 * 10**18})
    monad = position("monad", 6, 303 * 10**6, {})  # 3 more minted than locked
    bsc = position("bsc", 18, 200 * 10**18, {}, frozen=7)
    [b] = backing(CCIP, [eth, monad, bsc])
    assert (b.bridge, b.decimals, b.native, b.bridged) == ("ccip", 18, ("ethereum",), ("monad",))
    assert b.minted == 303 * 10**18 and b.locked == 300 * 10**18 and b.allowance == 25 * 10**17
    assert b.gap == 5 * 10**17  # 303 - 300 - 2.5 tokens: under-backed by half a token
    # ethereum 650 + monad 303 + bsc 200 (less 7 base units frozen): the 300 locked counted once
    assert global_circulating([eth, monad, bsc]) == (650 + 303 + 200) * 10**18 - 7


def test_incomplete_figures_are_none() -> None:
    eth = position("ethereum", 18, 10, {BRIDGE_LOCK: 10})
    [b] = backing(CCIP, [eth, Position("monad", 6, None)])
    assert b.minted is None and b.locked == 10 and b.gap is None
    assert global_circulating([eth, Position("monad", 6, None)]) is None
    # a chain of the bridge left out (`query supply --chain ethereum`): no gap rather than a wrong one
    [partial] = backing(CCIP, [eth])
    assert partial.bridged == ("monad",) and partial.minted is None and partial.gap is None
    fine = Topology((Bridge("ccip", "0.0000001"),), CCIP.roles)  # finer than monad's 6 dp
    [alone] = backing(fine, [Position("monad", 6, eth.classes)])
    assert alone.gap is None and alone.allowance == 1 and alone.decimals == 7
    # a bridge no chain names: nothing minted, nothing locked, the allowance alone
    [lone] = backing(Topology((Bridge("wormhole"),)), [eth])
    assert (lone.native, lone.bridged, lone.gap) == ((), (), 0)


def test_bridge_lock_on_a_chain_without_bridge_backs_nothing() -> None:
    eth = position("ethereum", 18, 10, {BRIDGE_LOCK: 10})
    [b] = backing(Topology((Bridge("ccip"),), {"monad": ChainRole("bridged", "ccip")}), [eth])
    assert b.locked == 0 and b.native == ()


# --- properties ---------------------------------------------------------------------------

decimals = st.sampled_from([6, 9, 18])  # config refuses an allowance finer than the chains
raw = st.integers(min_value=0, max_value=10**30)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Topology, list[Position]]:
    names = ["ccip", "wormhole"]
    bridges = tuple(Bridge(n, draw(st.sampled_from(["0", "1", "0.5", "1000000", "0.000001"]))) for n in names)
    roles: dict[str, ChainRole] = {}
    positions = []
    for i in range(draw(st.integers(min_value=1, max_value=6))):
        chain = f"c{i}"
        role = draw(st.sampled_from(["native", "bridged"]))
        bridge = draw(st.sampled_from(names)) if role == "bridged" else draw(st.sampled_from([*names, None]))
        roles[chain] = ChainRole(role, bridge)
        labels = {
            label: draw(raw) for label in draw(st.sets(st.sampled_from([BRIDGE_LOCK, "issuer", "treasury"])))
        }
        frozen = draw(raw)
        total = sum(labels.values()) + frozen + draw(raw)
        positions.append(position(chain, draw(decimals), total, labels, frozen))
    return Topology(bridges, roles), positions


@given(worlds())
def test_gap_is_exact_to_the_base_unit(world: tuple[Topology, list[Position]]) -> None:
    topology, positions = world
    for b in backing(topology, positions):
        mine = [p for p in positions if topology.role(p.chain).bridge == b.bridge]
        minted = sum(
            Fraction(p.classes.total, 10**p.decimals)
            for p in mine
            if p.classes and topology.role(p.chain).role == "bridged"
        )
        locked = sum(
            Fraction(p.classes.non_circulating.get(BRIDGE_LOCK, 0), 10**p.decimals)
            for p in mine
            if p.classes and topology.role(p.chain).role == "native"
        )
        allowance = Fraction(next(x.allowance_tokens for x in topology.bridges if x.name == b.bridge))
        assert b.gap is not None
        assert Fraction(b.gap, 10**b.decimals) == minted - locked - allowance


@given(worlds())
def test_each_token_is_counted_once(world: tuple[Topology, list[Position]]) -> None:
    """Every token on a native chain is circulating, frozen or non-circulating exactly once, except
    the locked ones, whose twins are the bridged supply: so circulating + frozen + every other label
    = the native supply + what the bridged chains minted beyond the lock (gap + allowance)."""
    topology, positions = world
    dp = max(p.decimals for p in positions)

    def up(x: int, d: int) -> int:
        return x * 10 ** (dp - d)

    circulating = global_circulating(positions)
    assert circulating is not None
    elsewhere = 0  # frozen and non-lock labels, plus locks that back no bridge
    native_total = 0
    for p in positions:
        assert p.classes is not None
        role = topology.role(p.chain)
        others = p.classes.frozen + sum(v for k, v in p.classes.non_circulating.items() if k != BRIDGE_LOCK)
        lock = p.classes.non_circulating.get(BRIDGE_LOCK, 0)
        elsewhere += up(others, p.decimals)
        if role.role == "native":
            native_total += up(p.classes.total, p.decimals)
            if role.bridge is None:
                elsewhere += up(lock, p.decimals)
        else:
            elsewhere += up(lock, p.decimals)  # a lock on a bridged chain backs no bridge here
    excess = sum(
        Fraction(b.gap + b.allowance, 10**b.decimals)
        for b in backing(topology, positions)
        if b.gap is not None
    )
    assert Fraction(circulating + elsewhere, 10**dp) == Fraction(native_total, 10**dp) + excess


@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=0, max_value=36), st.integers(0, 36))
def test_tokens_to_raw_is_exact(value: int, places: int, decimals: int) -> None:
    text = (
        str(value) if places == 0 else f"{value // 10**places}.{str(value % 10**places).rjust(places, '0')}"
    )
    exact = Fraction(value, 10**places) * 10**decimals
    if exact.denominator == 1:
        assert tokens_to_raw(text, decimals) == exact
    else:
        with pytest.raises(ValueError, match="decimal places"):
            tokens_to_raw(text, decimals)


@pytest.mark.parametrize("bad", ["-1", "1e3", "", " 1", "0x10", "1.", ".5", "nan"])
def test_tokens_to_raw_refuses_what_is_not_a_plain_decimal(bad: str) -> None:
    with pytest.raises(ValueError, match="not a non-negative decimal number"):
        tokens_to_raw(bad, 18)


# --- config -------------------------------------------------------------------------------

CONFIG = f"""
chains:
  - name: ethereum
    kind: evm
    rpc: ["http://127.0.0.1:8545"]
    token: "{USD1_ETH}"
    bridge: ccip
    non_circulating: [{{address: "{ETH_POOL}", label: bridge_lock}}]
  - name: monad
    kind: evm
    rpc: ["http://127.0.0.1:8546"]
    token: "{USD1_BRIDGED}"
    decimals: 6
    role: bridged
    bridge: ccip
bridges:
  - {{name: ccip, in_flight_allowance_tokens: "ALLOWANCE"}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, {})
    return info.value.problems


def test_config_roles_and_allowance_load() -> None:
    cfg = load_config_text(CONFIG.replace("ALLOWANCE", "1000.25"), {})
    topo = cfg.topology()
    assert topo.roles == {"ethereum": ChainRole("native", "ccip"), "monad": ChainRole("bridged", "ccip")}
    assert topo.bridges == (Bridge("ccip", "1000.25"),)
    [b] = backing(topo, [position("ethereum", 18, 0, {}), position("monad", 6, 0, {})])
    assert b.allowance == 100025 * 10**16  # scaled to the bridge's most precise chain (18)
    # defaults: native, no bridge, no bridges
    plain = load_config_text(CONFIG.split("  - name: monad")[0].replace("    bridge: ccip\n", ""), {})
    assert plain.topology() == Topology((), {"ethereum": ChainRole("native", None)})


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("ALLOWANCE", "-5"),
            ["bridges.0.in_flight_allowance_tokens: not a non-negative decimal number of tokens: '-5'"],
        ),
        (
            lambda t: t.replace("ALLOWANCE", "0.0000000000000000001"),
            ["bridges.0.in_flight_allowance_tokens: '0.0000000000000000001' has more than 18 decimal places"],
        ),
        (
            lambda t: t.replace("ALLOWANCE", "1").replace(
                "    role: bridged\n    bridge: ccip\n", "    role: bridged\n"
            ),
            ["chains.1.bridge: missing (required): a chain with role bridged names the bridge that mints it"],
        ),
        (
            lambda t: t.replace("ALLOWANCE", "1").replace("role: bridged", "role: wrapped"),
            ["chains.1.role: Input should be 'native' or 'bridged'"],
        ),
        (
            lambda t: t.replace("ALLOWANCE", "1").replace("bridge: ccip\n    non", "bridge: axelar\n    non"),
            ["chains.0.bridge: no bridge named 'axelar' in bridges (ccip)"],
        ),
        (
            lambda t: t.replace("ALLOWANCE", "1") + "  - {name: ccip}\n",
            ["bridges.1.name: duplicate bridge name 'ccip'"],
        ),
    ],
)
def test_config_errors_name_the_key(edit: object, expected: list[str]) -> None:
    assert callable(edit)
    found = problems(edit(CONFIG))
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(want), found


def test_mainnet_config_lists_the_real_ccip_lock_pool() -> None:
    """config/mainnet.yaml: Ethereum's CCIP Hybrid pool (realdata/ccip) is its bridge_lock."""
    from pathlib import Path

    from indexer.config import load_config

    env = {
        "USD1_ETH_RPC_URL": "http://127.0.0.1:1",
        "USD1_BSC_RPC_URL": "http://127.0.0.1:2",
        "USD1_TRON_RPC_URL": "http://127.0.0.1:3",
    }
    cfg = load_config(Path(__file__).parents[2] / "config" / "mainnet.yaml", env)
    assert cfg.chain("ethereum").classified() == [(ETH_POOL, BRIDGE_LOCK)]
    assert cfg.topology() == Topology(
        (Bridge("ccip", "0"),),
        {
            "ethereum": ChainRole("native", "ccip"),
            "bsc": ChainRole("native", None),
            "tron": ChainRole("native", None),
        },
    )


@given(
    st.lists(
        st.tuples(st.sampled_from(["mint_a", "mint_b", "out", "back", "treasury"]), st.integers(0, 10**12)),
        max_size=40,
    ),
    st.integers(0, 10**9),
)
def test_a_ledger_of_bridge_transfers_counts_each_token_where_it_can_be_spent(
    ops: list[tuple[str, int]], unbacked: int
) -> None:
    """A token ledger in micro-tokens: chain a (18 dp, native, locks for ccip), chain b (6 dp,
    native, no bridge), chain x (6 dp, bridged by ccip). Bridging out moves a user's tokens on a
    into the lock and mints them on x; bridging back burns on x and releases from the lock. The
    global circulating figure is what users hold, each token once; the gap is what x minted
    without a lock."""
    topo = Topology(
        (Bridge("ccip"),),
        {"a": ChainRole("native", "ccip"), "b": ChainRole("native"), "x": ChainRole("bridged", "ccip")},
    )
    a_user = a_lock = a_treasury = b_user = x_user = 0
    for op, n in ops:
        if op == "mint_a":
            a_user += n
        elif op == "mint_b":
            b_user += n
        elif op == "out":
            n = min(n, a_user)
            a_user, a_lock, x_user = a_user - n, a_lock + n, x_user + n
        elif op == "back":
            n = min(n, x_user)
            x_user, a_lock, a_user = x_user - n, a_lock - n, a_user + n
        else:
            n = min(n, a_user)
            a_user, a_treasury = a_user - n, a_treasury + n
    x_user += unbacked  # minted on x with no lock behind it
    micro = 10**12  # chain a's base units per micro-token
    a_total = (a_user + a_lock + a_treasury) * micro
    world = [
        position("a", 18, a_total, {BRIDGE_LOCK: a_lock * micro, "treasury": a_treasury * micro}),
        position("b", 6, b_user, {}),
        position("x", 6, x_user, {}),
    ]
    assert global_circulating(world) == (a_user + b_user + x_user) * micro
    [b] = backing(topo, world)
    assert b.gap == unbacked * micro
    # summing totalSupply would count the locked tokens on a and again on x
    assert a_total + (b_user + x_user) * micro - global_circulating(world) == (a_lock + a_treasury) * micro
