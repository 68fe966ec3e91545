"""Depeg episodes in PostgreSQL (migration 010): the daemon's upsert and start-up load, and the
read shared by `GET /api/v1/depegs`, `query depegs` and the transparency page.

Listing order: newest start first (`started_at`, `id`), keyset-paginated with the shared cursor
codec (scope `depegs`). `since`/`until` select the episodes active in [since, until): started
before `until` and not ended before `since`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from indexer.depegs import SCOPES, Episode, Scope
from indexer.store import queries as q
from indexer.store.db import Conn
from indexer.store.pagination import CursorCodec, IntField, Layout

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLS = "id, scope, venue, started_at, start_bps, peak_bps, peak_at, ended_at, end_bps, duration_seconds"
# Columns of one episode in the CLI's table/csv output (the API's JSON has the same names).
COLUMNS = (
    "id",
    "scope",
    "venue",
    "started_at",
    "peak_bps",
    "peak_at",
    "ended_at",
    "duration_seconds",
    "open",
)


def csv_text(episodes: Sequence[dict[str, Any]]) -> str:
    """Episodes (as `StoredEpisode.to_json` gives them) as CSV with a header row of `COLUMNS`."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for e in episodes:
        w.writerow(
            [
                "" if e.get(c) is None else str(e[c]).lower() if isinstance(e[c], bool) else e[c]
                for c in COLUMNS
            ]
        )
    return out.getvalue()


def _scope(value: str) -> Scope:
    for s in SCOPES:
        if s == value:
            return s
    raise ValueError(f"unknown depeg scope {value!r}")


def _episode(r: Any) -> Episode:
    return Episode(
        scope=_scope(r["scope"]),
        venue=r["venue"],
        started_at=r["started_at"],
        start_bps=r["start_bps"],
        peak_bps=r["peak_bps"],
        peak_at=r["peak_at"],
        ended_at=r["ended_at"],
        end_bps=r["end_bps"],
    )


async def upsert(conn: Conn, episodes: Sequence[Episode]) -> None:
    """Write `episodes` (new ones inserted, open ones updated; a closed row never changes), in
    order, in one transaction."""
    if not episodes:
        return
    async with conn.transaction():
        for e in episodes:
            await conn.execute(
                "INSERT INTO depeg_episodes (scope, venue, started_at, start_bps, peak_bps, peak_at, ended_at,"
                " end_bps) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (scope, (coalesce(venue, '')), started_at) DO UPDATE SET"
                " peak_bps = EXCLUDED.peak_bps, peak_at = EXCLUDED.peak_at, ended_at = EXCLUDED.ended_at,"
                " end_bps = EXCLUDED.end_bps, updated_at = now()"
                " WHERE depeg_episodes.ended_at IS NULL",
                e.scope,
                e.venue,
                e.started_at,
                e.start_bps,
                e.peak_bps,
                e.peak_at,
                e.ended_at,
                e.end_bps,
            )


async def load_open(conn: Conn) -> list[Episode]:
    """The open episodes (at most one per scope and venue), for the tracker to resume."""
    rows = await conn.fetch(f"SELECT {_COLS} FROM depeg_episodes WHERE ended_at IS NULL ORDER BY id")
    return [_episode(r) for r in rows]


async def last_change(conn: Conn) -> tuple[int, datetime | None]:
    """(row count, newest update): what the page cache keys on."""
    r = await conn.fetchrow("SELECT count(*) AS n, max(updated_at) AS t FROM depeg_episodes")
    return (0, None) if r is None else (int(r["n"]), r["t"])


@dataclass(frozen=True, slots=True)
class DepegPosition:
    started_us: int  # started_at in microseconds since the epoch
    id: int


POSITION = Layout("depegs", DepegPosition, (IntField("started_us"), IntField("id", low=1)))


def _fixed(d: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros (900, -54.03)."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _micros(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class DepegFilter:
    venue: str | None = None
    scope: Scope | None = None
    since: datetime | None = None
    until: datetime | None = None
    open: bool | None = None

    def fingerprint(self) -> str:
        key = ["depegs", self.venue, self.scope, q.iso(self.since), q.iso(self.until), self.open]
        return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class StoredEpisode:
    id: int
    episode: Episode
    duration_seconds: Decimal | None  # closed episodes (the column); open: computed from `now`

    def to_json(self, now: datetime) -> dict[str, Any]:
        e = self.episode
        duration = (
            self.duration_seconds
            if self.duration_seconds is not None
            else Decimal(_micros(now) - _micros(e.started_at)).scaleb(-6)
        )
        return {
            "id": self.id,
            "scope": e.scope,
            "venue": e.venue,
            "started_at": q.iso(e.started_at),
            "start_bps": _fixed(e.start_bps),
            "peak_bps": _fixed(e.peak_bps),
            "peak_at": q.iso(e.peak_at),
            "ended_at": q.iso(e.ended_at),
            "end_bps": None if e.end_bps is None else _fixed(e.end_bps),
            "duration_seconds": _fixed(max(duration, Decimal(0))),
            "open": e.open,
        }


@dataclass(frozen=True, slots=True)
class DepegPage:
    filter: DepegFilter
    episodes: list[StoredEpisode]
    limit: int
    next: DepegPosition | None
    now: datetime

    def to_json(self, cursors: CursorCodec) -> dict[str, Any]:
        next_cursor = (
            None if self.next is None else cursors.encode(POSITION, self.filter.fingerprint(), self.next)
        )
        f = self.filter
        return {
            "filters": {
                "venue": f.venue,
                "scope": f.scope,
                "since": q.iso(f.since),
                "until": q.iso(f.until),
                "open": f.open,
            },
            "limit": self.limit,
            "as_of": q.iso(self.now),
            "episodes": [e.to_json(self.now) for e in self.episodes],
            "next_cursor": next_cursor,
        }


async def depegs(
    conn: Conn, f: DepegFilter, *, limit: int = q.DEFAULT_PAGE, after: DepegPosition | None = None
) -> DepegPage:
    """One page of episodes, newest start first, after `after`."""
    if not 1 <= limit <= q.MAX_PAGE:
        raise ValueError(f"limit must be 1..{q.MAX_PAGE}")
    p = q.SqlArgs()
    conds = ["TRUE"]
    if f.venue is not None:
        conds.append(f"venue = {p(f.venue)}")
    if f.scope is not None:
        conds.append(f"scope = {p(f.scope)}")
    if f.until is not None:
        conds.append(f"started_at < {p(f.until)}")
    if f.since is not None:
        conds.append(f"(ended_at IS NULL OR ended_at >= {p(f.since)})")
    if f.open is not None:
        conds.append("ended_at IS NULL" if f.open else "ended_at IS NOT NULL")
    if after is not None:
        t = p(EPOCH + timedelta(microseconds=after.started_us))
        conds.append(f"(started_at, id) < ({t}, {p(after.id)})")
    rows = await conn.fetch(
        f"SELECT {_COLS}, now() AS now FROM depeg_episodes WHERE {' AND '.join(conds)}"
        f" ORDER BY started_at DESC, id DESC LIMIT {p(limit + 1)}",
        *p.values,
    )
    now = rows[0]["now"] if rows else datetime.now(UTC)
    items = [StoredEpisode(r["id"], _episode(r), r["duration_seconds"]) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = DepegPosition(_micros(last["started_at"]), last["id"])
    return DepegPage(f, items, limit, nxt, now)
