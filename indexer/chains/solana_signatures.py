"""Signature-driven backfill of one SPL mint (issue #19 section 3): read only the transactions
that touch the mint or its token accounts instead of every slot's block.

For a range [start, end] at or below the chain's finalized slot:

1. `getSignaturesForAddress` (finalized commitment, pages of 1000, newest first) lists the
   mint's transactions, and those of every token account of the mint known so far. Each
   address's list is read once, down to the chain's start slot, and later only extended above
   its newest signature (`until`), so a whole backfill pages through each address once.
2. Token accounts are discovered as the mint's own instructions create them: every
   InitializeAccount* (and the Associated Token Account program's Create) names the mint, so the
   mint's list holds every account's creation. Discovery runs in slot order up to the range's end
   (under a lock: ranges fetched concurrently wait for the accounts below them), reading the
   mint's transactions with `getTransaction` and taking the accounts each one shows
   (`solana_parse.accounts_of_mint`). A plain Transfer names no mint, which is why the accounts'
   own lists are read too.
3. Every listed signature in the range, deduplicated, is read once with `getTransaction`
   (failed transactions, marked by the list's `err`, are not read: they move nothing) and parsed
   by the same parser as the block path.
4. For each slot that holds a decoded event, one `getBlock` gives the block's hash and time:
   `transactionDetails=none` when the slot holds transfers only, `signatures` when it holds a
   control event, whose transaction's index in the block orders it within the slot (as the block
   path does; the list also proves the transaction is in that block).
5. The range's `end_ref` and `follows` come from `getBlocks` and two header reads, as in the
   block path, so the follower's link and reorg checks are the same.

Only finalized slots are served this way (nothing read can be orphaned; the finalized slot is read
first): a range above the finalized slot is read block by block. The events, controls, supply and
balances equal the block path's (tests/integration/test_solana_signatures.py shows it on the
devnet). Exact when the backfill starts at or before the mint's creation (`start_slot`); a token
account created before `start_slot` is found only when a later transaction of the mint shows it.

Memory: the listed (slot, signature) pairs of every followed address, about 100 bytes each.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.chains.solana_parse import (
    ParsedTx,
    accounts_of_mint,
    block_ref,
    parse_transaction,
)
from indexer.errors import DataConsistencyError, MalformedReply
from indexer.model import BlockRef, ControlEvent, RangeData, TokenEvent

if TYPE_CHECKING:
    from indexer.chains.solana import SolanaSource

PAGE = 1000  # getSignaturesForAddress's largest page


@dataclass(slots=True)
class _Listed:
    """One address's signatures, oldest first, complete for slots in [floor, top_slot]."""

    floor: int
    entries: list[tuple[int, str, bool]] = field(default_factory=list)  # (slot, signature, failed)
    top_sig: str | None = None
    top_slot: int = -1

    def between(self, lo: int, hi: int) -> list[tuple[int, str, bool]]:
        i = bisect.bisect_left(self.entries, (lo, "", False))
        j = bisect.bisect_right(self.entries, (hi, "\uffff", True))
        return self.entries[i:j]


