"""Depeg episodes (pure): from successive per-venue peg deviations to open/closed episodes.

An episode of a scope opens at the first observation whose |deviation| is at or above
`threshold_bps`, follows the largest |deviation| seen (its signed value `peak_bps` and when,
`peak_at`), and closes at the first observation whose |deviation| is below
`threshold_bps - hysteresis_bps` (`ended_at`: that observation's time). A venue that stops
reporting (down) leaves its episode open: nothing says it recovered.

Scopes: one per venue (`venue`), and `aggregate`, which follows the median deviation of the venues
whose latest read is live (an observation of one venue re-evaluates the aggregate; a venue going
down drops out of the median). Deviations are exact `Decimal` bps, never floats.

`DepegTracker.observe` / `venue_down` return the episodes that changed (opened, new peak, closed),
which the caller persists (upsert on (scope, venue, started_at)). `DepegTracker.resume` starts
from the open episodes the store holds, so a restart continues them instead of opening new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Literal

Scope = Literal["venue", "aggregate"]
SCOPES: tuple[Scope, ...] = ("venue", "aggregate")


@dataclass(frozen=True, slots=True)
class Episode:
    """One depeg episode. `venue` is None for the aggregate scope; `ended_at` None while open."""

    scope: Scope
    venue: str | None
    started_at: datetime
    start_bps: Decimal
    peak_bps: Decimal  # signed: below the peg is negative
    peak_at: datetime
    ended_at: datetime | None = None
    end_bps: Decimal | None = None  # the deviation that closed it
    last_bps: Decimal | None = None  # the latest deviation seen while open
    last_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def key(self) -> tuple[Scope, str | None]:
        return (self.scope, self.venue)

    def duration_seconds(self, now: datetime | None = None) -> float | None:
        """Start to end; for an open episode, start to `now` (None without `now`)."""
        end = self.ended_at if self.ended_at is not None else now
        return None if end is None else (end - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Thresholds:
    threshold_bps: Decimal
    hysteresis_bps: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not Decimal(0) < self.threshold_bps <= Decimal(10_000):
            raise ValueError(f"depeg threshold_bps must be in (0, 10000], got {self.threshold_bps}")
        if not Decimal(0) <= self.hysteresis_bps < self.threshold_bps:
            raise ValueError(
                f"depeg hysteresis_bps must be >= 0 and below threshold_bps, got {self.hysteresis_bps}"
            )

    def opens(self, bps: Decimal) -> bool:
        return abs(bps) >= self.threshold_bps

    def recovered(self, bps: Decimal) -> bool:
        return abs(bps) < self.threshold_bps - self.hysteresis_bps


def exact_median(values: list[Decimal]) -> Decimal:
    """The median, exactly (the mean of the two middle values of an even count has at most one
    more digit than they do, so it is computed with room for every digit)."""
    ordered = sorted(values)
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    a, b = ordered[n // 2 - 1], ordered[n // 2]
    with localcontext() as ctx:
        ctx.prec = max(len(a.as_tuple().digits), len(b.as_tuple().digits)) + 40
        return (a + b) / 2


def step(
    ep: Episode | None, scope: Scope, venue: str | None, at: datetime, bps: Decimal, t: Thresholds
) -> Episode | None:
    """The episode of one scope after observing `bps` at `at`: None when there is none open and
    the point is within the threshold; an open or just-closed episode otherwise."""
    if ep is None:
        if not t.opens(bps):
            return None
        return Episode(scope, venue, at, bps, bps, at, last_bps=bps, last_at=at)
    if at < ep.started_at:
        return ep  # an observation older than the episode (clock step): ignored
    if t.recovered(bps):
        return replace(ep, ended_at=at, end_bps=bps, last_bps=bps, last_at=at)
    if abs(bps) > abs(ep.peak_bps):
        return replace(ep, peak_bps=bps, peak_at=at, last_bps=bps, last_at=at)
    return replace(ep, last_bps=bps, last_at=at)


def _changed(before: Episode | None, after: Episode | None) -> bool:
    """Worth persisting: opened, closed, or a new peak (not a mere new `last`)."""
    if after is None:
        return False
    if before is None:
        return True
    return (after.ended_at, after.peak_bps, after.peak_at) != (
        before.ended_at,
        before.peak_bps,
        before.peak_at,
    )


class DepegTracker:
    """Episodes per venue and in aggregate; see the module docstring."""

    def __init__(self, thresholds: Thresholds, open_episodes: Iterable[Episode] = ()) -> None:
        self._t = thresholds
        self._open: dict[tuple[Scope, str | None], Episode] = {}
        self._live: dict[str, Decimal] = {}  # venue -> latest live deviation
        for ep in open_episodes:
            self.resume(ep)

    def resume(self, ep: Episode) -> None:
        """Continue an episode the store holds open (at start-up)."""
        if not ep.open:
            raise ValueError("only an open episode can be resumed")
        if ep.key in self._open:
            raise ValueError(f"two open episodes for {ep.key}")
        self._open[ep.key] = ep

    @property
    def open_episodes(self) -> Mapping[tuple[Scope, str | None], Episode]:
        return dict(self._open)

    def aggregate_bps(self) -> Decimal | None:
        """The median deviation over the venues currently live (None: none is)."""
        if not self._live:
            return None
        return exact_median(list(self._live.values()))

    def observe(self, venue: str, at: datetime, bps: Decimal) -> list[Episode]:
        """A live reading of `venue`; returns the episodes that changed (venue first, then aggregate)."""
        if not isinstance(bps, Decimal):
            raise TypeError(f"deviation must be an exact Decimal, got {type(bps).__name__}")
        self._live[venue] = bps
        out = self._apply("venue", venue, at, bps)
        agg = self.aggregate_bps()
        if agg is not None:
            out += self._apply("aggregate", None, at, agg)
        return out

    def venue_down(self, venue: str, at: datetime) -> list[Episode]:
        """`venue` failed a read: its own episode stays open; it leaves the aggregate median."""
        if self._live.pop(venue, None) is None:
            return []
        agg = self.aggregate_bps()
        return [] if agg is None else self._apply("aggregate", None, at, agg)

    def _apply(self, scope: Scope, venue: str | None, at: datetime, bps: Decimal) -> list[Episode]:
        key = (scope, venue)
        before = self._open.get(key)
        after = step(before, scope, venue, at, bps, self._t)
        if after is None or not after.open:
            self._open.pop(key, None)
        else:
            self._open[key] = after
        return [after] if after is not None and _changed(before, after) else []
