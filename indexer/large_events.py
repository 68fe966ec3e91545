"""Large mint/burn classification (issue #17 item 1), sans-I/O.

The threshold is `large_event_tokens`: a decimal string of whole tokens, scaled exactly by the
chain's decimals (no float). An event is large when its raw amount is at least the scaled value.
"""

from collections import Counter
from collections.abc import Iterable

from indexer.model import EventKind, TokenEvent
from indexer.units import tokens_to_raw


def threshold_raw(tokens: str, decimals: int) -> int:
    """Scale a decimal token amount ("1000000", "2.5") to base units exactly; reject what is not
    exact or not positive (`units.tokens_to_raw`: no Decimal context, so no rounding at 28 digits)."""
    try:
        raw = tokens_to_raw(tokens, decimals)
    except ValueError as exc:
        raise ValueError(f"large_event_tokens: {exc}") from None
    if raw <= 0:
        raise ValueError(f"large_event_tokens: must be a positive number, got {tokens!r}")
    return raw


def large_counts(events: Iterable[TokenEvent], threshold: int) -> Counter[EventKind]:
    """Count mints and burns with amount >= threshold (base units), by kind."""
    counts: Counter[EventKind] = Counter()
    for ev in events:
        if ev.kind is EventKind.TRANSFER:
            continue
        if ev.amount >= threshold:
            counts[ev.kind] += 1
    return counts
