"""Core value types shared by every layer. Frozen, slotted, typed; no I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Family(StrEnum):
    """An event family: a record type with its own block-scoped table (see
    `indexer.store.blocktables`). `transfers` (TokenEvent, table `events`) is the measured fast
    path; `controls` (ControlEvent, table `control_events`) are the token's privileged events."""

    TRANSFERS = "transfers"
    CONTROLS = "controls"


@dataclass(frozen=True, slots=True)
class FamilyConfig:
    """What a family of a chain decodes: `fingerprint` identifies it, `config` describes it
    ({address: [event signatures]}). A `fillable` family can be filled in below the cursor (its
    rows depend on nothing but their own block); `legacy`: this is what the indexer decoded
    before coverage was recorded (store migration 009)."""

    fingerprint: str
    config: Mapping[str, Sequence[str]]
    fillable: bool
    legacy: bool = False


class EventKind(StrEnum):
    MINT = "mint"
    BURN = "burn"
    TRANSFER = "transfer"


class ControlKind(StrEnum):
    """The fixed control-event vocabulary (metric label `kind`, column `control_events.kind`).
    The original event or instruction name is kept beside it (`ControlEvent.event`)."""

    OWNERSHIP_TRANSFER_STARTED = "ownership_transfer_started"
    OWNERSHIP_TRANSFERRED = "ownership_transferred"
    UPGRADED = "upgraded"
    ADMIN_CHANGED = "admin_changed"
    BEACON_UPGRADED = "beacon_upgraded"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    ROLE_ADMIN_CHANGED = "role_admin_changed"
    FROZEN = "frozen"
    UNFROZEN = "unfrozen"
    FROZEN_FUNDS_DESTROYED = "frozen_funds_destroyed"
    MINTER_CONFIGURED = "minter_configured"
    MINTER_REMOVED = "minter_removed"
    MINTER_ADMIN_CHANGED = "minter_admin_changed"
    PAUSER_CHANGED = "pauser_changed"
    BLACKLISTER_CHANGED = "blacklister_changed"
    MINT_AUTHORITY_CHANGED = "mint_authority_changed"
    FREEZE_AUTHORITY_CHANGED = "freeze_authority_changed"
    AUTHORITY_CHANGED = "authority_changed"


CONTROL_KINDS = tuple(k.value for k in ControlKind)


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block (EVM) or slot (Solana) as seen by the indexer.

    `number` is the height (EVM) or slot (Solana); `parent_hash` links it to the previous
    *existing* block (Solana skips slots, so numbers need not be contiguous there).
    `timestamp` is unix seconds (0 when unknown).
    """

    number: int
    hash: str
    parent_hash: str
    timestamp: int = 0


class TokenEvent(NamedTuple):
    """One token movement. Identity: (chain, block_hash, tx_hash, log_index).

    `amount` is an exact integer in base units. `from_addr` is None for a Solana mint and
    `to_addr` is None for a Solana burn; on EVM chains they hold the zero address.
    `log_index` is the EVM log index, or for Solana the encoded instruction path
    (see `indexer.chains.solana_parse.encode_path`).

    Immutable like the other model types, but a NamedTuple rather than a frozen dataclass: a
    backfill builds millions of these, and a tuple is built several times faster. The store
    COPYs these tuples as they are, so the field order is the `events` column order.
    """

    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    kind: EventKind
    from_addr: str | None
    to_addr: str | None
    amount: int
    timestamp: int = 0

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (self.chain, self.block_hash, self.tx_hash, self.log_index)


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """One privileged event of a watched contract (EVM log) or of the mint and its accounts
    (Solana instruction). Identity: (chain, block_hash, tx_hash, log_index), as for TokenEvent.

    `address` is the emitting contract (EVM) or the mint / token account acted on (Solana).
    The other fields are what the event names, when it names them:
    `subject`: the account the event is about (new owner, pending owner, implementation, new
    admin, beacon, frozen account, role account, minter, new pauser / blacklister / master
    minter, new authority); `previous`: the previous holder (previous owner or admin, previous
    admin role); `actor`: who acted (Freeze's caller, Paused's account, a role's sender);
    `role`: AccessControl role (bytes32 hex); `amount`: exact base units (a minter allowance,
    destroyed frozen funds). Addresses are lowercase 0x-hex on EVM, base58 on Solana.
    """

    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    kind: ControlKind
    event: str
    address: str
    subject: str | None = None
    previous: str | None = None
    actor: str | None = None
    role: str | None = None
    amount: int | None = None
    timestamp: int = 0

    @property
    def identity(self) -> tuple[str, str, str, int]:
        return (self.chain, self.block_hash, self.tx_hash, self.log_index)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a chain's index stands: the cursor (last indexed block, None before the first
    batch), the finalized height the index holds, and the window of block refs kept for reorg
    detection (ending at the cursor)."""

    cursor: BlockRef | None
    finalized: int
    window: tuple[BlockRef, ...]


@dataclass(frozen=True, slots=True)
class RangeData:
    """What a source returns for blocks [start, end] inclusive.

    `headers` holds the canonical header of every existing block in the range when the caller
    asked for them (live following), else only `end_ref`. `end_ref` is the header of the last
    existing block at or below `end` (the new cursor). `copy_rows`, when given, is `events`
    already encoded for the store's binary COPY (`indexer.store.copy_binary`). `controls` are the
    control events of the range (family `controls`; empty when the chain decodes none).
    `follows` is the (height, hash) of the block the range continues: the parent of its first
    existing block (EVM: `start - 1` and its parentHash; Solana: parentSlot and
    previousBlockhash), or for a range without blocks the newest block below it. The follower
    checks it against its cursor (`indexer.reorg.check_link`); None only from a source that
    cannot tell, which the follower refuses.
    """

    start: int
    end: int
    events: tuple[TokenEvent, ...]
    headers: tuple[BlockRef, ...]
    end_ref: BlockRef
    copy_rows: bytes | None = None
    controls: tuple[ControlEvent, ...] = ()
    follows: tuple[int, str] | None = None
