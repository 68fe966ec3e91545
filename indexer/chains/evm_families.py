"""PURE: which EVM logs a chain asks for and what each one becomes: the dispatch on
(address, topic0) over a table of event decoders built from the chain's profile, `controls` and
`watch` config.

- Every event the indexer understands is one `EventSpec` (its Solidity declaration, the layouts of
  indexed-ness it accepts, and what it records): a `TokenEvent` (family `transfers`), a
  `ControlEvent` (family `controls`), a `SupplyClaim` (a Tether `Issue`/`Redeem`: a mint to or a
  burn from the owner at that block, resolved by the source), or several of these.
- Control families (`ownable`, `proxy`, ...) group the specs; a profile names the families a token
  has by default (`PROFILES`).
- A `LogDispatch` maps every (address, topic0) pair of the chain's single eth_getLogs filter
  (`address: [...]`, `topics: [[...]]`) to its spec. The filter is a cross product, so a pair
  that it covers but that the address's families do not decode (e.g. `Paused` from a watched
  ProxyAdmin whose families lack `pausable`) maps to None: skipped and counted, by design. A log
  outside the filter is an `UnaskedLog` (the endpoint's fault); a log of a known topic0 whose
  topics and data fit none of the spec's layouts is a `MalformedReply` naming the layouts.
- `decode_logs` runs the Transfer fast path (`evm_decode.fast_transfer`) for the token's
  Transfer logs and this table for everything else (control logs are rare).

Same-topic0 collisions are settled by the emitting address: USD1 and USDC share `Mint`, USDC and
USDT share `Pause`/`Unpause`; `OwnershipTransferred`, `Upgraded` and `AdminChanged` are indexed on
OpenZeppelin contracts (USD1) and not on Circle's (USDC), so their specs accept both layouts (the
topic count tells them apart). Topic0s and indexed-ness follow
realdata/tokens/stablecoin_control_events.json and realdata/contracts/usd1/NOTES.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import sha3

from indexer.chains.evm_decode import (
    TRANSFER_TOPIC,
    ZERO_ADDRESS,
    LogPosition,
    decode_transfer,
    fast_transfer,
    log_position,
    word,
    word_address,
)
from indexer.errors import MalformedReply
from indexer.model import ControlEvent, ControlKind, EventKind, Family, TokenEvent

ParamType = Literal["address", "uint256", "bytes32"]


class ControlFamily(StrEnum):
    """The `controls:` config values: groups of control events."""

    OWNABLE = "ownable"
    PROXY = "proxy"
    PAUSABLE = "pausable"
    ACCESS_CONTROL = "access_control"
    USD1 = "usd1"
    FIATTOKEN = "fiattoken"
    TETHER = "tether"


class Supply(StrEnum):
    """How a non-Transfer event moves supply."""

    ISSUE = "issue"  # Tether Issue(amount): mint to the owner
    REDEEM = "redeem"  # Tether Redeem(amount): burn from the owner
    DESTROY = "destroy"  # Tether DestroyedBlackFunds(account, balance): burn from the account


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event: its declaration, the indexed-ness layouts it accepts (one flag per param, the
    first layout is the usual one) and what it records. `subject`, `previous`, `actor`, `role`
    and `amount` name the params that fill those `ControlEvent` fields."""

    name: str
    params: tuple[Param, ...]
    layouts: tuple[tuple[bool, ...], ...]
    topic0: str
    control: ControlKind | None = None
    subject: str | None = None
    previous: str | None = None
    actor: str | None = None
    role: str | None = None
    amount: str | None = None
    supply: Supply | None = None

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @property
    def families(self) -> frozenset[Family]:
        out = set()
        if self.control is not None:
            out.add(Family.CONTROLS)
        if self.supply is not None or self.topic0 == TRANSFER_TOPIC:
            out.add(Family.TRANSFERS)
        return frozenset(out)


def topic0_of(signature: str) -> str:
    return "0x" + sha3.keccak_256(signature.encode()).hexdigest()


