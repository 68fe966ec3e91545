"""PURE: contract state folded from stored control events, and its check against the chain.

`fold` replays a chain's control events (in block, log order) into the state of each contract
(the token and its watched contracts): owner and pending owner, proxy implementation, admin and
beacon, paused, frozen accounts, roles, minters and the FiatToken role holders, and (Solana) the
mint and freeze authorities. A field no stored event set is the contract's initial value (zero
address, not paused, nothing frozen): exact when the family's coverage starts at or before the
contract's deployment, which is why a check runs only on complete coverage.

`plan` says which getters and storage slots to read at the finalized block for a chain's control
families; `compare` turns the values read into the fields that disagree (the
`usd1_control_mismatch{field}` values).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, assert_never

import sha3

from indexer.chains.evm_families import ControlFamily
from indexer.chains.solana_parse import b58encode
from indexer.model import ControlEvent, ControlKind

ZERO = "0x" + "0" * 40
NO_AUTHORITY = "none"  # a Solana mint without that authority (COption::None)


class Field(StrEnum):
    """The `field` label of usd1_control_mismatch (fixed vocabulary)."""

    OWNER = "owner"
    PENDING_OWNER = "pending_owner"
    IMPLEMENTATION = "implementation"
    ADMIN = "admin"
    PAUSED = "paused"
    FROZEN = "frozen"
    MINT_AUTHORITY = "mint_authority"
    FREEZE_AUTHORITY = "freeze_authority"


@dataclass(frozen=True, slots=True)
class ContractState:
    """One contract's state as its stored control events left it."""

    address: str
    label: str
    owner: str | None = None
    pending_owner: str | None = None
    implementation: str | None = None
    admin: str | None = None
    beacon: str | None = None
    paused: bool = False
    frozen: frozenset[str] = frozenset()
    roles: frozenset[tuple[str, str]] = frozenset()  # (role, account)
    role_admins: Mapping[str, str] = field(default_factory=dict)
    minters: Mapping[str, int] = field(default_factory=dict)  # minter -> allowance (FiatToken)
    master_minter: str | None = None
    pauser: str | None = None
    blacklister: str | None = None
    mint_authority: str | None = None
    freeze_authority: str | None = None
    two_step: bool = False  # saw OwnershipTransferStarted: the contract is Ownable2Step
    events: int = 0
    last: ControlEvent | None = None


@dataclass(frozen=True, slots=True)
class ControlState:
    """Every contract's state at one height; `token` is the first contract."""

    contracts: tuple[ContractState, ...]

    @property
    def token(self) -> ContractState:
        return self.contracts[0]

    @property
    def last(self) -> ControlEvent | None:
        lasts = [c.last for c in self.contracts if c.last is not None]
        return max(lasts, key=lambda e: (e.block_number, e.log_index), default=None)

    def of(self, address: str) -> ContractState | None:
        return next((c for c in self.contracts if c.address == address), None)


def apply(s: ContractState, e: ControlEvent) -> ContractState:
    """One event's effect on its contract's state."""
    s = replace(s, events=s.events + 1, last=e)
    match e.kind:
        case ControlKind.OWNERSHIP_TRANSFER_STARTED:
            return replace(s, pending_owner=e.subject, two_step=True)
        case ControlKind.OWNERSHIP_TRANSFERRED:
            return replace(s, owner=e.subject, pending_owner=None)
        case ControlKind.UPGRADED:
            return replace(s, implementation=e.subject)
        case ControlKind.ADMIN_CHANGED:
            return replace(s, admin=e.subject)
        case ControlKind.BEACON_UPGRADED:
            return replace(s, beacon=e.subject)
        case ControlKind.PAUSED:
            return replace(s, paused=True)
        case ControlKind.UNPAUSED:
            return replace(s, paused=False)
        case ControlKind.ROLE_GRANTED:
            return replace(s, roles=s.roles | {(e.role or "", e.subject or "")})
        case ControlKind.ROLE_REVOKED:
            return replace(s, roles=s.roles - {(e.role or "", e.subject or "")})
        case ControlKind.ROLE_ADMIN_CHANGED:
            return replace(s, role_admins={**s.role_admins, e.role or "": e.subject or ""})
        case ControlKind.FROZEN:
            return replace(s, frozen=s.frozen | {e.subject or ""})
        case ControlKind.UNFROZEN:
            return replace(s, frozen=s.frozen - {e.subject or ""})
        case ControlKind.FROZEN_FUNDS_DESTROYED:
            return s  # the account stays blacklisted; its balance went with a burn
        case ControlKind.MINTER_CONFIGURED:
            return replace(s, minters={**s.minters, e.subject or "": e.amount or 0})
        case ControlKind.MINTER_REMOVED:
            return replace(s, minters={k: v for k, v in s.minters.items() if k != e.subject})
        case ControlKind.MINTER_ADMIN_CHANGED:
            return replace(s, master_minter=e.subject)
        case ControlKind.PAUSER_CHANGED:
            return replace(s, pauser=e.subject)
        case ControlKind.BLACKLISTER_CHANGED:
            return replace(s, blacklister=e.subject)
        case ControlKind.MINT_AUTHORITY_CHANGED:
            return replace(s, mint_authority=e.subject)
        case ControlKind.FREEZE_AUTHORITY_CHANGED:
            return replace(s, freeze_authority=e.subject)
        case ControlKind.AUTHORITY_CHANGED:
            return s  # recorded, no state of the mint (a token account's close/owner authority)
        case _:
            assert_never(e.kind)


