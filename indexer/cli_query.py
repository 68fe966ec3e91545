"""`usd1-indexer query ...`: incident-response reads straight from the database.

Same filters, same validation and the same query code as the HTTP API (`indexer.api.params`,
`indexer.store.queries`); `--format json` prints exactly the body the API would return. Nothing
here writes, so a read-only database role is enough (migrations are not run).

    usd1-indexer query supply --config c.yaml [--chain X] [--history --since 2025-01-01 --interval 1d]
    usd1-indexer query transfers --config c.yaml --chain X [--address A] [--kind mint,burn] [--flagged true] [--all]
    usd1-indexer query tx --config c.yaml CHAIN HASH
    usd1-indexer query account --config c.yaml CHAIN ADDRESS [--block N]
    usd1-indexer query reorgs --config c.yaml [--chain X] [--limit N]
    usd1-indexer query controls --config c.yaml [--chain X]
    usd1-indexer query control-events --config c.yaml --chain X [--kind frozen,paused] [--address A] [--all]
    usd1-indexer query depegs --config c.yaml [--venue V] [--scope venue|aggregate] [--open true|false] [--all]
"""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click
import orjson

from indexer.api import params as P
from indexer.api import validate as v
from indexer.config import Config
from indexer.store import control_queries as cq
from indexer.store import depeg_queries as dq
from indexer.store import queries as q
from indexer.units import amount_json
from indexer.watchlists import Matcher

T = TypeVar("T")
FORMATS = ("table", "json", "csv")
MAX_ALL_ROWS = 1_000_000


def _load(path: str) -> Config:
    from indexer.cli import load_or_exit  # the CLI entry module registers this group

    return load_or_exit(path, log_level="warning")


def _run(cfg: Config, fn: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Open the configured database (no migrations: read-only roles work) and run `fn` on it."""
    from indexer.runtime import database

    async def main() -> T:
        async with database(cfg, run_migrations=False) as db:
            return await fn(db.pool)

    try:
        return asyncio.run(main())
    except v.BadRequest as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidCatalogNameError) as exc:
        click.echo(f"error: the database is not initialised ({exc}); run `usd1-indexer migrate`", err=True)
        sys.exit(1)
    except (OSError, asyncpg.PostgresError) as exc:
        click.echo(f"error: database: {exc}", err=True)
        sys.exit(1)


def _params(**kw: Any) -> dict[str, str]:
    """CLI options -> the API's query parameters (strings), omitting the unset ones."""
    return {k: str(val) for k, val in kw.items() if val is not None and val != ""}


AS_OF_BLOCK, AS_OF_TIME = "as_of_block", "as_of_time"


def _as_of_columns(fmt: str) -> list[str]:
    """The CSV exports of history say which block (and its time) each row reflects."""
    return [AS_OF_BLOCK, AS_OF_TIME] if fmt == "csv" else []


def _emit(
    fmt: str, body: Any, columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str = ""
) -> None:
    if fmt == "json":
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title or None, show_lines=False)
        for c in columns:
            left = (
                "chain",
                "kind",
                "from",
                "to",
                "tx_hash",
                "t",
                "at",
                "event",
                "contract",
                "subject",
                "scope",
                "venue",
            )
            table.add_column(
                c, justify="left" if c in left or c in ("owner", "admin", "implementation") else "right"
            )
        for r in rows:
            table.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in columns])
        Console(width=max(120, Console().width)).print(table)


config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file."
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
)


@click.group("query", context_settings={"help_option_names": ["-h", "--help"]})
def query() -> None:
    """Query the indexed history (reads the database directly; same filters as the HTTP API)."""