def _spec(declaration: str, *layouts: str, control: ControlKind | None = None, **fields: Any) -> EventSpec:
    """`EventSpec` from a compact declaration: "Name(type name, ...)"; each layout is a string of
    'i' (indexed) / '-' (in data), one character per param (default: none indexed)."""
    name, _, rest = declaration.partition("(")
    params = tuple(
        Param(part.split()[1], part.split()[0])  # type: ignore[arg-type]
        for part in rest.rstrip(")").split(",")
        if part.strip()
    )
    flags = tuple(tuple(c == "i" for c in lay) for lay in (layouts or ("-" * len(params),)))
    assert all(len(f) == len(params) for f in flags), declaration
    sig = f"{name}({','.join(p.type for p in params)})"
    return EventSpec(name, params, flags, topic0_of(sig), control=control, **fields)


K = ControlKind
TRANSFER = _spec("Transfer(address from, address to, uint256 value)", "ii-")
assert TRANSFER.topic0 == TRANSFER_TOPIC

# Ownable / Ownable2Step (OpenZeppelin: indexed; Circle's Ownable: both in data).
OWNERSHIP_TRANSFER_STARTED = _spec(
    "OwnershipTransferStarted(address previousOwner, address newOwner)",
    "ii",
    control=K.OWNERSHIP_TRANSFER_STARTED,
    subject="newOwner",
    previous="previousOwner",
)
OWNERSHIP_TRANSFERRED = _spec(
    "OwnershipTransferred(address previousOwner, address newOwner)",
    "ii",
    "--",
    control=K.OWNERSHIP_TRANSFERRED,
    subject="newOwner",
    previous="previousOwner",
)
# EIP-1967 proxy (OpenZeppelin 4.8.1: Upgraded indexed, AdminChanged not; Circle: neither).
UPGRADED = _spec("Upgraded(address implementation)", "i", "-", control=K.UPGRADED, subject="implementation")
ADMIN_CHANGED = _spec(
    "AdminChanged(address previousAdmin, address newAdmin)",
    "--",
    "ii",
    control=K.ADMIN_CHANGED,
    subject="newAdmin",
    previous="previousAdmin",
)
BEACON_UPGRADED = _spec(
    "BeaconUpgraded(address beacon)", "i", "-", control=K.BEACON_UPGRADED, subject="beacon"
)
# Pausable (OpenZeppelin: who paused, in data; FiatToken and Tether: no argument).
PAUSED = _spec("Paused(address account)", "-", control=K.PAUSED, actor="account")
UNPAUSED = _spec("Unpaused(address account)", "-", control=K.UNPAUSED, actor="account")
PAUSE = _spec("Pause()", control=K.PAUSED)
UNPAUSE = _spec("Unpause()", control=K.UNPAUSED)
# AccessControl
ROLE_GRANTED = _spec(
    "RoleGranted(bytes32 role, address account, address sender)",
    "iii",
    control=K.ROLE_GRANTED,
    role="role",
    subject="account",
    actor="sender",
)
ROLE_REVOKED = _spec(
    "RoleRevoked(bytes32 role, address account, address sender)",
    "iii",
    control=K.ROLE_REVOKED,
    role="role",
    subject="account",
    actor="sender",
)
ROLE_ADMIN_CHANGED = _spec(
    "RoleAdminChanged(bytes32 role, bytes32 previousAdminRole, bytes32 newAdminRole)",
    "iii",
    control=K.ROLE_ADMIN_CHANGED,
    role="role",
    previous="previousAdminRole",
    subject="newAdminRole",
)
# USD1 Stablecoin.sol
FREEZE = _spec(
    "Freeze(address caller, address account)", "ii", control=K.FROZEN, subject="account", actor="caller"
)
UNFREEZE = _spec(
    "Unfreeze(address caller, address account)", "ii", control=K.UNFROZEN, subject="account", actor="caller"
)
# Circle FiatToken
BLACKLISTED = _spec("Blacklisted(address _account)", "i", control=K.FROZEN, subject="_account")
UNBLACKLISTED = _spec("UnBlacklisted(address _account)", "i", control=K.UNFROZEN, subject="_account")
BLACKLISTER_CHANGED = _spec(
    "BlacklisterChanged(address newBlacklister)", "i", control=K.BLACKLISTER_CHANGED, subject="newBlacklister"
)
MINTER_CONFIGURED = _spec(
    "MinterConfigured(address minter, uint256 minterAllowedAmount)",
    "i-",
    control=K.MINTER_CONFIGURED,
    subject="minter",
    amount="minterAllowedAmount",
)
MINTER_REMOVED = _spec("MinterRemoved(address oldMinter)", "i", control=K.MINTER_REMOVED, subject="oldMinter")
MASTER_MINTER_CHANGED = _spec(
    "MasterMinterChanged(address newMasterMinter)",
    "i",
    control=K.MINTER_ADMIN_CHANGED,
    subject="newMasterMinter",
)
PAUSER_CHANGED = _spec(
    "PauserChanged(address newAddress)", "i", control=K.PAUSER_CHANGED, subject="newAddress"
)
# Tether (USDT on Ethereum): nothing indexed; Issue/Redeem/DestroyedBlackFunds move supply without
# a Transfer.
ADDED_BLACK_LIST = _spec("AddedBlackList(address _user)", control=K.FROZEN, subject="_user")
REMOVED_BLACK_LIST = _spec("RemovedBlackList(address _user)", control=K.UNFROZEN, subject="_user")
DESTROYED_BLACK_FUNDS = _spec(
    "DestroyedBlackFunds(address _blackListedUser, uint256 _balance)",
    control=K.FROZEN_FUNDS_DESTROYED,
    subject="_blackListedUser",
    amount="_balance",
    supply=Supply.DESTROY,
)
ISSUE = _spec("Issue(uint256 amount)", supply=Supply.ISSUE, amount="amount")
REDEEM = _spec("Redeem(uint256 amount)", supply=Supply.REDEEM, amount="amount")

