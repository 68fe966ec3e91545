import itertools

from hypothesis import given
from hypothesis import strategies as st

from indexer.chains.pacing import BACKOFF, MIN_RATE, RECOVERY, RECOVERY_EVERY, Pacer


def test_unpaced_until_the_first_limit() -> None:
    p = Pacer()
    assert [p.reserve(t / 100) for t in range(50)] == [0.0] * 50


def test_a_limit_paces_below_the_rate_that_met_it() -> None:
    p = Pacer()
    for i in range(30):  # 10 requests a second for 3 s
        p.reserve(i / 10)
    rate = p.limited(3.0)
    assert abs(rate - BACKOFF * 10) < 0.5
    waits = [p.reserve(3.0) for _ in range(5)]  # a burst is spread out at the new rate
    assert waits[0] == 0.0
    assert all(abs((b - a) - 1 / rate) < 1e-9 for a, b in itertools.pairwise(waits))


def test_the_rate_recovers_slowly_without_limits() -> None:
    p = Pacer()
    p.reserve(0.0)
    first = p.limited(0.0)
    p.reserve(RECOVERY_EVERY + 0.1)
    assert p.rate is not None and abs(p.rate - first * (1 + RECOVERY)) < 1e-9


def test_a_second_limit_never_raises_the_rate() -> None:
    p = Pacer()
    for i in range(10):
        p.reserve(i / 10)
    first = p.limited(1.0)
    for i in range(100):  # a burst measured above the current rate
        p.reserve(1.0 + i / 1000)
    assert p.limited(1.1) <= first


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_rate_is_positive_and_waits_non_negative(times: list[float]) -> None:
    p = Pacer()
    now = 0.0
    for t in sorted(times):
        now = t
        assert p.reserve(now) >= 0.0
    assert p.limited(now) >= MIN_RATE
    assert p.reserve(now) >= 0.0


def test_a_stated_rate_paces_from_the_first_request_and_is_never_exceeded() -> None:
    p = Pacer(ceiling=4.0)
    waits = [p.reserve(0.0) for _ in range(5)]
    assert waits == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert p.limited(1.0) <= 4.0  # a limit below the stated rate still lowers it
    lowered = p.rate
    assert lowered is not None
    for k in range(1, 200):  # recovery creeps up again, up to the stated rate and no further
        p.reserve(1.0 + k * RECOVERY_EVERY)
    assert p.rate == 4.0


def test_a_stated_rate_must_be_positive() -> None:
    import pytest

    with pytest.raises(ValueError, match="ceiling"):
        Pacer(ceiling=0.0)
