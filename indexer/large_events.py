"""Large mint/burn classification (issue #17 item 1), sans-I/O.

The threshold is `large_event_tokens`: a decimal string of whole tokens, scaled exactly by the
chain's decimals (no float). An event is large when its raw amount is at least the scaled value.
"""

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from indexer.model import EventKind, TokenEvent


def threshold_raw(tokens: str, decimals: int) -> int:
    """Scale a decimal token amount ("1000000", "2.5") to base units; reject what is not exact."""
    try:
        value = Decimal(tokens)
    except InvalidOperation:
        raise ValueError(f"large_event_tokens: not a decimal number: {tokens!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"large_event_tokens: must be a positive number, got {tokens!r}")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"large_event_tokens: {tokens!r} has more than {decimals} decimal places")
    return int(scaled)


def large_counts(events: Iterable[TokenEvent], threshold: int) -> Counter[EventKind]:
    """Count mints and burns with amount >= threshold (base units), by kind."""
    counts: Counter[EventKind] = Counter()
    for ev in events:
        if ev.kind is EventKind.TRANSFER:
            continue
        if ev.amount >= threshold:
            counts[ev.kind] += 1
    return counts