FAMILIES: dict[ControlFamily, tuple[EventSpec, ...]] = {
    ControlFamily.OWNABLE: (OWNERSHIP_TRANSFER_STARTED, OWNERSHIP_TRANSFERRED),
    ControlFamily.PROXY: (UPGRADED, ADMIN_CHANGED, BEACON_UPGRADED),
    ControlFamily.PAUSABLE: (PAUSED, UNPAUSED),
    ControlFamily.ACCESS_CONTROL: (ROLE_GRANTED, ROLE_REVOKED, ROLE_ADMIN_CHANGED),
    ControlFamily.USD1: (FREEZE, UNFREEZE),
    ControlFamily.FIATTOKEN: (
        BLACKLISTED,
        UNBLACKLISTED,
        BLACKLISTER_CHANGED,
        MINTER_CONFIGURED,
        MINTER_REMOVED,
        MASTER_MINTER_CHANGED,
        PAUSER_CHANGED,
        PAUSE,
        UNPAUSE,
    ),
    ControlFamily.TETHER: (
        ADDED_BLACK_LIST,
        REMOVED_BLACK_LIST,
        DESTROYED_BLACK_FUNDS,
        ISSUE,
        REDEEM,
        PAUSE,
        UNPAUSE,
    ),
}
Profile = Literal["erc20", "usd1", "fiattoken", "tether"]
PROFILES: dict[str, tuple[ControlFamily, ...]] = {
    "erc20": (),  # transfers only
    "usd1": (ControlFamily.OWNABLE, ControlFamily.PROXY, ControlFamily.PAUSABLE, ControlFamily.USD1),
    "fiattoken": (ControlFamily.OWNABLE, ControlFamily.PROXY, ControlFamily.FIATTOKEN),
    "tether": (ControlFamily.TETHER,),  # USDT emits no event on an owner change
}
# A watched contract (ProxyAdmin, owner multisig, governor) without its own `controls:` list.
WATCH_DEFAULT: tuple[ControlFamily, ...] = (
    ControlFamily.OWNABLE,
    ControlFamily.PROXY,
    ControlFamily.PAUSABLE,
    ControlFamily.ACCESS_CONTROL,
)


# ---- decoded records -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SupplyClaim:
    """A supply move whose account is not in the log (Tether `Issue`/`Redeem` credit and debit
    the owner's balance): the source resolves the owner at that block, then `resolve`s it."""

    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    kind: EventKind  # MINT or BURN
    amount: int
    timestamp: int
    address: str  # the token

    def resolve(self, owner: str) -> TokenEvent:
        mint = self.kind is EventKind.MINT
        return TokenEvent(
            self.chain,
            self.block_number,
            self.block_hash,
            self.tx_hash,
            self.log_index,
            self.kind,
            ZERO_ADDRESS if mint else owner,
            owner if mint else ZERO_ADDRESS,
            self.amount,
            self.timestamp,
        )


