"""Typed failures of a venue read. The poller turns any of them into stale state (venue_up 0)."""

from __future__ import annotations

from typing import Literal

from indexer.errors import IndexerError

VenueErrorKind = Literal[
    "http",  # non-2xx reply
    "timeout",  # no reply within the venue's timeout
    "connection",  # transport failure
    "malformed",  # reply without the promised shape (missing fields, bad numbers)
    "exchange",  # the exchange or node answered with an error payload
    "empty",  # no bids or no asks: no price
    "crossed",  # best bid >= best ask: the book is inconsistent or stale
    "rpc",  # a JSON-RPC call failed
    "pool",  # the pool is not usable (does not hold the token, not initialized, no reserves)
    "quote",  # the USD value of the quote asset is unknown (quote venue down)
]


class VenueError(IndexerError):
    """A venue could not be read or its data cannot be trusted; `kind` says why."""

    def __init__(self, kind: VenueErrorKind, message: str) -> None:
        self.kind: VenueErrorKind = kind
        super().__init__(f"{kind}: {message}")
