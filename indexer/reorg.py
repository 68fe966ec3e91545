"""PURE: the hash-linked window of unfinalized blocks and reorg reconciliation.

The window holds the blocks the index has accepted above (and including) one anchor at or below
the finalized height. Each ref's `parent_hash` equals the previous ref's `hash`. Heights need not
be contiguous (Solana skips slots).

`reconcile(window, candidates)` compares canonical headers just read from the chain with the
window and says what to do:

- `Advance(new)`: the candidates extend the window; index `new`.
- `Reorg(ancestor, orphaned, new)`: blocks above `ancestor` were orphaned; roll them back and
  index `new` (which may be empty when the chain only got shorter).
- `NeedParent(number)`: the candidates do not link to the window; fetch the canonical header at
  `number` (or the nearest existing one below it), prepend it and call again.
- `Inconsistent(reason)`: the candidates are not linked among themselves (the chain moved while
  they were read); read them again.
- `Violation(fork_point, finalized, ...)`: the chain disagrees with a finalized block (one would
  be orphaned, or a new block appeared at a finalized height the window holds as a skipped slot),
  or no common ancestor exists at or above the window's bottom: halt (once a quorum of endpoints
  confirms it, see `indexer.quorum`). `height`/`stored`/`new` say where the window and the chain
  disagree: the window's hash there (None: held as an empty slot) and the candidates' (None: they
  show no block there).

The last candidate is taken to be the chain's head: window blocks above it are orphaned.

`check_link(cursor, follows, finalized)` is the same question for a range fetched without every
header (backfill): does the range's first block follow the cursor (parent height and hash)?
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from indexer.model import BlockRef


@dataclass(frozen=True, slots=True)
class Window:
    refs: tuple[BlockRef, ...] = ()
    finalized: int = -1
    _numbers: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_numbers", tuple(r.number for r in self.refs))

    @property
    def tip(self) -> BlockRef | None:
        return self.refs[-1] if self.refs else None

    @property
    def bottom(self) -> BlockRef | None:
        return self.refs[0] if self.refs else None

    def at(self, number: int) -> BlockRef | None:
        i = bisect.bisect_left(self._numbers, number)
        if i < len(self._numbers) and self._numbers[i] == number:
            return self.refs[i]
        return None

    def by_hash(self, block_hash: str) -> BlockRef | None:
        for ref in reversed(self.refs):
            if ref.hash == block_hash:
                return ref
        return None

    def above(self, number: int) -> tuple[BlockRef, ...]:
        i = bisect.bisect_right(self._numbers, number)
        return self.refs[i:]

    def extend(self, new: Sequence[BlockRef]) -> Window:
        return Window(self.refs + tuple(new), self.finalized)

    def rollback(self, ancestor: BlockRef) -> Window:
        i = bisect.bisect_right(self._numbers, ancestor.number)
        kept = self.refs[:i]
        if not kept or kept[-1] != ancestor:
            raise ValueError(f"ancestor {ancestor.number} {ancestor.hash} is not in the window")
        return Window(kept, self.finalized)

    def finalize(self, height: int) -> Window:
        """Raise the finalized height and prune refs below the highest ref at or below it
        (that ref stays as the anchor)."""
        finalized = max(self.finalized, height)
        i = bisect.bisect_right(self._numbers, finalized)
        start = max(0, i - 1)
        return Window(self.refs[start:], finalized)

    def is_linked(self) -> bool:
        return linked(self.refs)


def linked(refs: Sequence[BlockRef]) -> bool:
    return all(b.number > a.number and b.parent_hash == a.hash for a, b in pairwise(refs))


@dataclass(frozen=True, slots=True)
class Advance:
    new: tuple[BlockRef, ...]


@dataclass(frozen=True, slots=True)
class Reorg:
    ancestor: BlockRef
    orphaned: tuple[BlockRef, ...]
    new: tuple[BlockRef, ...]

    @property
    def depth(self) -> int:
        return len(self.orphaned)


@dataclass(frozen=True, slots=True)
class NeedParent:
    number: int


@dataclass(frozen=True, slots=True)
class Inconsistent:
    reason: str


@dataclass(frozen=True, slots=True)
class Violation:
    fork_point: int
    finalized: int
    detail: str
    height: int  # the final height where the window and the chain disagree
    stored: str | None  # the window's hash there; None: the window holds it as an empty slot
    new: str | None = None  # the candidates' hash there; None: they show no block there


Decision = Advance | Reorg | NeedParent | Inconsistent | Violation


def reconcile(window: Window, candidates: Sequence[BlockRef]) -> Decision:
    """Decide how canonical `candidates` (ascending, read from the chain) relate to `window`."""
    cands = tuple(candidates)
    if not cands:
        return Advance(())
    if not linked(cands):
        return Inconsistent("candidate headers are not hash-linked (the chain moved while reading)")
    tip = window.tip
    if tip is None:
        return Advance(cands)

    bottom = window.bottom
    assert bottom is not None

    # The last candidate that is already in the window is the common ancestor. Candidates below
    # the window's bottom say nothing about it (the window does not hold those heights).
    match_idx = -1
    for i, c in enumerate(cands):
        mine = window.at(c.number)
        if mine is not None and mine.hash == c.hash:
            match_idx = i
        elif bottom.number <= c.number <= tip.number:
            break
    if match_idx >= 0:
        ancestor = cands[match_idx]
        return _split(window, window.at(ancestor.number) or ancestor, cands[match_idx + 1 :])

    first = cands[0]
    parent = window.by_hash(first.parent_hash)
    if parent is not None:
        return _split(window, parent, cands)

    # No link yet: is the mismatch already at or below finality?
    mine = window.at(first.number)
    if mine is not None and mine.number <= window.finalized:
        return Violation(
            first.number,
            window.finalized,
            f"block {first.number} hash {first.hash} != {mine.hash}",
            mine.number,
            mine.hash,
            first.hash,
        )
    # The first candidate's parent is the canonical block at or below `first.number - 1`.
    highest_parent = first.number - 1
    if highest_parent < bottom.number:
        seen = next((c.hash for c in cands if c.number == bottom.number), None)
        return Violation(
            first.number,
            window.finalized,
            f"no common ancestor at or above the window bottom {bottom.number}",
            bottom.number,
            bottom.hash,
            seen,
        )
    if highest_parent < window.finalized and highest_parent <= tip.number:
        # The parent is at or below finality and inside the window's span, yet not in the window.
        # (`first` is at a finalized height the window holds as an empty slot.)
        return Violation(
            first.number,
            window.finalized,
            f"block {first.number} {first.hash} does not descend from the finalized chain",
            first.number,
            None,
            first.hash,
        )
    # Walk back one parent at a time (never jump to the tip: prepending a header that is not the
    # first candidate's parent could never link).
    return NeedParent(highest_parent)


def _split(window: Window, ancestor: BlockRef, new: tuple[BlockRef, ...]) -> Decision:
    orphaned = window.above(ancestor.number)
    if orphaned and orphaned[0].number <= window.finalized:
        lost = orphaned[0]
        return Violation(
            lost.number,
            window.finalized,
            f"finalized block {lost.number} {lost.hash} would be orphaned"
            f" (the chain forks after block {ancestor.number} {ancestor.hash})",
            lost.number,
            lost.hash,
            next((r.hash for r in new if r.number == lost.number), None),
        )
    tip = window.tip
    if new and tip is not None and new[0].number <= min(window.finalized, tip.number):
        # A block appeared at a finalized height the window holds as empty (a skipped slot).
        return Violation(
            new[0].number,
            window.finalized,
            f"new block {new[0].number} {new[0].hash} at or below finalized height {window.finalized}",
            new[0].number,
            None,
            new[0].hash,
        )
    if not orphaned:
        return Advance(new)
    return Reorg(ancestor, orphaned, new)


def apply(window: Window, decision: Advance | Reorg) -> Window:
    match decision:
        case Advance(new=new):
            return window.extend(new)
        case Reorg(ancestor=ancestor, new=new):
            return window.rollback(ancestor).extend(new)


def check_link(cursor: BlockRef, follows: tuple[int, str], finalized: int) -> Violation | Inconsistent | None:
    """Does a fetched range follow `cursor`? `follows` is the (height, hash) of the block the
    range's first block names as its parent (EVM: height - 1 and parentHash; Solana: parentSlot
    and previousBlockhash), or, for a range without blocks, of the newest block below it.
    None when it does; a Violation when the break is at or below `finalized`; else Inconsistent."""
    number, block_hash = follows
    if number == cursor.number and block_hash == cursor.hash:
        return None
    height: int
    stored: str | None
    new: str | None
    if number == cursor.number:
        height, stored, new = cursor.number, cursor.hash, block_hash
        detail = f"block {number} is {block_hash} on the chain, {cursor.hash} in the index"
    elif number < cursor.number:
        height, stored, new = cursor.number, cursor.hash, None
        detail = (
            f"the range follows block {number} {block_hash}, below the indexed block"
            f" {cursor.number} {cursor.hash}, which is no longer on the chain"
        )
    else:
        height, stored, new = number, None, block_hash
        detail = (
            f"the range follows block {number} {block_hash}, at a height the index holds as"
            f" empty (its cursor is block {cursor.number} {cursor.hash})"
        )
    if height <= finalized:
        return Violation(height, finalized, detail, height, stored, new)
    return Inconsistent(f"the range does not follow the cursor: {detail}")
