"""Typed, loud failures. Each names what is wrong; none is ever swallowed silently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.chains.range_hints import RangeHint


class IndexerError(Exception):
    """Base class of the indexer's own errors."""


class ConfigError(IndexerError):
    """The configuration is invalid; `problems` holds `path.to.key: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DataConsistencyError(IndexerError):
    """Data from a source or the store contradicts an invariant (e.g. a log whose block hash
    does not match the canonical header fetched for that height)."""


class FinalityViolation(IndexerError):
    """A reorg reached at or below the finalized height: the chain halts, nothing is repaired.

    `block` is the final height whose block changed, `stored` the hash the index (or the source)
    held there and `new` the one the chain gives now (None: no block there / not known);
    `votes` what each endpoint said (endpoint -> hash, None for no block)."""

    def __init__(
        self,
        chain: str,
        finalized: int,
        fork_point: int,
        detail: str = "",
        *,
        block: int | None = None,
        stored: str | None = None,
        new: str | None = None,
        votes: Mapping[str, str | None] | None = None,
    ) -> None:
        self.chain = chain
        self.finalized = finalized
        self.fork_point = fork_point
        self.detail = detail
        self.block = fork_point if block is None else block
        self.stored = stored
        self.new = new
        self.votes = dict(votes or {})
        msg = f"{chain}: reorg reaches block {fork_point} at or below finalized height {finalized}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class RpcError(IndexerError):
    """An RPC call failed (transport, timeout, error reply, malformed reply)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        range_hint: RangeHint | None = None,
        code: int | None = None,
    ) -> None:
        self.retryable = retryable
        self.range_hint = range_hint  # the provider refused the range as too large (and what it said)
        self.code = code
        super().__init__(message)

    @property
    def range_too_large(self) -> bool:
        return self.range_hint is not None


class MalformedReply(RpcError):
    """A reply that does not have the shape the protocol promises."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class DatabaseUnavailable(IndexerError):
    """PostgreSQL could not be reached or dropped the connection; the operation did not happen
    (or, for a commit, may have: callers reload their state from the store)."""


class DatabaseGaveUp(DatabaseUnavailable):
    """The database stayed unreachable past `database.unavailable_limit` and
    `database.exit_on_unavailable` is set: the process stops and exits non-zero."""
