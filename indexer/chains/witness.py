"""Asking every endpoint of a chain what it says is at one height, and acting on the verdict.

Used when a final block reads differently than before: by the EVM source for the finalized
hashes it remembers, and by the follower for a fetched range or a reorg that breaks the stored
final chain. The decision itself is pure (`indexer.quorum.judge`); this module only gathers the
votes (one pinned read per endpoint, concurrently) and penalizes the endpoints a quorum outvotes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from indexer.errors import RpcError
from indexer.model import BlockRef
from indexer.quorum import Upheld, Verdict, Votes, describe, judge


class HeaderReader(Protocol):
    async def headers(self, numbers: Sequence[int]) -> list[BlockRef | None]: ...


class Witnessed(Protocol):
    """A source that can read through one endpoint at a time (`via`) and blame one."""

    def endpoints(self) -> list[str]: ...

    def via(self, label: str) -> HeaderReader: ...

    def penalize(self, label: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Attestation:
    height: int
    stored: str | None
    votes: Mapping[str, str | None]
    verdict: Verdict

    def describe(self) -> str:
        return describe(self.votes)


async def collect_votes(
    src: Witnessed, number: int, known: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """endpoint -> the hash it gives for `number` now (None: no block there). Endpoints in
    `known` are not asked again; endpoints that fail to answer are left out."""
    votes: dict[str, str | None] = dict(known or {})
    ask = [label for label in src.endpoints() if label not in votes]

    async def one(label: str) -> tuple[str, str | None] | None:
        try:
            (ref,) = await src.via(label).headers([number])
        except RpcError:
            return None
        return label, None if ref is None else ref.hash

    for got in await asyncio.gather(*(one(label) for label in ask)):
        if got is not None:
            votes[got[0]] = got[1]
    return votes


async def attest(
    src: Witnessed, number: int, stored: str | None, known: Mapping[str, str | None] | None = None
) -> Attestation:
    """Ask every endpoint about `number`, judge against the `stored` hash (None: held as no
    block), penalize the endpoints a quorum outvotes."""
    votes = await collect_votes(src, number, known)
    verdict = judge(stored, votes, len(src.endpoints()))
    att = Attestation(number, stored, votes, verdict)
    if isinstance(verdict, Upheld):
        for ep in sorted(verdict.liars):
            src.penalize(
                ep,
                f"final block {number}: says {votes[ep] or 'no block'}, a quorum says "
                f"{stored or 'no block'} ({att.describe()})",
            )
    return att


def votes_text(votes: Votes) -> dict[str, str]:
    """For logs: endpoint -> hash (or `none`)."""
    return {ep: v if v is not None else "none" for ep, v in sorted(votes.items())}
