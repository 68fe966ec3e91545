"""The audits' pure arithmetic: the hourly budget holds in every window, the sample order, the
rotation through the largest holders, the range digest."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from indexer.audit import (
    HOUR,
    HourlyBudget,
    event_key,
    events_digest,
    next_offset,
    plan_sample,
    random_key,
    round_size,
)


def test_round_size_spreads_the_hour() -> None:
    assert round_size(360, 60) == 6
    assert round_size(1, 60) == 1  # something every round until the hour's budget is spent
    assert round_size(0, 60) == 0
    assert round_size(100, 7) == 1


def test_budget_never_grants_more_than_the_hour_allows() -> None:
    b = HourlyBudget(per_hour=10, per_round=4)
    assert b.take(0.0, 100) == 4
    assert b.take(1.0, 100) == 4
    assert b.take(2.0, 100) == 2  # 10 in this hour
    assert b.take(3599.0, 5) == 0
    assert b.take(HOUR + 0.5, 5) == 4  # the first grant left the window
    assert b.used(HOUR + 0.5) == 10


@given(
    per_hour=st.integers(0, 50),
    per_round=st.integers(0, 20),
    steps=st.lists(st.tuples(st.floats(0, 900), st.integers(0, 30)), max_size=60),
)
def test_budget_holds_in_every_sliding_hour(
    per_hour: int, per_round: int, steps: list[tuple[float, int]]
) -> None:
    b = HourlyBudget(per_hour, per_round)
    now = 0.0
    grants: list[tuple[float, int]] = []
    for dt, want in steps:
        now += dt
        g = b.take(now, want)
        assert 0 <= g <= min(want, per_round)
        grants.append((now, g))
    for t, _ in grants:
        window = sum(g for u, g in grants if t - HOUR < u <= t)
        assert window <= per_hour


def test_sample_rechecks_first_then_largest_and_random_half_and_half() -> None:
    top = ["t1", "t2", "t3", "t4"]
    rnd = ["r1", "r2", "t1", "r3"]
    assert plan_sample([], top, rnd, 4) == ["t1", "t2", "r1", "r2"]
    assert plan_sample(["bad"], top, rnd, 4) == ["bad", "t1", "t2", "r1"]
    assert plan_sample(["b1", "b2", "b3"], top, rnd, 2) == ["b1", "b2"]
    # Too few random holders: the largest fill in; no address twice.
    assert plan_sample([], top, ["t1"], 4) == ["t1", "t2", "t3", "t4"]
    assert plan_sample([], [], [], 3) == []


def test_rotation_through_the_largest_holders_wraps() -> None:
    assert next_offset(0, 3, available=10, depth=1000) == 3
    assert next_offset(9, 3, available=10, depth=1000) == 0  # ran out of holders
    assert next_offset(998, 3, available=10**6, depth=1000) == 0  # the configured depth
    assert next_offset(5, 0, available=0, depth=1000) == 0


def test_random_keys_live_in_the_address_space() -> None:
    rng = random.Random(1)
    k = random_key("evm", rng)
    assert k.startswith("0x") and len(k) == 10
    assert all(c not in "0OIl" for c in random_key("solana", rng))


def test_digest_is_order_free_and_sees_every_field() -> None:
    a = event_key(1, "0xb", "0xt", 0, "mint", None, "0xa", 5)
    b = event_key(2, "0xc", "0xu", 3, "transfer", "0xa", "0xd", 2)
    assert events_digest([a, b]) == events_digest([b, a])
    assert events_digest([a]) != events_digest([a, b])  # a dropped log
    forged = event_key(2, "0xc", "0xu", 3, "transfer", "0xa", "0xe", 2)
    assert events_digest([a, b]) != events_digest([a, forged])
    # Store rows (Decimal amounts, enum kinds) and fresh reads agree.
    from decimal import Decimal

    assert event_key(1, "0xb", "0xt", 0, "mint", None, "0xa", Decimal(5)) == a