@query.command("supply")
@config_option
@click.option("--chain", default=None, help="Only this chain.")
@click.option("--history", is_flag=True, help="Supply per time bucket instead of the current supply.")
@click.option("--since", default=None, help="History start: ISO-8601 or Unix seconds.")
@click.option("--until", default=None, help="History end (exclusive; default now).")
@click.option("--interval", default=None, help="History bucket: N + m|h|d|w (default 1d).")
@format_option
def supply_cmd(
    config_path: str,
    chain: str | None,
    history: bool,
    since: str | None,
    until: str | None,
    interval: str | None,
    fmt: str,
) -> None:
    """Supply per chain (finalized and head), or its history with --history/--since/--interval."""
    cfg = _load(config_path)
    if history or since or until or interval:
        _supply_history(cfg, _params(chain=chain, since=since, until=until, interval=interval), fmt)
        return

    async def go(pool: asyncpg.Pool) -> list[q.ChainSupply]:
        chains = [v.chain_of(cfg, chain)] if chain else list(cfg.chains)
        async with q.snapshot(pool) as conn:
            return [
                await cq.with_classes(
                    conn, await q.chain_supply(conn, c), c.control_contracts(), c.classified()
                )
                for c in chains
            ]

    result = _run(cfg, go)
    body = q.supply_json(cfg.token.symbol, result, cfg.topology())
    rows = [
        {
            "chain": c.chain,
            "finalized_block": c.as_of.finalized_block,
            "finalized": amount_json(c.finalized.supply, c.decimals)["amount"],
            "head_block": c.as_of.block,
            "head": amount_json(c.head.supply, c.decimals)["amount"],
            "pending": amount_json(c.head.supply - c.finalized.supply, c.decimals)["amount"],
        }
        for c in result
    ]
    rows.append(
        {
            "chain": "total",
            "finalized": body["total"]["finalized"]["amount"],
            "head": body["total"]["head"]["amount"],
        }
    )
    # The global circulating figure and each bridge's backing gap (README "Bridges"); blank while
    # a chain they need is not indexed (or not among --chain).
    figures = [("circulating", body["total"]["circulating"])]
    figures += [
        (f"gap {name}", {f: b[f]["gap"] for f in ("finalized", "head")})
        for name, b in body["bridges"].items()
    ]
    for label, fig in figures:
        rows.append(
            {
                "chain": label,
                "finalized": None if fig["finalized"] is None else fig["finalized"]["amount"],
                "head": None if fig["head"] is None else fig["head"]["amount"],
            }
        )
    _emit(
        fmt, body, ["chain", "finalized_block", "finalized", "head_block", "head", "pending"], rows, "supply"
    )


def _supply_history(cfg: Config, params: dict[str, str], fmt: str) -> None:
    async def go(pool: asyncpg.Pool) -> tuple[P.HistoryParams, list[q.SupplySeries]]:
        h = P.history_params(cfg, params)
        async with q.snapshot(pool) as conn:
            return h, [await q.supply_history(conn, c, h.since, h.until, h.interval) for c in h.chains]

    h, series = _run(cfg, go)
    body = {
        "interval": h.label,
        "interval_seconds": int(h.interval.total_seconds()),
        "since": q.iso(h.since),
        "until": q.iso(h.until),
        "chains": [s.to_json() for s in series],
        "total": q.history_total(series) if h.all_chains else None,
    }
    rows = [
        {
            "t": pt["t"],
            "chain": s.chain,
            "block": pt["block"],
            "amount": pt["amount"],
            "finalized": pt["finalized"],
            # The block (and its time) whose cumulative totals the row carries.
            AS_OF_BLOCK: pt["block"],
            AS_OF_TIME: pt["block_time"],
        }
        for s in series
        for pt in s.to_json()["points"]
    ]
    columns = ["t", "chain", "block", "amount", "finalized"]
    _emit(fmt, body, columns + _as_of_columns(fmt), rows, f"supply per {h.label}")


EVENT_COLUMNS = [
    "block_number",
    "log_index",
    "block_time",
    "kind",
    "from",
    "to",
    "amount",
    "finalized",
    "tx_hash",
]


def page_options(fn: Callable[..., None]) -> Callable[..., None]:
    """The options every paged history command shares (the API's since/until/limit/order/cursor)."""
    for option in reversed(
        [
            click.option("--since", default=None, help="Block time at or after (ISO-8601 or Unix seconds)."),
            click.option("--until", default=None, help="Block time before."),
            click.option("--limit", default=None, help="Page size (default 100, at most 1000)."),
            click.option("--order", default=None, help="desc (default) or asc."),
            click.option("--cursor", default=None, help="next_cursor of the previous page."),
            click.option(
                "--all",
                "walk_all",
                is_flag=True,
                help="Follow next_cursor to the end (at most 1,000,000 rows).",
            ),
            format_option,
        ]
    ):
        fn = option(fn)
    return fn


