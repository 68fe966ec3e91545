"""PURE: checks against a node that reads state at `latest` only (Tron's java-tron JSON-RPC).

java-tron runs `eth_call` and `eth_getStorageAt` against the latest state whatever block they
name (realdata/tron/FACTS.md), so `totalSupply()` cannot be read at the finalized anchor. The
check reads in one JSON-RPC batch sent to one endpoint: the latest header, the calls, the latest
header again. The calls saw block B when both headers are B (same hash): the node did not move
during the batch. They are then compared with what the index holds at B, when the index holds
B itself (its stored hash at that height is B's). Otherwise the round is skipped, with a reason,
never counted as a mismatch:

- `head_moved`: the two headers differ (a new block, or a reorg, between them);
- `not_indexed`: the index does not hold that height in its unfinalized window yet (behind the
  node, or the node behind a finalized height the window no longer keeps);
- `other_fork`: the index holds another block at that height (a reorg the follower has not
  reconciled yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from indexer.model import BlockRef

SkipReason = Literal["head_moved", "not_indexed", "other_fork"]
SKIP_REASONS: tuple[SkipReason, ...] = ("head_moved", "not_indexed", "other_fork")


@dataclass(frozen=True, slots=True)
class LatestReads:
    """One bracketed batch: the latest header before and after, the call results between."""

    before: BlockRef | None
    after: BlockRef | None
    results: Sequence[Any]
    endpoint: str


@dataclass(frozen=True, slots=True)
class Compare:
    """The reads saw `block`, which the index holds: compare."""

    block: BlockRef


@dataclass(frozen=True, slots=True)
class Skip:
    reason: SkipReason
    detail: str


Decision = Compare | Skip


def decide(before: BlockRef | None, after: BlockRef | None, stored_hash: str | None) -> Decision:
    """Whether reads bracketed by `before` and `after` can be compared with the index, whose
    block at `before.number` has `stored_hash` (None: the index does not hold that height)."""
    if before is None or after is None:
        return Skip("head_moved", "the node returned no latest block")
    if before.hash != after.hash:
        return Skip(
            "head_moved",
            f"latest block moved during the reads: {before.number} {before.hash[:18]}"
            f" -> {after.number} {after.hash[:18]}",
        )
    if stored_hash is None:
        return Skip("not_indexed", f"the node read at block {before.number}, which the index does not hold")
    if stored_hash != before.hash:
        return Skip(
            "other_fork",
            f"block {before.number}: the node has {before.hash[:18]}, the index {stored_hash[:18]}",
        )
    return Compare(before)
