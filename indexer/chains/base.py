"""The contract every chain source implements; the follower (indexer.sync) only sees this."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from indexer.model import BlockRef, Family, RangeData


@runtime_checkable
class ChainSource(Protocol):
    """Reads one chain. All heights are block numbers (EVM) or slots (Solana).

    Every method raises `indexer.errors.RpcError` (or a subclass) on failure, never returns
    partial or guessed data. Implementations own retries for transient transport faults.
    """

    @property
    def name(self) -> str:
        """The configured chain name (label value everywhere)."""
        ...

    @property
    def decimals(self) -> int: ...

    async def head(self) -> int:
        """Latest height the chain reports (EVM `latest`, Solana `processed`/`confirmed`)."""
        ...

    async def finalized(self, head: int) -> int:
        """The finalized height by the chain's configured rule (never above `head`)."""
        ...

    async def tips(self) -> tuple[int, int]:
        """(head, finalized(head)) in as few round trips as the chain allows: what each sync
        step reads before anything else."""
        ...

    async def headers(self, numbers: Sequence[int]) -> list[BlockRef | None]:
        """Canonical headers at these heights, in order; None where no block exists (skipped
        Solana slot, or above the head)."""
        ...

    async def fetch_range(
        self, start: int, end: int, *, with_headers: bool, families: Iterable[Family] | None = None
    ) -> RangeData:
        """Every record of every event family in [start, end] (inclusive) and the header of the
        range's last existing block; with `families`, only the records of those families (a
        family filled in below the cursor, see `indexer.sync.fill`). With `with_headers`, also
        every existing block's header in the range, and every record's block hash is checked
        against them (a mismatch raises DataConsistencyError: the chain moved between calls).
        `RangeData.follows` names the block the range continues (the follower checks it links to
        its cursor)."""
        ...

    def endpoints(self) -> list[str]:
        """The endpoint labels (metric label `endpoint`), in configured order."""
        ...

    def throttled(self) -> bool:
        """The provider has rate-limited this source: requests are scarce (fewer, fuller ones)."""
        ...

    def via(self, label: str) -> ChainSource:
        """This source reading through one endpoint only (no failover, no cross-checks): what
        that endpoint says, for quorum checks (`indexer.chains.witness`) and audits."""
        ...

    def penalize(self, label: str, reason: str) -> None:
        """Count a reply of `label` that a quorum contradicts as that endpoint's fault."""
        ...

    async def total_supply(self, block: BlockRef) -> int:
        """The token's own total supply at that block, in base units."""
        ...

    async def balance_snapshot(self, address: str, block: BlockRef) -> tuple[int, int] | None:
        """(height, balance in base units) of `address` as the chain reports it: at `block` where
        the chain serves historical reads (EVM), else at the configured commitment's current
        height (Solana). None when the chain knows no such account."""
        ...

    async def close(self) -> None: ...