def _emit_pages(fmt: str, bodies: list[dict[str, Any]], key: str, columns: Sequence[str], title: str) -> None:
    """Pages walked with --all as one body (the last page's cursor), then printed. CSV rows carry
    the indexed head each page was read at (`as_of`: what the row's `finalized` reflects)."""
    body = bodies[0] if len(bodies) == 1 else {**bodies[-1], key: [e for b in bodies for e in b[key]]}
    rows = [
        {**e, AS_OF_BLOCK: b["as_of"]["block"], AS_OF_TIME: b["as_of"]["block_time"]}
        for b in bodies
        for e in b[key]
    ]
    _emit(fmt, body, [*columns, *_as_of_columns(fmt)], rows, title)
    if fmt != "json" and body["next_cursor"]:
        click.echo(f"next page: --cursor {body['next_cursor']}", err=True)


@query.command("transfers")
@config_option
@click.option("--chain", default=None, help="Chain (optional when only one is configured).")
@click.option("--address", default=None, help="Sender or receiver.")
@click.option("--kind", default=None, help="Comma-separated: mint,burn,transfer.")
@click.option("--from-block", default=None, help="Lowest block (inclusive).")
@click.option("--to-block", default=None, help="Highest block (inclusive).")
@click.option("--min-amount", default=None, help="Minimum amount in tokens (exact decimal).")
@click.option(
    "--flagged",
    default=None,
    type=click.Choice(["true", "false"]),
    help="true: only events from or to an address on a configured watchlist; false: the others.",
)
@page_options
def transfers_cmd(config_path: str, walk_all: bool, fmt: str, **filters: str | None) -> None:
    """Token events, newest first by default; the next page's cursor goes to stderr. With
    `watchlists` configured, each row says whether it is `flagged` and by which `lists`."""
    cfg = _load(config_path)
    params = _params(**filters)
    cursors = P.cursor_codec(cfg)
    config_dir = Path(config_path).resolve().parent
    lists: list[Matcher] = []

    async def go(pool: asyncpg.Pool) -> list[q.TransferPage]:
        matcher = await _watchlists(cfg, config_dir)
        lists.append(matcher)
        f, size, after = P.transfer_filter(cfg, params, cursors, matcher)
        return await _walk(pool, walk_all, lambda conn, a: q.transfers(conn, f, limit=size, after=a), after)

    pages = _run(cfg, go)
    c = cfg.chain(pages[0].filter.chain)
    lists_of = lists[0].match if cfg.watchlists else None
    bodies = [p.to_json(c.decimals, cursors, lists_of, show=c.show_address) for p in pages]
    columns = [*EVENT_COLUMNS, "flagged", "lists"] if cfg.watchlists else EVENT_COLUMNS
    if fmt != "json":
        for body in bodies:
            for row in body["transfers"]:
                if "lists" in row:
                    row["lists"] = ",".join(row["lists"])
    _emit_pages(fmt, bodies, "transfers", columns, f"{pages[0].filter.chain} transfers")


async def _watchlists(cfg: Config, config_dir: Path) -> Matcher:
    """The configured watchlists, loaded once."""
    import aiohttp

    from indexer.metrics import Metrics
    from indexer.sync.watchlists import WatchlistService

    if not cfg.watchlists:
        return Matcher.build((), cfg.chains)
    async with aiohttp.ClientSession() as session:
        svc = WatchlistService(
            cfg.watchlists, cfg.chains, Metrics(), session, base_dir=config_dir, counted=[]
        )
        await svc.refresh()  # a list that fails is logged (watchlist_failed) and flags nothing
    return svc.matcher


@query.command("tx")
@config_option
@click.argument("chain")
@click.argument("tx_hash")
@format_option
def tx_cmd(config_path: str, chain: str, tx_hash: str, fmt: str) -> None:
    """Every token event of one transaction."""
    cfg = _load(config_path)

    async def go(pool: asyncpg.Pool) -> q.TxView:
        c = v.chain_of(cfg, chain)
        h = v.tx_hash_for(c, tx_hash)
        async with q.snapshot(pool) as conn:
            return await q.tx(conn, c.name, h)

    view = _run(cfg, go)
    c = cfg.chain(view.chain)
    if not view.events:
        click.echo(f"no token events for transaction {view.tx_hash} on {view.chain}", err=True)
        sys.exit(1)
    body = view.to_json(c.decimals, show=c.show_address)
    _emit(fmt, body, EVENT_COLUMNS, body["events"], f"{view.chain} tx {view.tx_hash}")