@dataclass(frozen=True, slots=True)
class LogMark:
    """A non-Transfer log as the bloom and block-hash checks need it."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    topics: tuple[str, ...]


Record = TokenEvent | ControlEvent | SupplyClaim


@dataclass(slots=True)
class Decoded:
    """What one eth_getLogs result decodes to. `events` come from Transfer logs (bloom-checked by
    their from/to topics); every other decoded log has a `mark`, and its records are in `supply`
    (TokenEvents, e.g. Tether's DestroyedBlackFunds burn), `claims` or `controls`. `skipped`
    counts logs the filter's cross product returned that no family of their address decodes."""

    events: list[TokenEvent] = field(default_factory=list)
    supply: list[TokenEvent] = field(default_factory=list)
    claims: list[SupplyClaim] = field(default_factory=list)
    controls: list[ControlEvent] = field(default_factory=list)
    marks: list[LogMark] = field(default_factory=list)
    skipped: int = 0

    def extend(self, other: Decoded) -> None:
        self.events.extend(other.events)
        self.supply.extend(other.supply)
        self.claims.extend(other.claims)
        self.controls.extend(other.controls)
        self.marks.extend(other.marks)
        self.skipped += other.skipped

    def blocks(self) -> set[int]:
        """Heights of every decoded log."""
        return {e.block_number for e in self.events} | {m.block_number for m in self.marks}

    def has_logs_of(self, block_hash: str) -> bool:
        return any(e.block_hash == block_hash for e in self.events) or any(
            m.block_hash == block_hash for m in self.marks
        )


class UnaskedLog(MalformedReply):
    """The reply holds a log the filter did not ask for: the endpoint's fault."""


# ---- the dispatch ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Contract:
    """One contract whose events a chain decodes: the token, or a `watch:` entry."""

    address: str  # lowercase
    label: str  # "token" for the token itself
    families: tuple[ControlFamily, ...]


@dataclass(frozen=True, slots=True)
class LogDispatch:
    """The table of decoders of one chain (or of some of its event families, see `only`)."""

    token: str
    contracts: tuple[Contract, ...]
    families: frozenset[Family]
    table: Mapping[tuple[str, str], EventSpec | None]  # (address, topic0) -> spec; None: skip
    addresses: tuple[str, ...]  # the filter's `address` list (token first)
    topics: tuple[str, ...]  # the filter's topic0 list (Transfer first)

    @classmethod
    def build(
        cls,
        token: str,
        controls: Sequence[ControlFamily] = (),
        watch: Iterable[tuple[str, str, Sequence[ControlFamily]]] = (),
        families: Iterable[Family] = (Family.TRANSFERS, Family.CONTROLS),
    ) -> LogDispatch:
        """`controls`: the token's control families; `watch`: (address, label, families) of
        other contracts. Raises ValueError when two families decode one (address, topic0)
        differently (a config error)."""
        want = frozenset(families)
        contracts = [Contract(token.lower(), "token", tuple(controls))]
        contracts += [Contract(a.lower(), label, tuple(fams)) for a, label, fams in watch]
        entries: dict[tuple[str, str], EventSpec] = {}
        for i, c in enumerate(contracts):
            specs = [s for fam in c.families for s in FAMILIES[fam]]
            if i == 0:  # the token: its Transfers are the transfers family
                specs.insert(0, TRANSFER)
            elif any(s.families & {Family.TRANSFERS} for s in specs):
                raise ValueError(f"watched contract {c.address}: supply events belong to the token only")
            for s in specs:
                if not s.families & want:
                    continue
                key = (c.address, s.topic0)
                known = entries.get(key)
                if known is not None and known != s:
                    raise ValueError(
                        f"contract {c.address}: {known.signature} and {s.signature} share topic0 {s.topic0}"
                    )
                entries[key] = s
        addresses = tuple(dict.fromkeys(a for a, _ in entries))
        topics = tuple(dict.fromkeys(t for _, t in sorted(entries, key=lambda k: k[1] != TRANSFER_TOPIC)))
        table = {(a, t): entries.get((a, t)) for a in addresses for t in topics}
        return cls(token.lower(), tuple(contracts), want, table, addresses, topics)

    def only(self, families: Iterable[Family]) -> LogDispatch:
        """The same chain restricted to some families (e.g. a controls-only fill)."""
        c = self.contracts
        watch = [(x.address, x.label, x.families) for x in c[1:]]
        return LogDispatch.build(self.token, c[0].families, watch, families)

    @property
    def empty(self) -> bool:
        return not self.addresses

    @property
    def fast(self) -> bool:
        """Whether the token's Transfer logs are asked for (the fast path applies)."""
        return Family.TRANSFERS in self.families

    def log_filter(self, **where: Any) -> dict[str, Any]:
        """The eth_getLogs filter (one request for every family) plus `where` (fromBlock/toBlock
        or blockHash). A single address and topic are given in their plain form."""
        address: str | list[str] = self.addresses[0] if len(self.addresses) == 1 else list(self.addresses)
        topic: str | list[str] = self.topics[0] if len(self.topics) == 1 else list(self.topics)
        return {**where, "address": address, "topics": [topic]}

    def specs(self, family: Family) -> list[tuple[str, EventSpec]]:
        """(address, spec) pairs that record `family`."""
        return [(a, s) for (a, _), s in self.table.items() if s is not None and family in s.families]

    def fingerprint(self, family: Family) -> str:
        """Identifies what `family` decodes (its contracts, events and layouts): the coverage of a
        family holds only while this stays the same."""
        items = sorted(f"{a} {s.topic0} {s.signature} {s.layouts}" for a, s in self.specs(family))
        return hashlib.sha256("\n".join(items).encode()).hexdigest()[:32]

    def describe(self, family: Family) -> dict[str, list[str]]:
        """{address: [event signatures]} of `family`, for the coverage record."""
        out: dict[str, list[str]] = {}
        for a, s in self.specs(family):
            out.setdefault(a, []).append(s.signature)
        return out

    def control_kinds(self) -> tuple[ControlKind, ...]:
        kinds = {s.control for s in self.table.values() if s is not None and s.control is not None}
        return tuple(k for k in ControlKind if k in kinds)

    def label_of(self, address: str) -> str | None:
        return next((c.label for c in self.contracts if c.address == address), None)


# ---- decoding --------------------------------------------------------------------------------
def _args(spec: EventSpec, address: str, topics: list[Any], data: Any) -> dict[str, str | int]:
    """The event's arguments, from the first layout that fits the topic and data word counts."""
    if not isinstance(data, str) or len(data) % 64 != 2 or not data.startswith("0x"):
        raise MalformedReply(f"{spec.name} log of {address}: data is not 32-byte words: {data!r:.100}")
    words = [data[i : i + 64] for i in range(2, len(data), 64)]
    for layout in spec.layouts:
        if len(topics) - 1 == sum(layout) and len(words) == len(layout) - sum(layout):
            break
    else:
        want = " or ".join(
            f"{sum(lay) + 1} topics and {len(lay) - sum(lay)} data words" for lay in spec.layouts
        )
        raise MalformedReply(
            f"{spec.name} log of {address} has {len(topics)} topics and {len(words)} data words; "
            f"{spec.signature} takes {want}"
        )
    out: dict[str, str | int] = {}
    t, w = iter(topics[1:]), iter(words)
    for p, indexed in zip(spec.params, layout, strict=True):
        raw = next(t) if indexed else "0x" + next(w)
        what = f"{spec.name} log of {address}: {p.name}"
        if p.type == "address":
            out[p.name] = word_address(raw, what)
        elif p.type == "uint256":
            out[p.name] = int(word(raw, what), 16)
        else:
            out[p.name] = word(raw, what)
    return out


def _records(
    chain: str, spec: EventSpec, address: str, pos: LogPosition, args: Mapping[str, Any]
) -> list[Record]:
    out: list[Record] = []
    if spec.control is not None:
        out.append(
            ControlEvent(
                chain,
                pos.block_number,
                pos.block_hash,
                pos.tx_hash,
                pos.log_index,
                spec.control,
                spec.name,
                address,
                subject=args.get(spec.subject) if spec.subject else None,
                previous=args.get(spec.previous) if spec.previous else None,
                actor=args.get(spec.actor) if spec.actor else None,
                role=args.get(spec.role) if spec.role else None,
                amount=args.get(spec.amount) if spec.amount else None,
                timestamp=pos.timestamp,
            )
        )
    match spec.supply:
        case None:
            pass
        case Supply.ISSUE | Supply.REDEEM:
            kind = EventKind.MINT if spec.supply is Supply.ISSUE else EventKind.BURN
            out.append(
                SupplyClaim(chain, *pos[:4], kind, int(args[spec.amount or ""]), pos.timestamp, address)
            )
        case Supply.DESTROY:
            account = str(args[spec.subject or ""])
            out.append(
                TokenEvent(
                    chain,
                    *pos[:4],
                    EventKind.BURN,
                    account,
                    ZERO_ADDRESS,
                    int(args[spec.amount or ""]),
                    pos.timestamp,
                )
            )
    return out


def _slow(
    chain: str, log: Mapping[str, Any], d: LogDispatch
) -> tuple[TokenEvent | LogMark | None, list[Record]]:
    """One log through the table: (the Transfer event or the log's mark, its records), or
    (None, []) for a log the filter's cross product returned but its address does not decode."""
    address, topics = log.get("address"), log.get("topics")
    if not isinstance(topics, list):
        raise MalformedReply(f"log has no topics list: {log!r:.200}")
    if not isinstance(address, str) or not topics or not isinstance(topics[0], str):
        raise UnaskedLog(f"log without an address or topic0 (the filter asks for both): {log!r:.200}")
    key = (address.lower(), topics[0].lower())
    if key not in d.table:
        raise UnaskedLog(
            f"log of {key[0]} with topic0 {key[1]} was not asked for (filter: {len(d.addresses)} "
            f"addresses, {len(d.topics)} topics)"
        )
    spec = d.table[key]
    if spec is None:
        return None, []
    if spec is TRANSFER:
        ev = decode_transfer(chain, log)
        if ev is None:
            raise MalformedReply(
                f"Transfer log of {key[0]} has {len(topics)} topics; an ERC-20 Transfer has 3 (from, to indexed)"
            )
        return ev, []
    pos = log_position(log)
    args = _args(spec, key[0], topics, log.get("data"))
    recs = [r for r in _records(chain, spec, key[0], pos, args) if _family(r) in d.families]
    mark = LogMark(*pos[:4], key[0], tuple(word(t, "log topic") for t in topics))
    return mark, recs


def _family(r: Record) -> Family:
    match r:
        case TokenEvent() | SupplyClaim():
            return Family.TRANSFERS
        case ControlEvent():
            return Family.CONTROLS


def decode_logs(chain: str, logs: Iterable[Mapping[str, Any]], dispatch: LogDispatch) -> Decoded:
    """Decode an eth_getLogs result asked with `dispatch.log_filter()`, dropping exact duplicates
    of a log identity (a provider fault seen in the wild). Two different logs with one identity
    are a malformed reply; so is a log the filter did not ask for (`UnaskedLog`)."""
    out = Decoded()
    events = out.events
    seen: dict[tuple[str, str, int], Any] = {}
    token = dispatch.token if dispatch.fast else None
    for log in logs:
        if type(log) is not dict and not isinstance(log, Mapping):
            raise MalformedReply(f"log is not a JSON object: {log!r:.100}")
        ev = fast_transfer(chain, log) if log.get("address") == token else None
        if ev is not None:
            key = (ev.block_hash, ev.tx_hash, ev.log_index)
            first = seen.get(key)
            if first is None:
                seen[key] = ev
                events.append(ev)
            elif first != ev:
                _conflict(key, first, ev)
            continue
        head, recs = _slow(chain, log, dispatch)
        if head is None:
            out.skipped += 1
            continue
        if isinstance(head, TokenEvent):
            key = (head.block_hash, head.tx_hash, head.log_index)
            value: Any = head
        else:
            key = (head.block_hash, head.tx_hash, head.log_index)
            value = (head, recs)
        first = seen.get(key)
        if first is not None:
            if first != value:
                _conflict(key, first, value)
            continue
        seen[key] = value
        if isinstance(head, TokenEvent):
            events.append(head)
            continue
        out.marks.append(head)
        for r in recs:
            match r:
                case TokenEvent():
                    out.supply.append(r)
                case SupplyClaim():
                    out.claims.append(r)
                case ControlEvent():
                    out.controls.append(r)
    return out


def _conflict(key: tuple[str, str, int], first: Any, other: Any) -> None:
    raise MalformedReply(
        f"two different logs with one identity (block {key[0]}, tx {key[1]}, log index {key[2]}): "
        f"{first} != {other}"
    )
