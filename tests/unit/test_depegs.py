"""The pure depeg episode tracker (indexer/depegs.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.depegs import DepegTracker, Episode, Thresholds, exact_median

T0 = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
D = Decimal


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


def test_wick_opens_peaks_and_closes_with_duration() -> None:
    # USD1's February 2026 wick shape: ~54 bps for a few minutes on one DEX.
    tr = DepegTracker(Thresholds(D(50), D(10)))
    assert tr.observe("dex", at(0), D("-12.5")) == []
    # The only venue is also the whole market: its episode and the aggregate one open together.
    opened, agg = tr.observe("dex", at(60), D("-51.2"))
    assert (agg.scope, agg.venue, agg.peak_bps) == ("aggregate", None, D("-51.2"))
    assert (opened.scope, opened.venue, opened.started_at, opened.peak_bps) == (
        "venue",
        "dex",
        at(60),
        D("-51.2"),
    )
    assert opened.open
    peak, _ = tr.observe("dex", at(120), D("-54.03"))
    assert (peak.peak_bps, peak.peak_at, peak.started_at) == (D("-54.03"), at(120), at(60))
    assert tr.observe("dex", at(180), D("-52")) == []  # no new peak: nothing to persist
    # Hysteresis: 45 bps is below the threshold but not below 50 - 10: still open.
    assert tr.observe("dex", at(240), D("-45")) == []
    assert tr.open_episodes[("venue", "dex")].open
    closed, agg_closed = tr.observe("dex", at(300), D("-39.99"))
    assert agg_closed.ended_at == at(300)
    assert closed.ended_at == at(300) and closed.end_bps == D("-39.99")
    assert closed.peak_bps == D("-54.03") and closed.duration_seconds() == 240.0
    assert ("venue", "dex") not in tr.open_episodes


def test_exactly_at_threshold_opens_and_sign_flip_stays_one_episode() -> None:
    tr = DepegTracker(Thresholds(D(50)))
    ep, _ = tr.observe("a", at(0), D(50))
    ep2, _ = tr.observe("a", at(1), D(-80))  # across the peg in one step: still off, a new peak
    assert ep2.started_at == ep.started_at and ep2.peak_bps == D(-80)
    closed, _ = tr.observe("a", at(2), D("49.9"))  # no hysteresis: below the threshold closes
    assert closed.ended_at == at(2)


def test_aggregate_follows_the_median_of_live_venues() -> None:
    tr = DepegTracker(Thresholds(D(50), D(0)))
    # One venue off, two at the peg: only that venue's episode; the median stays near 0.
    tr.observe("a", at(0), D(1))
    tr.observe("b", at(0), D(2))
    changed = tr.observe("c", at(0), D(-300))
    assert [e.scope for e in changed] == ["venue"]
    # A second venue agrees: the median of (1, -300, -200) is -200.
    changed = tr.observe("a", at(10), D(-200))
    assert [(e.scope, e.venue, e.peak_bps) for e in changed] == [
        ("venue", "a", D(-200)),
        ("aggregate", None, D(-200)),
    ]
    # Venue b goes down: the median of (-200, -300) is -250, a new aggregate peak.
    [agg] = tr.venue_down("b", at(20))
    assert agg.scope == "aggregate" and agg.peak_bps == D(-250) and agg.peak_at == at(20)
    # A down venue's own episode stays open.
    tr.venue_down("c", at(30))
    assert ("venue", "c") in tr.open_episodes
    assert tr.aggregate_bps() == D(-200)


def test_resume_continues_the_open_episode() -> None:
    ep = Episode("venue", "a", at(0), D(60), D(70), at(5))
    tr = DepegTracker(Thresholds(D(50)), [ep])
    upd, agg = tr.observe("a", at(100), D(90))
    assert agg.scope == "aggregate" and agg.started_at == at(100)
    assert upd.started_at == at(0) and upd.peak_bps == D(90)
    with pytest.raises(ValueError, match="two open episodes"):
        tr.resume(Episode("venue", "a", at(1), D(60), D(60), at(1)))
    with pytest.raises(ValueError, match="only an open episode"):
        tr.resume(Episode("venue", "b", at(1), D(60), D(60), at(1), ended_at=at(2)))


def test_floats_are_refused_and_bad_thresholds_are_clear() -> None:
    tr = DepegTracker(Thresholds(D(50)))
    with pytest.raises(TypeError, match="exact Decimal"):
        tr.observe("a", at(0), 60.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold_bps must be in"):
        Thresholds(D(0))
    with pytest.raises(ValueError, match="hysteresis_bps must be"):
        Thresholds(D(50), D(50))


bps = st.decimals(min_value=-500, max_value=500, places=2, allow_nan=False, allow_infinity=False)
events = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), bps), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(1, 200), st.integers(0, 100))
def test_episodes_never_overlap_and_peak_is_at_least_start(
    evs: list[tuple[str, bool, Decimal]], threshold: int, hysteresis: int
) -> None:
    t = Thresholds(D(threshold), D(min(hysteresis, threshold - 1)))
    tr = DepegTracker(t)
    latest: dict[tuple[str, str | None, datetime], Episode] = {}
    for i, (venue, up, value) in enumerate(evs):
        now = at(i)
        changed = tr.observe(venue, now, value) if up else tr.venue_down(venue, now)
        for e in changed:
            latest[(e.scope, e.venue, e.started_at)] = e
    by_key: dict[tuple[str, str | None], list[Episode]] = {}
    for e in latest.values():
        assert abs(e.peak_bps) >= abs(e.start_bps) >= t.threshold_bps
        assert e.started_at <= e.peak_at
        if e.ended_at is not None:
            assert e.peak_at < e.ended_at and abs(e.end_bps or 0) < t.threshold_bps
        by_key.setdefault(e.key, []).append(e)
    for eps in by_key.values():
        eps.sort(key=lambda e: e.started_at)
        assert sum(e.open for e in eps) <= 1
        for prev, nxt in itertools.pairwise(eps):
            assert prev.ended_at is not None and prev.ended_at <= nxt.started_at
    for key, ep in tr.open_episodes.items():
        assert latest[(*key, ep.started_at)].open


def test_exact_median_keeps_every_digit() -> None:
    a = D("-54.0312345678901234567890123456789012345678")
    b = D("-54.0312345678901234567890123456789012345679")
    assert exact_median([b, a]) == D("-54.03123456789012345678901234567890123456785")
    assert exact_median([D(3), D(-1), D(2)]) == D(2)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(0, 80), st.integers(1, 200), st.integers(0, 100))
def test_a_restart_continues_what_was_stored(
    evs: list[tuple[str, bool, Decimal]], cut: int, threshold: int, hysteresis: int
) -> None:
    """Per venue, stopping after `cut` readings and resuming from the stored (last changed)
    versions of the open episodes gives the same episodes as never stopping."""
    t = Thresholds(D(threshold), D(min(hysteresis, threshold - 1)))

    def feed(tr: DepegTracker, part: list[tuple[int, tuple[str, bool, Decimal]]]) -> dict[Any, Episode]:
        out = {}
        for i, (venue, up, value) in part:
            for e in tr.observe(venue, at(i), value) if up else tr.venue_down(venue, at(i)):
                out[(e.scope, e.venue, e.started_at)] = e
        return out

    numbered = list(enumerate(evs))
    whole = feed(DepegTracker(t), numbered)
    first = DepegTracker(t)
    stored = feed(first, numbered[:cut])
    resumed = [e for e in stored.values() if e.open and e.scope == "venue"]
    stored.update(feed(DepegTracker(t, resumed), numbered[cut:]))

    def venue_only(d: dict[Any, Episode]) -> dict[Any, tuple[Any, ...]]:
        return {k: (e.peak_bps, e.peak_at, e.ended_at) for k, e in d.items() if e.scope == "venue"}

    assert venue_only(stored) == venue_only(whole)