@query.command("account")
@config_option
@click.argument("chain")
@click.argument("address")
@click.option("--block", default=None, help="Also the balance as of this block.")
@format_option
def account_cmd(config_path: str, chain: str, address: str, block: str | None, fmt: str) -> None:
    """Balance of an account at the head, at the finalized block and optionally at --block."""
    cfg = _load(config_path)

    async def go(pool: asyncpg.Pool) -> q.AccountView:
        c = v.chain_of(cfg, chain)
        addr = v.address_for(c, address)
        height = v.height(block, "block")
        try:
            async with q.snapshot(pool) as conn:
                return await q.account(conn, c, addr, height)
        except q.NotIndexed as exc:
            raise v.BadRequest(str(exc)) from None

    view = _run(cfg, go)
    body = view.to_json(show=cfg.chain(view.chain).show_address)
    rows = [
        {"at": "finalized", "block": body["finalized"]["block"], "amount": body["finalized"]["amount"]},
        {"at": "head", "block": body["head"]["block"], "amount": body["head"]["amount"]},
    ]
    if "at" in body:
        rows.append({"at": "block", "block": body["at"]["block"], "amount": body["at"]["amount"]})
    _emit(fmt, body, ["at", "block", "amount"], rows, f"{view.chain} {body['address']}")


@query.command("reorgs")
@config_option
@click.option("--chain", default=None, help="Only this chain.")
@click.option("--limit", default=None, help="Most recent N (default 100, at most 1000).")
@format_option
def reorgs_cmd(config_path: str, chain: str | None, limit: str | None, fmt: str) -> None:
    """Reorganisations the indexer handled, newest first."""
    cfg = _load(config_path)

    async def go(pool: asyncpg.Pool) -> list[dict[str, Any]]:
        if chain:
            v.chain_of(cfg, chain)
        n = v.bounded_int(limit, "limit", 100, 1, 1000)
        async with q.snapshot(pool) as conn:
            return await q.reorgs(conn, chain or None, n)

    rows = _run(cfg, go)
    flat = [
        {
            "detected_at": r["detected_at"],
            "chain": r["chain"],
            "depth": r["depth"],
            "ancestor": r["ancestor"]["block"],
            "old_tip": r["old_tip"]["block"],
            "new_tip": r["new_tip"]["block"],
            "orphaned_events": r["orphaned_events"],
        }
        for r in rows
    ]
    _emit(
        fmt,
        {"reorgs": rows},
        ["detected_at", "chain", "depth", "ancestor", "old_tip", "new_tip", "orphaned_events"],
        flat,
        "reorgs",
    )


CONTROL_COLUMNS = [
    "block_number",
    "log_index",
    "block_time",
    "kind",
    "event",
    "contract",
    "subject",
    "finalized",
    "tx_hash",
]


@query.command("controls")
@config_option
@click.option("--chain", default=None, help="Only this chain.")
@format_option
def controls_cmd(config_path: str, chain: str | None, fmt: str) -> None:
    """Who controls the token: owner, admin, implementation, paused, frozen (head and finalized)."""
    cfg = _load(config_path)

    async def go(pool: asyncpg.Pool) -> list[dict[str, Any]]:
        chains = [v.chain_of(cfg, chain)] if chain else list(cfg.chains)
        async with q.snapshot(pool) as conn:
            return [
                (
                    await cq.chain_controls(conn, c.name, c.decimals, c.first_height, c.control_contracts())
                ).to_json(show=c.show_address)
                for c in chains
            ]

    body = _run(cfg, go)
    rows = []
    for c in body:
        for at in ("head", "finalized"):
            st = c[at]
            if st is None:
                continue
            rows.append(
                {
                    "chain": c["chain"],
                    "at": at,
                    "block": st["block"],
                    "owner": st["owner"],
                    "admin": st["admin"],
                    "implementation": st["implementation"],
                    "paused": st["paused"],
                    "frozen": st["frozen"]["count"],
                    "frozen_amount": st["frozen"]["amount"],
                    "coverage_from": c["coverage"]["from_block"] if c["coverage"] else None,
                }
            )
    columns = [
        "chain",
        "at",
        "block",
        "owner",
        "admin",
        "implementation",
        "paused",
        "frozen",
        "frozen_amount",
        "coverage_from",
    ]
    _emit(fmt, {"chains": body}, columns, rows, "contract controls")


