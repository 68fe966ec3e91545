"""The aiohttp application: health, metrics, JSON API, OpenAPI document, transparency page.

Amounts are strings: `raw` integer base units and `amount` exact decimal. Every answer says which
finality it reflects and as of which block (`as_of`: the indexed head `block` and the
`finalized_block`; events carry `finalized`).

The API only reads: it works on a PostgreSQL role with nothing but SELECT (see README, "Read-only
API role"). All reads go through `indexer.store.queries`, the same code the `query` CLI uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indexer import __version__
from indexer import supply_at as sa
from indexer.api import openapi
from indexer.api import validate as v
from indexer.api.page import MarketProvider, ReservesProvider, transparency_page
from indexer.api.params import control_filter, cursor_codec, depeg_filter, history_params, transfer_filter
from indexer.config import Config
from indexer.errors import DatabaseUnavailable
from indexer.http_json import json_response
from indexer.metrics import Metrics
from indexer.oracle import OracleSnapshot, oracle_json
from indexer.reserves import snapshot_json
from indexer.store import control_queries as cq
from indexer.store import depeg_queries as dq
from indexer.store import queries as q
from indexer.store import supply_at_queries as saq
from indexer.store.keeper import DatabaseKeeper
from indexer.store.pagination import CursorCodec
from indexer.store.store import Store
from indexer.sync.status import ChainStatus
from indexer.watchlists import Matcher

log = structlog.get_logger(__name__)

CFG = web.AppKey("cfg", Config)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
STATUSES = web.AppKey("statuses", dict)
RESERVES: web.AppKey[ReservesProvider | None] = web.AppKey("reserves")
MARKET: web.AppKey[MarketProvider | None] = web.AppKey("market")
ORACLE: web.AppKey[Callable[[], OracleSnapshot] | None] = web.AppKey("reserves_oracle")
OPENAPI = web.AppKey("openapi", bytes)
PAGE_CACHE = web.AppKey("page_cache", dict)
CURSORS = web.AppKey("cursors", CursorCodec)
DB = web.AppKey("db", DatabaseKeeper)
WATCHLISTS: web.AppKey[Callable[[], Matcher]] = web.AppKey("watchlists")
STATIC_DIR = Path(__file__).parent / "static"
# Served by name from this fixed set: no client path ever reaches the file system (a long or odd
# path is a 404, not an OSError).
STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
QUERY_TIMEOUT_MS = 10_000  # per statement: a pathological filter cannot hog the database

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Routes that read the database: a 503 while it is known to be down, without trying.
_DB_FREE = ("/healthz", "/readyz", "/metrics", "/api/openapi.json", "/api/v1/reserves", "/static/")


def _reads_database(path: str) -> bool:
    return not path.startswith(_DB_FREE)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """User errors are 400 JSON; the database being unavailable is a 503 JSON (logged once per
    outage, by the keeper); unexpected errors are a logged 500 with no stack trace."""
    db = request.app[DB]
    routed = request.match_info.http_exception is None  # an unknown path stays a 404
    if db.watching and not db.available and routed and _reads_database(request.path):
        return _unavailable()
    try:
        resp = await handler(request)
        if _reads_database(request.path):
            db.note_ok()
        return resp
    except DatabaseUnavailable as exc:
        db.report(exc)
        return _unavailable()
    except web.HTTPException as exc:
        if exc.content_type != "application/json" and exc.status >= 400:
            return json_response({"error": exc.reason}, status=exc.status)
        raise
    except asyncpg.QueryCanceledError:
        log.warning("http_query_timeout", path=request.path, query=request.query_string[:300])
        return json_response(
            {"error": f"query took longer than {QUERY_TIMEOUT_MS // 1000} s; narrow the filters"}, status=503
        )
    except Exception:
        log.exception("http_handler_failed", path=request.path)
        return json_response({"error": "internal error"}, status=500)


def _unavailable() -> web.Response:
    return json_response({"error": "database unavailable; try again shortly"}, status=503)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if request.method in ("GET", "HEAD") and request.path.startswith("/api/"):
        resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp


def create_app(
    cfg: Config,
    store: Store,
    metrics: Metrics,
    statuses: Mapping[str, ChainStatus] | None = None,
    *,
    reserves: ReservesProvider | None = None,
    oracle: Callable[[], OracleSnapshot] | None = None,
    cursors: CursorCodec | None = None,
    db: DatabaseKeeper | None = None,
    watchlists: Callable[[], Matcher] | None = None,
    market: MarketProvider | None = None,
) -> web.Application:
    """`reserves`: optional callable returning the latest `ReservesSnapshot` (e.g.
    `ReservesService.snapshot`) for the transparency page; None shows "no attestation configured".
    `oracle`: optional callable returning the proof-of-reserve feed's `OracleSnapshot`
    (`OracleService.snapshot`), the `oracle` member of /api/v1/reserves.
    `cursors`: the pagination cursor codec (default: the key of `http.cursor_key` or data_dir).
    `db`: the process's database keeper (default: a passive one over `store.pool`).
    `watchlists`: the lists in force (e.g. `WatchlistService.current`) that flag transfers; None:
    no list, nothing is flagged. `market`: the venues' latest readings (e.g. `MarketService.snapshot`)
    for the page's peg and depth; None: no venue section."""
    app = web.Application(middlewares=[errors_middleware, cors_middleware])
    app[CFG] = cfg
    app[STORE] = store
    app[METRICS] = metrics
    app[STATUSES] = dict(statuses or {})
    app[RESERVES] = reserves
    app[MARKET] = market
    app[ORACLE] = oracle
    app[OPENAPI] = orjson.dumps(openapi.document(f"{cfg.token.symbol} indexer API"))
    app[PAGE_CACHE] = {}
    app[CURSORS] = cursors if cursors is not None else cursor_codec(cfg)
    app[DB] = db if db is not None else DatabaseKeeper(store.pool, None)
    no_lists = Matcher.build((), cfg.chains)
    app[WATCHLISTS] = watchlists if watchlists is not None else (lambda: no_lists)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/v1/supply", supply)
    app.router.add_get("/api/v1/supply/history", supply_history)
    app.router.add_get("/api/v1/supply/at", supply_at)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/transfers", transfers)
    app.router.add_get("/api/v1/tx/{chain}/{hash}", tx)
    app.router.add_get("/api/v1/accounts/{chain}/{address}", account)
    app.router.add_get("/api/v1/controls", controls)
    app.router.add_get("/api/v1/control-events", control_events)
    app.router.add_get("/api/v1/reorgs", reorgs)
    app.router.add_get("/api/v1/reserves", reserves_handler)
    app.router.add_get("/api/v1/depegs", depegs)
    app.router.add_get("/api/openapi.json", openapi_handler)
    return app


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[STORE].pool