def fold(events: Iterable[ControlEvent], contracts: Sequence[tuple[str, str]]) -> ControlState:
    """Replay `events` (ordered by block and log index) over `contracts` ((address, label), the
    token first); events of other addresses are ignored (a contract no longer watched)."""
    states = {a: ContractState(a, label) for a, label in contracts}
    for e in events:
        s = states.get(e.address)
        if s is not None:
            states[e.address] = apply(s, e)
    return ControlState(tuple(states[a] for a, _ in contracts))


# ---- the check against the chain --------------------------------------------------------------
def _slot(name: str, minus_one: bool) -> str:
    n = int(sha3.keccak_256(name.encode()).hexdigest(), 16) - (1 if minus_one else 0)
    return "0x" + format(n, "064x")


# EIP-1967 (OpenZeppelin proxies, USD1) and the older ZeppelinOS slots (Circle's FiatTokenProxy).
EIP1967_IMPLEMENTATION = _slot("eip1967.proxy.implementation", True)
EIP1967_ADMIN = _slot("eip1967.proxy.admin", True)
EIP1967_BEACON = _slot("eip1967.proxy.beacon", True)
ZOS_IMPLEMENTATION = _slot("org.zeppelinos.proxy.implementation", False)
ZOS_ADMIN = _slot("org.zeppelinos.proxy.admin", False)
assert EIP1967_IMPLEMENTATION == "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
assert EIP1967_ADMIN == "0xb53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103"
assert ZOS_IMPLEMENTATION == "0x7050c9e0f4ca769c69bd3a8ef740bc37934f8e2c036e5a723fd8ee048ed3f8c3"

# The freeze getter of each family that freezes (USD1 `mapping(address => bool) public frozen`).
FREEZE_GETTERS: dict[ControlFamily, str] = {
    ControlFamily.USD1: "frozen(address)",
    ControlFamily.FIATTOKEN: "isBlacklisted(address)",
    ControlFamily.TETHER: "isBlackListed(address)",
}
PAUSE_FAMILIES = (ControlFamily.PAUSABLE, ControlFamily.FIATTOKEN, ControlFamily.TETHER)


@dataclass(frozen=True, slots=True)
class Probe:
    """One value to read at the finalized block: a getter (`call`: its signature, with `account`
    as its argument) or a storage slot (`slot`) of `address`."""

    field: Field
    address: str
    kind: Literal["address", "bool"]
    call: str | None = None
    slot: str | None = None
    account: str | None = None


def plan(
    state: ControlState,
    families: Mapping[str, Sequence[ControlFamily]],
    *,
    sample: int,
    offset: int = 0,
) -> list[Probe]:
    """What to read for each contract (`families`: address -> its control families): owner
    (and pending owner when the contract is Ownable2Step: the USD1 profile, or one seen starting
    a transfer), proxy implementation and admin from their slots, paused, and the freeze getter
    for `sample` of the frozen accounts (rotating by `offset`, so every account is checked in
    turn)."""
    out: list[Probe] = []
    for c in state.contracts:
        fams = families.get(c.address, ())
        if ControlFamily.OWNABLE in fams:
            out.append(Probe(Field.OWNER, c.address, "address", call="owner()"))
            if c.two_step or ControlFamily.USD1 in fams:
                out.append(Probe(Field.PENDING_OWNER, c.address, "address", call="pendingOwner()"))
        if ControlFamily.PROXY in fams and c.label == "token":
            zos = ControlFamily.FIATTOKEN in fams
            impl, admin = (ZOS_IMPLEMENTATION, ZOS_ADMIN) if zos else (EIP1967_IMPLEMENTATION, EIP1967_ADMIN)
            out.append(Probe(Field.IMPLEMENTATION, c.address, "address", slot=impl))
            out.append(Probe(Field.ADMIN, c.address, "address", slot=admin))
        if any(f in fams for f in PAUSE_FAMILIES):
            out.append(Probe(Field.PAUSED, c.address, "bool", call="paused()"))
        getter = next((FREEZE_GETTERS[f] for f in fams if f in FREEZE_GETTERS), None)
        if getter is not None and c.frozen and sample > 0:
            accounts = sorted(c.frozen)
            start = offset % len(accounts)
            for a in (accounts[start:] + accounts[:start])[:sample]:
                out.append(Probe(Field.FROZEN, c.address, "bool", call=getter, account=a))
    return out


