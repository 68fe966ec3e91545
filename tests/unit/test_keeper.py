"""The database keeper's pure core: one transition per outage edge, the limit once, backoff."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indexer.store.keeper import Health, Transition, observe, retry_delay
from tests.unit.test_fuzz_inputs import FUZZ


def test_an_outage_is_one_down_one_limit_one_up() -> None:
    h = Health()
    seen = []
    for now, ok in [(0, True), (1, False), (2, False), (6, False), (7, False), (8, True), (9, True)]:
        h, t = observe(h, ok, now, limit=5)
        seen.append(t)
    assert seen == [None, Transition.DOWN, None, Transition.LIMIT, None, Transition.UP, None]
    assert h == Health()


def test_recovery_before_the_limit_never_passes_it() -> None:
    h, t = observe(Health(), False, 10, limit=5)
    assert t == Transition.DOWN and h.down_since == 10 and not h.limit_passed
    h, t = observe(h, False, 14.9, limit=5)
    assert t is None and not h.limit_passed
    h, t = observe(h, True, 15, limit=5)
    assert t == Transition.UP and h == Health()


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 5), st.booleans()), max_size=60), st.floats(0.1, 20))
def test_transitions_alternate_and_limit_only_inside_an_outage(
    steps: list[tuple[float, bool]], limit: float
) -> None:
    h, now, down = Health(), 0.0, False
    for dt, ok in steps:
        now += dt
        h, t = observe(h, ok, now, limit)
        if t == Transition.DOWN:
            assert not down
            down = True
        elif t == Transition.UP:
            assert down
            down = False
        elif t == Transition.LIMIT:
            assert down and h.down_since is not None and now - h.down_since >= limit
        assert (h.down_since is not None) == down
        assert not h.limit_passed or down


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 0.5, 10) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
