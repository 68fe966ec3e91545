"""Core value types shared by every layer. Frozen, slotted, typed; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class EventKind(StrEnum):
    MINT = "mint"
    BURN = "burn"
    TRANSFER = "transfer"


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
    already encoded for the store's binary COPY (`indexer.store.copy_binary`).
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
    follows: tuple[int, str] | None = None
