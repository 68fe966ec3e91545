"""Parsing of the history endpoints' filters, shared by the HTTP API and the `query` CLI so both
accept exactly the same inputs and refuse the same ones (with the same messages)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from indexer.api import validate as v
from indexer.config import ChainConfig, Config
from indexer.depegs import SCOPES, Scope
from indexer.model import CONTROL_KINDS
from indexer.store import control_queries as cq
from indexer.store import depeg_queries as dq
from indexer.store import queries as q
from indexer.store.pagination import CursorCodec, CursorError, Layout, cursor_key
from indexer.watchlists import Matcher

Pos = TypeVar("Pos")
DEFAULT_INTERVAL = timedelta(days=1)
DEFAULT_BUCKETS = 100


@dataclass(frozen=True, slots=True)
class HistoryParams:
    chains: list[ChainConfig]
    all_chains: bool
    since: datetime
    until: datetime
    interval: timedelta
    label: str


def history_params(cfg: Config, query: Mapping[str, str], now: datetime | None = None) -> HistoryParams:
    interval = v.interval(query.get("interval"), DEFAULT_INTERVAL)
    until = v.timestamp(query.get("until"), "until") or (now or datetime.now(UTC))
    since = v.timestamp(query.get("since"), "since") or max(v.EPOCH, until - DEFAULT_BUCKETS * interval)
    if since >= until:
        raise v.BadRequest("since must be before until")
    if len(q.buckets(since, until, interval)) > q.MAX_BUCKETS:
        raise v.BadRequest(
            f"range too long: more than {q.MAX_BUCKETS} buckets; use a wider interval or a shorter range"
        )
    name = query.get("chain")
    chains = [v.chain_of(cfg, name)] if name else list(cfg.chains)
    return HistoryParams(chains, not name, since, until, interval, query.get("interval") or "1d")


def cursor_codec(cfg: Config) -> CursorCodec:
    """The pagination cursor codec of this deployment (`http.cursor_key` or `data_dir/cursor.key`)."""
    return CursorCodec(cursor_key(cfg.http.cursor_key.get_secret_value(), cfg.data_dir))


def _chain(cfg: Config, query: Mapping[str, str]) -> ChainConfig:
    """The `chain` parameter (may be omitted when only one chain is configured)."""
    name = query.get("chain")
    if not name:
        if len(cfg.chains) != 1:
            raise v.BadRequest("chain is required when more than one chain is configured")
        name = cfg.chains[0].name
    return v.chain_of(cfg, name)


def _since_until(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    since = v.timestamp(query.get("since"), "since")
    until = v.timestamp(query.get("until"), "until")
    if since is not None and until is not None and since >= until:
        raise v.BadRequest("since must be before until")
    return since, until


def _page(
    layout: Layout[Pos], fingerprint: str, query: Mapping[str, str], cursors: CursorCodec
) -> tuple[int, Pos | None]:
    """`limit` and the position after which a page starts (`cursor`, checked by the codec)."""
    limit = v.bounded_int(query.get("limit"), "limit", q.DEFAULT_PAGE, 1, q.MAX_PAGE)
    cursor = query.get("cursor")
    try:
        after = cursors.decode(layout, fingerprint, cursor) if cursor else None
    except CursorError as exc:
        raise v.BadRequest(str(exc)) from None
    return limit, after


def _order(query: Mapping[str, str]) -> q.Order:
    return "asc" if v.choice(query.get("order"), "order", ("desc", "asc"), "desc") == "asc" else "desc"


def flagged(value: str | None) -> bool | None:
    """The `flagged` filter: true | false, or None (every row)."""
    if value is None or value == "":
        return None
    return v.choice(value, "flagged", ("true", "false"), "true") == "true"


def transfer_filter(
    cfg: Config, query: Mapping[str, str], cursors: CursorCodec, watchlists: Matcher | None = None
) -> tuple[q.TransferFilter, int, q.Position | None]:
    """Parse and check the transfers filters (shared by the API and the CLI). `watchlists`: the
    lists in force, for `flagged` (none given: nothing is listed)."""
    chain = _chain(cfg, query)
    flag = flagged(query.get("flagged"))
    address = query.get("address")
    from_block = v.height(query.get("from_block"), "from_block")
    to_block = v.height(query.get("to_block"), "to_block")
    if from_block is not None and to_block is not None and from_block > to_block:
        raise v.BadRequest("from_block must not be above to_block")
    since, until = _since_until(query)
    f = q.TransferFilter(
        chain=chain.name,
        address=v.address_for(chain, address) if address else None,
        kinds=v.kinds(query.get("kind"), q.EVENT_KINDS),
        from_block=from_block,
        to_block=to_block,
        since=since,
        until=until,
        min_raw=v.amount(query.get("min_amount"), chain.decimals),
        order=_order(query),
        flagged=flag,
        listed=tuple(watchlists.addresses(chain.name)) if flag is not None and watchlists is not None else (),
    )
    return (f, *_page(q.POSITION, f.fingerprint(), query, cursors))


def control_filter(
    cfg: Config, query: Mapping[str, str], cursors: CursorCodec
) -> tuple[cq.ControlFilter, int, q.Position | None]:
    """Parse and check the control-events filters (shared by the API and the CLI)."""
    chain = _chain(cfg, query)
    address = query.get("address")
    since, until = _since_until(query)
    f = cq.ControlFilter(
        chain=chain.name,
        kinds=v.kinds(query.get("kind"), CONTROL_KINDS),
        address=v.address_for(chain, address) if address else None,
        since=since,
        until=until,
        order=_order(query),
    )
    return (f, *_page(cq.POSITION, f.fingerprint(), query, cursors))


def depeg_filter(
    cfg: Config, query: Mapping[str, str], cursors: CursorCodec
) -> tuple[dq.DepegFilter, int, dq.DepegPosition | None]:
    """Parse and check the depeg-episode filters (shared by the API and the CLI)."""
    venue = query.get("venue") or None
    if venue is not None and venue not in {x.name for x in cfg.venues}:
        known = ", ".join(x.name for x in cfg.venues) or "none configured"
        raise v.BadRequest(f"unknown venue {venue[:64]!r}; known: {known}")
    scope_text = query.get("scope") or None
    scope: Scope | None = None
    if scope_text is not None:
        scope = "venue" if v.choice(scope_text, "scope", SCOPES, "venue") == "venue" else "aggregate"
    if venue is not None and scope == "aggregate":
        raise v.BadRequest("venue and scope=aggregate exclude each other: aggregate episodes have no venue")
    open_text = query.get("open") or None
    is_open = None if open_text is None else v.choice(open_text, "open", ("true", "false"), "true") == "true"
    since, until = _since_until(query)
    f = dq.DepegFilter(venue=venue, scope=scope, since=since, until=until, open=is_open)
    return (f, *_page(dq.POSITION, f.fingerprint(), query, cursors))