def expected(state: ControlState, p: Probe) -> str | bool:
    c = state.of(p.address)
    assert c is not None
    match p.field:
        case Field.OWNER:
            return c.owner or ZERO
        case Field.PENDING_OWNER:
            return c.pending_owner or ZERO
        case Field.IMPLEMENTATION:
            return c.implementation or ZERO
        case Field.ADMIN:
            return c.admin or ZERO
        case Field.PAUSED:
            return c.paused
        case Field.FROZEN:
            return p.account in c.frozen
        case Field.MINT_AUTHORITY:
            return c.mint_authority or NO_AUTHORITY
        case Field.FREEZE_AUTHORITY:
            return c.freeze_authority or NO_AUTHORITY
        case _:
            assert_never(p.field)


def compare(state: ControlState, read: Iterable[tuple[Probe, str | bool]]) -> dict[Field, list[str]]:
    """Every field that disagrees, with what disagrees (empty lists are agreement)."""
    out: dict[Field, list[str]] = {}
    for p, value in read:
        want = expected(state, p)
        diffs = out.setdefault(p.field, [])
        if value != want:
            who = p.address + (f" {p.account}" if p.account else "")
            diffs.append(f"{p.field.value} of {who}: stored {want}, chain {value}")
    return out


# ---- Solana: the mint account and token accounts (SPL Token / Token-2022 layouts) ---------------
MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165
_ACCOUNT_TYPE_MINT = 1
_EXTENSION_PAUSABLE = 26  # Token-2022 ExtensionType::PausableConfig: authority (32) + paused (1)


@dataclass(frozen=True, slots=True)
class MintAccount:
    """What the chain's mint account says: authorities (None: COption::None), supply, and
    Token-2022's pausable state (None: the mint has no PausableConfig extension)."""

    mint_authority: str | None
    freeze_authority: str | None
    supply: int
    decimals: int
    paused: bool | None


def _coption_key(data: bytes, at: int, what: str) -> str | None:
    tag = int.from_bytes(data[at : at + 4], "little")
    if tag == 0:
        return None
    if tag != 1:
        raise ValueError(f"{what}: COption tag {tag} is neither 0 nor 1")
    return b58encode(data[at + 4 : at + 36])


def decode_mint_account(data: bytes) -> MintAccount:
    """The mint account's data (base64-decoded); ValueError naming what is wrong."""
    if len(data) < MINT_SIZE:
        raise ValueError(f"mint account has {len(data)} bytes, fewer than {MINT_SIZE}")
    if data[45] != 1:
        raise ValueError("mint account is not initialized")
    paused: bool | None = None
    if len(data) > MINT_SIZE:  # Token-2022: padding to 165, account type, then TLV extensions
        if len(data) <= TOKEN_ACCOUNT_SIZE or data[TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_MINT:
            raise ValueError("account is not a mint (Token-2022 account type is not Mint)")
        at = TOKEN_ACCOUNT_SIZE + 1
        while at + 4 <= len(data):
            etype = int.from_bytes(data[at : at + 2], "little")
            length = int.from_bytes(data[at + 2 : at + 4], "little")
            if etype == 0:  # Uninitialized: the rest is unused
                break
            body = data[at + 4 : at + 4 + length]
            if len(body) != length:
                raise ValueError(f"mint extension {etype} runs past the account's data")
            if etype == _EXTENSION_PAUSABLE:
                if length < 33:
                    raise ValueError(f"PausableConfig extension has {length} bytes, fewer than 33")
                paused = body[32] != 0
            at += 4 + length
    return MintAccount(
        mint_authority=_coption_key(data, 0, "mint authority"),
        freeze_authority=_coption_key(data, 46, "freeze authority"),
        supply=int.from_bytes(data[36:44], "little"),
        decimals=data[44],
        paused=paused,
    )


def token_account_frozen(data: bytes, mint: str) -> bool:
    """Whether a token account of `mint` is frozen (AccountState::Frozen); ValueError when the data
    is no initialized token account of that mint."""
    if len(data) < TOKEN_ACCOUNT_SIZE:
        raise ValueError(f"token account has {len(data)} bytes, fewer than {TOKEN_ACCOUNT_SIZE}")
    if b58encode(data[0:32]) != mint:
        raise ValueError(f"token account belongs to mint {b58encode(data[0:32])}, not {mint}")
    state = data[108]
    if state == 0:
        raise ValueError("token account is not initialized")
    return state == 2


def solana_plan(state: ControlState, *, sample: int, offset: int = 0) -> list[Probe]:
    """What to read of a Solana mint: its authorities, paused (read, compared only when the mint
    has the pausable extension or an event paused it), and `sample` of the frozen accounts."""
    t = state.token
    out = [
        Probe(Field.MINT_AUTHORITY, t.address, "address"),
        Probe(Field.FREEZE_AUTHORITY, t.address, "address"),
        Probe(Field.PAUSED, t.address, "bool"),
    ]
    if t.frozen and sample > 0:
        accounts = sorted(t.frozen)
        start = offset % len(accounts)
        for a in (accounts[start:] + accounts[:start])[:sample]:
            out.append(Probe(Field.FROZEN, t.address, "bool", account=a))
    return out
