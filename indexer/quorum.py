"""PURE: who is right when a final block changes — the chain, or the endpoint that said so.

A block the index (or the source) holds as final at height N reads differently now. Every
endpoint is asked what it says is at N (`votes`: endpoint -> block hash, None for "no block
there"; endpoints that did not answer are absent) and `judge` decides:

- `Upheld(liars)`: a quorum (more than half of the configured endpoints) still says the stored
  value. The endpoints saying otherwise are at fault (penalized, the read retried elsewhere); the
  index is right. With no liar left, the break was a torn read: read again.
- `Overturned(new)`: no quorum says the stored value, and either a quorum agrees on another value
  or every endpoint answered (one endpoint alone; a tie of two; a split of many). A finalized block
  changed: a finality violation, never repaired.
- `Undecided(reason)`: too few endpoints answered to tell. Transient: read again later.

So with three or more endpoints one liar is outvoted; with two, a liar can halt the chain (a tie)
but never rewrite it; with one, what the endpoint says is the chain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

Votes = Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class Upheld:
    liars: frozenset[str]


@dataclass(frozen=True, slots=True)
class Overturned:
    new: str | None  # the value most endpoints give now


@dataclass(frozen=True, slots=True)
class Undecided:
    reason: str


Verdict = Upheld | Overturned | Undecided


def quorum(endpoints: int) -> int:
    """More than half of the configured endpoints."""
    return endpoints // 2 + 1


def judge(stored: str | None, votes: Votes, endpoints: int) -> Verdict:
    """Decide a changed final block; see the module docstring."""
    if endpoints < 1:
        raise ValueError("judge needs at least one configured endpoint")
    q = quorum(endpoints)
    keep = [ep for ep, v in votes.items() if v == stored]
    others = Counter(v for v in votes.values() if v != stored)
    if len(keep) >= q:
        return Upheld(frozenset(ep for ep, v in votes.items() if v != stored))
    top = others.most_common(1)
    if top and (top[0][1] >= q or len(votes) >= endpoints):
        return Overturned(top[0][0])
    return Undecided(
        f"{len(votes)} of {endpoints} endpoints answered; {quorum(endpoints)} must agree to decide"
    )


def describe(votes: Votes) -> str:
    """`X from a, b; no block from c` (deterministic order: most voters first)."""
    by_value: dict[str | None, list[str]] = {}
    for ep, v in votes.items():
        by_value.setdefault(v, []).append(ep)
    ranked = sorted(by_value.items(), key=lambda kv: (-len(kv[1]), kv[0] or ""))
    return (
        "; ".join(f"{v if v is not None else 'no block'} from {', '.join(sorted(eps))}" for v, eps in ranked)
        or "no endpoint answered"
    )