async def healthz(request: web.Request) -> web.Response:
    """Alive unless the database has been unreachable past `database.unavailable_limit` (so a
    liveness probe restarts a process that cannot recover by itself)."""
    v.only_params(request, set())
    db = request.app[DB]
    if not db.healthy:
        return json_response({"status": "database_unavailable", "error": db.describe()}, status=503)
    return json_response({"status": "ok", "database": "up" if db.available else "down"})


async def readyz(request: web.Request) -> web.Response:
    statuses: dict[str, ChainStatus] = request.app[STATUSES]
    if not request.app[DB].available:
        return json_response({"ready": False, "database": "unavailable", "chains": []}, status=503)
    now = time.time()
    chains = [
        {
            "chain": name,
            "ready": st.ready(now),
            "state": st.state(now).value,
            "lag_seconds": round(st.lag_seconds(now), 3),
            "lag_budget_seconds": st.lag_budget,
        }
        for name, st in statuses.items()
    ]
    ok = bool(chains) and all(c["ready"] for c in chains)
    return json_response({"ready": ok, "chains": chains}, status=200 if ok else 503)


async def metrics_handler(request: web.Request) -> web.Response:
    registry: Any = request.app[METRICS].registry
    names = request.query.getall("name[]", [])
    if names:  # the exposition convention (as prometheus_client's own handlers): only these families
        registry = registry.restricted_registry(names)
    # Rendering costs ~10 ms per 1,000 series: keep it off the event loop.
    body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def supply(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/supply"))
    cfg = request.app[CFG]
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        chains = [
            await cq.with_classes(conn, await q.chain_supply(conn, c), c.control_contracts(), c.classified())
            for c in cfg.chains
        ]
    return json_response(q.supply_json(cfg.token.symbol, chains, cfg.topology()))


async def supply_history(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/supply/history"))
    cfg = request.app[CFG]
    h = history_params(cfg, request.query)
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        series = [await q.supply_history(conn, c, h.since, h.until, h.interval) for c in h.chains]
    body: dict[str, Any] = {
        "interval": h.label,
        "interval_seconds": int(h.interval.total_seconds()),
        "since": q.iso(h.since),
        "until": q.iso(h.until),
        "chains": [s.to_json() for s in series],
        "total": q.history_total(series) if h.all_chains else None,
    }
    return json_response(body)


async def supply_at(request: web.Request) -> web.Response:
    """The attestation package at `time` (README "Supply at a time")."""
    v.only_params(request, openapi.allowed("/api/v1/supply/at"))
    body = await supply_at_body(request.app[CFG], _pool(request), request.query.get("time"))
    return json_response(body)


async def supply_at_body(cfg: Config, pool: asyncpg.Pool, time_param: str | None) -> dict[str, Any]:
    """The body of /api/v1/supply/at and of `report supply --at` (one function builds both);
    bad input and a time above what is final raise `BadRequest`."""
    when = v.timestamp(time_param, "time")
    if when is None:
        raise v.BadRequest("time is required: ISO-8601 (2025-01-31T12:00:00Z) or Unix seconds")
    try:
        async with q.snapshot(pool, timeout_ms=QUERY_TIMEOUT_MS) as conn:
            chains = await saq.supply_at(conn, cfg.chains, when)
    except sa.NotFinal as exc:
        raise v.BadRequest(str(exc)) from None
    return sa.payload(cfg.token.symbol, when, chains, __version__, datetime.now(UTC), cfg.topology())


async def transfers(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/transfers"))
    cfg, query = request.app[CFG], request.query
    cursors = request.app[CURSORS]
    lists = request.app[WATCHLISTS]()  # one version of the lists for the filter and the rows
    f, limit, after = transfer_filter(cfg, query, cursors, lists)
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        page_ = await q.transfers(conn, f, limit=limit, after=after)
    chain = cfg.chain(f.chain)
    return json_response(page_.to_json(chain.decimals, cursors, lists.match, show=chain.show_address))


async def controls(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/controls"))
    cfg = request.app[CFG]
    statuses: dict[str, ChainStatus] = request.app[STATUSES]
    name = request.query.get("chain")
    chains = [v.chain_of(cfg, name)] if name else list(cfg.chains)
    out = []
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        for c in chains:
            view = await cq.chain_controls(conn, c.name, c.decimals, c.first_height, c.control_contracts())
            st = statuses.get(c.name)
            out.append(view.to_json(st.control_check if st is not None else None, show=c.show_address))
    return json_response({"chains": out})


async def reserves_handler(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/reserves"))
    provider, feed = request.app[RESERVES], request.app[ORACLE]
    body = snapshot_json(provider() if provider is not None else None)
    body["oracle"] = oracle_json(feed() if feed is not None else None)
    return json_response(body)


async def control_events(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/control-events"))
    cfg = request.app[CFG]
    cursors = request.app[CURSORS]
    f, limit, after = control_filter(cfg, request.query, cursors)
    chain = cfg.chain(f.chain)
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        page_ = await cq.control_events(conn, f, limit=limit, after=after)
    labels = {a: label for a, label, _ in chain.control_contracts()}
    return json_response(page_.to_json(labels, chain.decimals, cursors, show=chain.show_address))


async def tx(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/tx/{chain}/{hash}"))
    cfg = request.app[CFG]
    chain = v.chain_of(cfg, request.match_info["chain"])
    tx_hash = v.tx_hash_for(chain, request.match_info["hash"])
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        view = await q.tx(conn, chain.name, tx_hash)
    if not view.events:
        return json_response(
            {
                "error": f"no token events for transaction {tx_hash} on {chain.name} (as of block {view.as_of.block})"
            },
            status=404,
        )
    return json_response(view.to_json(chain.decimals, show=chain.show_address))


async def status(request: web.Request) -> web.Response:
    v.only_params(request, set())
    cfg, store = request.app[CFG], request.app[STORE]
    statuses: dict[str, ChainStatus] = request.app[STATUSES]
    cursors = await store.cursors()
    coverage = {c.name: await store.coverage(c.name) for c in cfg.chains}
    now = time.time()
    out = []
    for c in cfg.chains:
        st = statuses.get(c.name)
        cur = cursors.get(c.name)
        item: dict[str, Any] = {
            "chain": c.name,
            "kind": c.kind,
            "head": st.head if st else None,
            "indexed": cur["indexed_number"] if cur else None,
            "finalized": cur["finalized_number"] if cur else None,
            "chain_finalized": st.finalized if st else None,
            "lag_seconds": round(st.lag_seconds(now), 3) if st else None,
            "state": st.state(now).value if st else ("unknown" if cur is None else "not_followed"),
            "updated_at": cur["updated_at"].isoformat() if cur else None,
            "coverage": {f.value: cov.to_json(c.first_height) for f, cov in coverage[c.name].items()},
        }
        if st:
            item["last_error"] = st.last_error
            item["halted_reason"] = st.halted_reason
            item["supply_mismatch_raw"] = None if st.mismatch is None else str(st.mismatch)
            item["supply_check_block"] = st.mismatch_block
            item["restarts"] = st.restarts
            item["indexes_deferred"] = st.indexes_deferred
            item["audit"] = st.audit
            item["range_audit"] = st.range_audit
        out.append(item)
    return json_response({"chains": out})


async def account(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/accounts/{chain}/{address}"))
    cfg = request.app[CFG]
    chain = v.chain_of(cfg, request.match_info["chain"])
    address = v.address_for(chain, request.match_info["address"])
    block = v.height(request.query.get("block"), "block")
    try:
        async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
            view = await q.account(conn, chain, address, block)
    except q.NotIndexed as exc:
        raise v.BadRequest(str(exc)) from None
    return json_response(view.to_json(show=chain.show_address))


async def reorgs(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/v1/reorgs"))
    cfg = request.app[CFG]
    chain = request.query.get("chain") or None
    if chain is not None:
        v.chain_of(cfg, chain)
    limit = v.bounded_int(request.query.get("limit"), "limit", 100, 1, 1000)
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        rows = await q.reorgs(conn, chain, limit)
    return json_response({"reorgs": rows})


async def depegs(request: web.Request) -> web.Response:
    """Depeg episodes, newest first; `format=csv` gives the same rows as CSV (the next page's
    cursor in the `X-Next-Cursor` header)."""
    v.only_params(request, openapi.allowed("/api/v1/depegs"))
    cfg, cursors = request.app[CFG], request.app[CURSORS]
    fmt = v.choice(request.query.get("format"), "format", ("json", "csv"), "json")
    f, limit, after = depeg_filter(cfg, request.query, cursors)
    async with q.snapshot(_pool(request), timeout_ms=QUERY_TIMEOUT_MS) as conn:
        page_ = await dq.depegs(conn, f, limit=limit, after=after)
    body = page_.to_json(cursors)
    if fmt == "csv":
        headers = {"X-Next-Cursor": body["next_cursor"]} if body["next_cursor"] else None
        return web.Response(
            text=dq.csv_text(body["episodes"]), content_type="text/csv", charset="utf-8", headers=headers
        )
    return json_response(body)


async def static_file(request: web.Request) -> web.StreamResponse:
    path = STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(reason="no such file")
    return web.FileResponse(path)


async def openapi_handler(request: web.Request) -> web.Response:
    v.only_params(request, openapi.allowed("/api/openapi.json"))
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def page(request: web.Request) -> web.StreamResponse:
    """The public transparency page: server-rendered, no JavaScript, cacheable (ETag)."""
    v.only_params(request, set())
    body, etag = await transparency_page(
        request.app[CFG],
        _pool(request),
        request.app[RESERVES],
        request.app[PAGE_CACHE],
        market=request.app[MARKET],
        oracle=request.app[ORACLE],
    )
    headers = {"ETag": etag, "Cache-Control": "public, max-age=15", "Vary": "Accept-Encoding"}
    inm = request.headers.get("If-None-Match", "")
    if etag in {t.strip() for t in inm.split(",")} or inm.strip() == "*":
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)
