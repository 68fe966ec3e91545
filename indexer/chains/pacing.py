"""PURE: an endpoint's request pace, learned from its rate limits.

A provider that answers 429 (or Tron's HTTP-200 rate-limit body) told us the rate we sent was too
high. Honouring Retry-After alone stalls every request for a second at each 429 and then bursts
again; a `Pacer` also spaces requests: at a limit it sets its rate to `BACKOFF` times the rate
sent over the `WINDOW` before it (never higher than the rate it had), then raises it by `RECOVERY`
per `RECOVERY_EVERY` seconds without another limit, so a limit that was lifted is found again.
Until the first limit nothing is paced, unless the operator stated the endpoint's rate
(`ceiling`, the chain's `max_requests_per_second`): then requests are paced at it from the first
one, and the rate never rises above it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BACKOFF = 0.9
WINDOW = 3.0  # seconds of sent requests the rate that met a limit is measured over
RECOVERY = 0.02
RECOVERY_EVERY = 10.0
MIN_RATE = 0.5  # requests per second


@dataclass
class Pacer:
    ceiling: float | None = None  # the stated rate: paced from the start, never exceeded
    rate: float | None = None  # requests per second; None: no limit seen
    _next: float = 0.0  # the earliest time of the next request
    _since: float = 0.0  # when the rate was last set or raised
    _sent: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.ceiling is not None:
            if not self.ceiling > 0:
                raise ValueError("ceiling must be > 0 requests per second")
            self.rate = self.ceiling if self.rate is None else min(self.rate, self.ceiling)

    def reserve(self, now: float) -> float:
        """Seconds to wait before sending one request (its slot is reserved)."""
        self._sent.append(now)
        while self._sent and self._sent[0] < now - WINDOW:
            self._sent.popleft()
        if self.rate is None:
            return 0.0
        if now - self._since >= RECOVERY_EVERY:
            self.rate *= 1 + RECOVERY
            if self.ceiling is not None:
                self.rate = min(self.rate, self.ceiling)
            self._since = now
        at = max(now, self._next)
        self._next = at + 1.0 / self.rate
        return at - now

    def limited(self, now: float) -> float:
        """The endpoint refused a request for its rate: returns the new rate."""
        recent = [t for t in self._sent if t >= now - WINDOW]
        span = max(1.0, now - recent[0]) if recent else WINDOW
        measured = BACKOFF * len(recent) / span
        self.rate = max(MIN_RATE, measured if self.rate is None else min(measured, self.rate))
        self._since = now
        return self.rate
