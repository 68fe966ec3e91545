import pytest

from indexer.large_events import large_counts, threshold_raw
from indexer.model import EventKind, TokenEvent


def _ev(kind: EventKind, amount: int, i: int) -> TokenEvent:
    return TokenEvent("eth", 1, "0xb", "0xt", i, kind, None, None, amount)


def test_threshold_scales_exactly() -> None:
    assert threshold_raw("1000000", 18) == 10**24
    assert threshold_raw("2.5", 6) == 2_500_000


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.0000001", "NaN", "Infinity"])
def test_threshold_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="large_event_tokens"):
        threshold_raw(bad, 6)


def test_counts_mints_and_burns_at_or_above() -> None:
    t = 1000
    evs = [
        _ev(EventKind.MINT, 1000, 0),
        _ev(EventKind.MINT, 999, 1),
        _ev(EventKind.BURN, 5000, 2),
        _ev(EventKind.TRANSFER, 10**9, 3),
    ]
    c = large_counts(evs, t)
    assert c == {EventKind.MINT: 1, EventKind.BURN: 1}
