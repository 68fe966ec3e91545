"""PURE: bridges between the chains, the global circulating figure and the backing gap
(issue #16 item 2, README "Bridges").

A chain is `native` (the issuer mints there) or `bridged` (its whole supply is minted by a bridge
against tokens locked on the native chains). A native chain's accounts labelled `bridge_lock` (the
bridge's lock pools, e.g. CCIP's lock-and-release pool on Ethereum) hold the tokens that back the
bridged chains of the chain's `bridge`.

**Global circulating** = the sum over every chain of its circulating supply (supply_classes), in
the largest precision among the chains. Each token is counted once, where it can be spent: a token
bridged out of a native chain sits in that chain's lock pool, which is non-circulating there
(label `bridge_lock`), while its twin minted on the bridged chain is circulating on the bridged
chain. Summing `totalSupply()` instead would count it on both chains.

**Backing gap** per bridge = minted on its bridged chains (their total supply) - locked on its
native chains (their `bridge_lock` balances) - the bridge's in-flight allowance, in the largest
precision among the bridge's chains. Positive: the bridged chains have minted more than is
locked (under-backed by that much); zero or negative: fully backed. The figure is exact to the
base unit; it is None while any of the bridge's chains has no classes (not indexed yet).

With every bridge_lock on a native chain that names its bridge, the two figures are tied:
    global circulating + sum(frozen + non-lock labels over all chains)
        = sum(native total supply) + sum over bridges of (gap + allowance)
so at gap + allowance = 0 the circulating figure is made of native tokens only, each once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from indexer.supply_classes import SupplyClasses
from indexer.units import decimal_places, tokens_to_raw

Role = Literal["native", "bridged"]
ROLES: tuple[Role, ...] = ("native", "bridged")
BRIDGE_LOCK = "bridge_lock"


@dataclass(frozen=True, slots=True)
class Bridge:
    name: str
    allowance_tokens: str = "0"  # decimal string of whole tokens


@dataclass(frozen=True, slots=True)
class ChainRole:
    role: Role = "native"
    bridge: str | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    """The configured bridges and each chain's role (a chain not listed is native, no bridge)."""

    bridges: tuple[Bridge, ...] = ()
    roles: Mapping[str, ChainRole] = field(default_factory=dict)

    def role(self, chain: str) -> ChainRole:
        return self.roles.get(chain, ChainRole())


@dataclass(frozen=True, slots=True)
class Position:
    """One chain's classes at one finality (None: not indexed yet)."""

    chain: str
    decimals: int
    classes: SupplyClasses | None


def scale(raw: int, decimals: int, to: int) -> int:
    if to < decimals:
        raise ValueError(f"cannot scale {decimals} decimals down to {to}")
    return raw * 10 ** (to - decimals)


def precision(positions: Iterable[Position]) -> int:
    """The largest number of decimals among the chains (0 with none): sums are exact in it."""
    return max((p.decimals for p in positions), default=0)


def global_circulating(positions: Sequence[Position]) -> int | None:
    """Sum of the chains' circulating supply in `precision(positions)` base units; None while a
    chain has no classes (a partial sum would look like a supply drop)."""
    dp = precision(positions)
    total = 0
    for p in positions:
        if p.classes is None:
            return None
        total += scale(p.classes.circulating, p.decimals, dp)
    return total


@dataclass(frozen=True, slots=True)
class Backing:
    """A bridge's figures at one finality, in `decimals` base units."""

    bridge: str
    decimals: int
    native: tuple[str, ...]  # chains whose bridge_lock accounts lock for this bridge
    bridged: tuple[str, ...]  # chains whose supply this bridge mints
    allowance: int
    minted: int | None  # total supply of the bridged chains
    locked: int | None  # bridge_lock balances on the native chains

    @property
    def gap(self) -> int | None:
        """minted - locked - allowance (positive = under-backed); None while incomplete."""
        if self.minted is None or self.locked is None:
            return None
        return self.minted - self.locked - self.allowance


def _minted(c: SupplyClasses) -> int:
    return c.total


def _locked(c: SupplyClasses) -> int:
    return c.non_circulating.get(BRIDGE_LOCK, 0)


def _sum(
    positions: Sequence[Position], expected: int, dp: int, part: Callable[[SupplyClasses], int]
) -> int | None:
    if len(positions) != expected:
        return None  # a chain of the bridge is not among the positions (a query of one chain)
    total = 0
    for p in positions:
        if p.classes is None:
            return None
        total += scale(part(p.classes), p.decimals, dp)
    return total


def backing(topology: Topology, positions: Sequence[Position]) -> list[Backing]:
    """Each configured bridge's backing, in config order (its chains in `topology.roles` order).
    minted / locked are None when one of the bridge's chains is missing from `positions` or has
    no classes. Precision: the most precise of the bridge's chains (of all chains when none)."""
    out = []
    for b in topology.bridges:
        members = {
            role: [c for c, r in topology.roles.items() if r == ChainRole(role, b.name)] for role in ROLES
        }
        mine = [p for p in positions if topology.role(p.chain).bridge == b.name]
        native = [p for p in mine if topology.role(p.chain).role == "native"]
        bridged = [p for p in mine if topology.role(p.chain).role == "bridged"]
        # (at least the allowance's own places: a partial set of chains must not make it unscalable)
        dp = max(precision(mine) if mine else precision(positions), decimal_places(b.allowance_tokens))
        out.append(
            Backing(
                b.name,
                dp,
                tuple(members["native"]),
                tuple(members["bridged"]),
                tokens_to_raw(b.allowance_tokens, dp),
                _sum(bridged, len(members["bridged"]), dp, _minted),
                _sum(native, len(members["native"]), dp, _locked),
            )
        )
    return out