@query.command("control-events")
@config_option
@click.option("--chain", default=None, help="Chain (optional when only one is configured).")
@click.option("--kind", default=None, help="Comma-separated control kinds (e.g. frozen,paused).")
@click.option("--address", default=None, help="Emitting contract or account named by the event.")
@page_options
def control_events_cmd(config_path: str, walk_all: bool, fmt: str, **filters: str | None) -> None:
    """Control events, newest first by default; the next page's cursor goes to stderr."""
    cfg = _load(config_path)
    params = _params(**filters)
    cursors = P.cursor_codec(cfg)

    async def go(pool: asyncpg.Pool) -> list[cq.ControlPage]:
        f, size, after = P.control_filter(cfg, params, cursors)
        return await _walk(
            pool, walk_all, lambda conn, a: cq.control_events(conn, f, limit=size, after=a), after
        )

    pages = _run(cfg, go)
    chain_cfg = cfg.chain(pages[0].filter.chain)
    labels = {a: label for a, label, _ in chain_cfg.control_contracts()}
    bodies = [p.to_json(labels, chain_cfg.decimals, cursors, show=chain_cfg.show_address) for p in pages]
    _emit_pages(fmt, bodies, "events", CONTROL_COLUMNS, f"{chain_cfg.name} control events")


@query.command("depegs")
@config_option
@click.option("--venue", default=None, help="Only this venue's episodes.")
@click.option("--scope", default=None, help="venue or aggregate (default: both).")
@click.option("--open", "open_", default=None, help="true: only open episodes; false: only closed ones.")
@click.option(
    "--since", default=None, help="Episodes still open at or ended after (ISO-8601 or Unix seconds)."
)
@click.option("--until", default=None, help="Episodes started before.")
@click.option("--limit", default=None, help="Page size (default 100, at most 1000).")
@click.option("--cursor", default=None, help="next_cursor of the previous page.")
@click.option(
    "--all", "walk_all", is_flag=True, help="Follow next_cursor to the end (at most 1,000,000 rows)."
)
@format_option
def depegs_cmd(config_path: str, walk_all: bool, fmt: str, open_: str | None, **filters: str | None) -> None:
    """Depeg episodes per venue and across venues, newest first (the next page's cursor to stderr)."""
    cfg = _load(config_path)
    params = _params(open=open_, **filters)
    cursors = P.cursor_codec(cfg)

    async def go(pool: asyncpg.Pool) -> list[dq.DepegPage]:
        f, size, after = P.depeg_filter(cfg, params, cursors)
        return await _walk(pool, walk_all, lambda conn, a: dq.depegs(conn, f, limit=size, after=a), after)

    bodies = [p.to_json(cursors) for p in _run(cfg, go)]
    # Not chain-scoped (no indexed head to carry): the pages as one body, the last page's cursor.
    body = (
        bodies[0]
        if len(bodies) == 1
        else {**bodies[-1], "episodes": [e for b in bodies for e in b["episodes"]]}
    )
    if fmt == "csv":  # exactly the API's format=csv
        click.echo(dq.csv_text(body["episodes"]), nl=False)
    else:
        _emit(fmt, body, dq.COLUMNS, body["episodes"], "depeg episodes")
    if fmt != "json" and body["next_cursor"]:
        click.echo(f"next page: --cursor {body['next_cursor']}", err=True)


P_ = TypeVar("P_", q.TransferPage, cq.ControlPage, dq.DepegPage)
A_ = TypeVar("A_", q.Position, dq.DepegPosition)


def _rows(page: q.TransferPage | cq.ControlPage | dq.DepegPage) -> int:
    return len(page.episodes) if isinstance(page, dq.DepegPage) else len(page.events)


async def _walk(
    pool: asyncpg.Pool,
    walk_all: bool,
    fetch: Callable[[Any, Any], Awaitable[P_]],
    after: A_ | None,
) -> list[P_]:
    """One page, or (with --all) every page up to MAX_ALL_ROWS, each in its own snapshot."""
    pages: list[P_] = []
    total = 0
    cur: Any = after
    while True:
        async with q.snapshot(pool) as conn:
            page = await fetch(conn, cur)
        pages.append(page)
        total += _rows(page)
        if not walk_all or page.next is None or total >= MAX_ALL_ROWS:
            return pages
        cur = page.next


if __name__ == "__main__":  # python -m indexer.cli_query ... (before it is registered in indexer.cli)
    query()
