"""PURE: attested reserves against the circulating supply, at the attestation's `as_of` and now
(issue #16 item 3, README "Reserves at the attestation's date").

- **At as_of** (`usd1_backing_ratio_at_as_of`, the audited figure): reserves / the global
  circulating supply at `as_of`, from the attestation package (`indexer.supply_at`): per chain the
  last block at or before `as_of`, its circulating supply (bridge locks not circulating, so each
  token counts once: `indexer.bridges`), summed in the largest precision among the chains.
  Unavailable (None, exported as NaN, `reason` in the API) when `as_of` is above what is final on
  a chain, before a chain's first indexed block, or on a chain whose transfer history does not
  reach its start block: never a figure over a partial set of chains.
- **Now** (`usd1_backing_coverage`; `usd1_backing_ratio` is the same figure under its old name):
  reserves / the global circulating supply at the finalized blocks
  (`usd1_supply_circulating_total{finality="finalized"}`).
- **Drift** (`usd1_supply_drift_since_as_of_tokens`): circulating now - circulating at as_of
  (positive: issued since the attestation), exact in base units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from indexer.supply_at import ChainAt


@dataclass(frozen=True, slots=True)
class TotalSupply:
    """A supply over chains in exact base units of `decimals`."""

    raw: int
    decimals: int


@dataclass(frozen=True, slots=True)
class BlockAt:
    number: int
    hash: str
    time: datetime


@dataclass(frozen=True, slots=True)
class AtAsOf:
    """The global circulating supply at `as_of` (None with `reason` when it cannot be known)."""

    as_of: datetime
    circulating: TotalSupply | None
    blocks: Mapping[str, BlockAt] = field(default_factory=dict)  # per chain, the block used
    exact: bool = False  # every chain's frozen balances derived (README "Supply at a time")
    reason: str | None = None


def unavailable(as_of: datetime, reason: str) -> AtAsOf:
    return AtAsOf(as_of, None, reason=reason)


def at_as_of(as_of: datetime, chains: Sequence[ChainAt]) -> AtAsOf:
    """The figure at `as_of` from every configured chain's position there (`supply_at_queries`,
    which has already refused an `as_of` above what is final)."""
    if not chains:
        return unavailable(as_of, "no chain is configured")
    blocks: dict[str, BlockAt] = {}
    dp = max(c.decimals for c in chains)
    total = 0
    for c in chains:
        if c.finalized_block is None:
            return unavailable(as_of, f"chain {c.chain} has not been indexed yet")
        if c.block is None or c.classes is None:
            return unavailable(
                as_of,
                f"as_of is before the index of chain {c.chain}: no indexed block of it is at or"
                f" before {as_of.isoformat()} (start block {c.start})",
            )
        if not c.complete:
            return unavailable(
                as_of,
                f"the transfer history of chain {c.chain} does not reach its start block {c.start}"
                f" (it starts at {c.transfers_from}): its supply at as_of is unknown",
            )
        blocks[c.chain] = BlockAt(c.block.number, c.block.hash, c.block.time)
        total += c.classes.circulating * 10 ** (dp - c.decimals)
    return AtAsOf(as_of, TotalSupply(total, dp), blocks, exact=all(c.circulating_exact for c in chains))


def ratio(reserves_usd: Decimal, supply: TotalSupply | None) -> Fraction | None:
    """reserves / (raw / 10^decimals), exact; None without a supply or when it is not positive."""
    if supply is None or supply.raw <= 0:
        return None
    return Fraction(reserves_usd) * Fraction(10**supply.decimals, supply.raw)


def drift(now: TotalSupply | None, then: TotalSupply | None) -> TotalSupply | None:
    """now - then in the larger precision of the two; None when either is unknown."""
    if now is None or then is None:
        return None
    dp = max(now.decimals, then.decimals)
    return TotalSupply(now.raw * 10 ** (dp - now.decimals) - then.raw * 10 ** (dp - then.decimals), dp)


@dataclass(frozen=True, slots=True)
class Backing:
    """Reserves against circulating supply at as_of and now."""

    reserves_usd: Decimal
    at: AtAsOf | None  # None: not computed yet for this attestation
    now: TotalSupply | None  # finalized global circulating (None: not every chain indexed)

    @property
    def ratio_at_as_of(self) -> Fraction | None:
        return None if self.at is None else ratio(self.reserves_usd, self.at.circulating)

    @property
    def coverage(self) -> Fraction | None:
        return ratio(self.reserves_usd, self.now)

    @property
    def drift(self) -> TotalSupply | None:
        return drift(self.now, None if self.at is None else self.at.circulating)