class SignatureBackfill:
    def __init__(self, source: SolanaSource) -> None:
        self.src = source
        self.mint = source.mint
        self._listed: dict[str, _Listed] = {}
        self._accounts: set[str] = set()  # token accounts of the mint discovered so far
        self._discovered_to = source.config.start_slot - 1
        self._lock = asyncio.Lock()  # discovery runs in slot order
        self._list_locks: dict[str, asyncio.Lock] = {}  # one listing of an address at a time
        self._txs: dict[str, Any] = {}  # signature -> getTransaction result (mint's, until used)

    # ---- the RPC reads ------------------------------------------------------------------------
    async def _list(self, address: str, upto: int) -> _Listed:
        """`address`'s listing, extended to cover slots up to `upto` (finalized)."""
        async with self._list_locks.setdefault(address, asyncio.Lock()):
            return await self._extend(address, upto)

    async def _extend(self, address: str, upto: int) -> _Listed:
        listed = self._listed.get(address)
        if listed is None:
            listed = self._listed[address] = _Listed(floor=self.src.config.start_slot)
        if listed.top_slot >= upto:
            return listed
        newer: list[tuple[int, str, bool]] = []
        before: str | None = None
        while True:
            cfg: dict[str, Any] = {"commitment": "finalized", "limit": PAGE}
            if before is not None:
                cfg["before"] = before
            if listed.top_sig is not None:
                cfg["until"] = listed.top_sig
            page = await self.src._call("getSignaturesForAddress", [address, cfg])
            if not isinstance(page, list):
                raise MalformedReply(f"getSignaturesForAddress({address}) is not a list: {page!r:.80}")
            done = len(page) < PAGE
            for item in page:
                sig, slot, failed = _signature_entry(item, address)
                if slot < listed.floor:
                    done = True
                    break
                newer.append((slot, sig, failed))
            if done or not page:
                break
            before = newer[-1][1]
        if newer:
            newer.reverse()
            if listed.entries and newer[0][0] < listed.entries[-1][0]:
                raise DataConsistencyError(
                    f"getSignaturesForAddress({address}) listed slot {newer[0][0]} below the newest "
                    f"slot {listed.entries[-1][0]} already listed"
                )
            listed.entries.extend(newer)
            listed.top_sig = newer[-1][1]
        # Complete up to the finalized slot the list was read at (at least `upto`).
        listed.top_slot = max(listed.top_slot, upto)
        return listed

    async def _transaction(self, signature: str) -> Any:
        cached = self._txs.pop(signature, None)
        if cached is not None:
            return cached
        cfg = {
            "commitment": "finalized",
            "encoding": self.src.encoding,
            "maxSupportedTransactionVersion": 0,
        }
        reply = await self.src._call("getTransaction", [signature, cfg])
        if not isinstance(reply, dict):
            raise DataConsistencyError(
                f"getTransaction({signature}) returned {reply!r:.80} for a listed signature"
            )
        return reply

    async def _block_signatures(
        self, slot: int, *, positions: bool
    ) -> tuple[BlockRef, dict[str, int] | None]:
        """The block's header, and (`positions`) each transaction's index in it."""
        cfg = {
            "commitment": "finalized",
            "encoding": "json",
            "transactionDetails": "signatures" if positions else "none",
            "rewards": False,
            "maxSupportedTransactionVersion": 0,
        }
        reply = await self.src._call("getBlock", [slot, cfg])
        ref = block_ref(slot, reply)
        if not positions:
            return ref, None
        sigs = reply.get("signatures")
        if not isinstance(sigs, list) or not all(isinstance(s, str) for s in sigs):
            raise MalformedReply(f"getBlock({slot}, signatures) has no signatures list")
        return ref, {s: i for i, s in enumerate(sigs)}

    # ---- discovery ----------------------------------------------------------------------------
    async def _discover(self, upto: int) -> None:
        """Every token account of the mint created at or below `upto`."""
        async with self._lock:
            if self._discovered_to >= upto:
                return
            lo = self._discovered_to + 1
            listed = await self._list(self.mint, upto)
            todo = [sig for _, sig, failed in listed.between(lo, upto) if not failed]
            replies = await self.src._gather([self._transaction(sig) for sig in todo])
            for sig, tx in zip(todo, replies, strict=True):
                self._accounts |= accounts_of_mint(self.mint, tx, where=f"transaction {sig}")
                self._txs[sig] = tx  # read again below for its events: keep it
            self._discovered_to = upto

    # ---- a range ------------------------------------------------------------------------------
    async def fetch(self, start: int, end: int, *, transfers: bool, controls: bool) -> RangeData:
        """[start, end] (end at or below the finalized slot) from the signature lists."""
        await self._discover(end)
        addresses = [self.mint, *sorted(self._accounts)]
        lists = await self.src._gather([self._list(a, end) for a in addresses])
        wanted: dict[str, int] = {}
        for listed in lists:
            for slot, sig, failed in listed.between(start, end):
                if not failed:
                    wanted.setdefault(sig, slot)
        sigs = sorted(wanted, key=lambda s: (wanted[s], s))
        replies = await self.src._gather([self._transaction(s) for s in sigs])
        by_slot: dict[int, list[tuple[str, Any]]] = {}
        for sig, tx in zip(sigs, replies, strict=True):
            slot = tx.get("slot")
            if slot != wanted[sig]:
                raise DataConsistencyError(
                    f"getTransaction({sig}) is at slot {slot!r}, getSignaturesForAddress listed {wanted[sig]}"
                )
            by_slot.setdefault(slot, []).append((sig, tx))

        async def one_slot(slot: int, txs: list[tuple[str, Any]]) -> list[tuple[int, ParsedTx]]:
            # Parse first (positions unknown yet): most listed slots hold nothing of the mint.
            probe = [
                parse_transaction(
                    self.src.name, self.mint, slot, "", 0, tx, where=f"transaction {sig}", controls=controls
                )
                for sig, tx in txs
            ]
            if not any(p.events or p.controls for p in probe):
                return []
            # Control events need the transaction's place in the block (it orders them within the
            # slot); transfers do not (their identity is the signature and path), so a slot with
            # transfers only reads just the header. A finalized slot has one block: the listed
            # transaction is in it.
            ref, index = await self._block_signatures(slot, positions=any(p.controls for p in probe))
            out: list[tuple[int, ParsedTx]] = []
            for n, (sig, tx) in enumerate(txs):
                pos = n if index is None else index.get(sig)
                if pos is None:
                    raise DataConsistencyError(
                        f"{self.src.name}: transaction {sig} is not in block {slot} ({ref.hash})"
                    )
                parsed = parse_transaction(
                    self.src.name,
                    self.mint,
                    slot,
                    ref.hash,
                    ref.timestamp,
                    tx,
                    where=f"transaction {sig}",
                    controls=controls,
                    tx_index=pos,
                )
                out.append((pos, parsed))
            return out

        slots = sorted(by_slot)
        parsed_slots = await self.src._gather([one_slot(s, by_slot[s]) for s in slots])
        events: list[TokenEvent] = []
        control_events: list[ControlEvent] = []
        unattributed = 0
        for found in parsed_slots:
            for _, p in sorted(found, key=lambda x: x[0]):
                if transfers:
                    events.extend(p.events)
                    unattributed += p.unattributed
                control_events.extend(p.controls)
        if unattributed:
            self.src._log.warning("solana_unattributed_transfers", count=unattributed, start=start, end=end)
        end_ref, follows = await self._bounds(start, end)
        return RangeData(
            start=start,
            end=end,
            events=tuple(events),
            headers=(),
            end_ref=end_ref,
            controls=tuple(control_events),
            follows=follows,
        )

    async def _bounds(self, start: int, end: int) -> tuple[BlockRef, tuple[int, str]]:
        """The range's last block (the cursor) and what its first block continues."""
        slots = await self.src._blocks(start, end)
        if not slots:
            below = await self.src.header_at_or_below(start - 1) if start > 0 else None
            if below is None:
                raise DataConsistencyError(f"{self.src.name}: no block at or below slot {end}")
            return below, (below.number, below.hash)
        ends = sorted({slots[0], slots[-1]})
        heads = await self.src._gather([self.src._get_block(s, full=False) for s in ends])
        by = dict(zip(ends, heads, strict=True))
        first, last = by[slots[0]], by[slots[-1]]
        parent = first.get("parentSlot")
        if not isinstance(parent, int) or start <= parent < slots[0]:
            raise DataConsistencyError(
                f"{self.src.name}: block {slots[0]} has parent slot {parent!r} inside the range but "
                "getBlocks did not list it"
            )
        return block_ref(slots[-1], last), (parent, block_ref(slots[0], first).parent_hash)


def _signature_entry(item: Any, address: str) -> tuple[str, int, bool]:
    if not isinstance(item, dict):
        raise MalformedReply(f"getSignaturesForAddress({address}) entry is not an object: {item!r:.80}")
    sig, slot = item.get("signature"), item.get("slot")
    if not isinstance(sig, str) or not isinstance(slot, int) or isinstance(slot, bool):
        raise MalformedReply(f"getSignaturesForAddress({address}) entry lacks signature/slot: {item!r:.120}")
    return sig, slot, item.get("err") is not None


__all__: Sequence[str] = ("SignatureBackfill",)
