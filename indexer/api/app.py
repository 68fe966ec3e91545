"""The aiohttp application: health, metrics, JSON API.

Amounts are strings: `raw` integer base units and `amount` exact decimal. Every answer says which
finality it reflects and as of which block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indexer.api import validate as v
from indexer.config import Config
from indexer.http_json import json_response
from indexer.metrics import Metrics
from indexer.store.store import Store
from indexer.sync.status import ChainStatus
from indexer.units import amount_json

log = structlog.get_logger(__name__)

CFG = web.AppKey("cfg", Config)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
STATUSES = web.AppKey("statuses", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """User errors are 400 JSON; unexpected ones are a logged 500 with no stack trace."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type != "application/json" and exc.status >= 400:
            return json_response({"error": exc.reason}, status=exc.status)
        raise
    except Exception:
        log.exception("http_handler_failed", path=request.path)
        return json_response({"error": "internal error"}, status=500)


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
) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, cors_middleware])
    app[CFG] = cfg
    app[STORE] = store
    app[METRICS] = metrics
    app[STATUSES] = dict(statuses or {})
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/v1/supply", supply)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/accounts/{chain}/{address}", account)
    app.router.add_get("/api/v1/reorgs", reorgs)
    return app


async def healthz(request: web.Request) -> web.Response:
    v.only_params(request, set())
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    statuses: dict[str, ChainStatus] = request.app[STATUSES]
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
    registry = request.app[METRICS].registry
    # Rendering costs ~10 ms per 1,000 series: keep it off the event loop.
    body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _chain_supply(
    store: Store, name: str, decimals: int, cursor: Mapping[str, Any] | None
) -> dict[str, Any]:
    if cursor is None:
        empty = {"block": None, **amount_json(0, decimals)}
        return {"chain": name, "finalized": empty, "head": empty, "decimals": decimals}
    head_block = cursor["indexed_number"]
    fin_block = cursor["finalized_number"]
    head = await store.supply_at(name, head_block)
    fin = await store.supply_at(name, fin_block)
    return {
        "chain": name,
        "decimals": decimals,
        "finalized": {"block": fin_block, **amount_json(fin.supply, decimals)},
        "head": {
            "block": head_block,
            "block_hash": cursor["indexed_hash"],
            **amount_json(head.supply, decimals),
        },
    }


async def supply(request: web.Request) -> web.Response:
    v.only_params(request, set())
    cfg, store = request.app[CFG], request.app[STORE]
    cursors = await store.cursors()
    chains = [await _chain_supply(store, c.name, c.decimals, cursors.get(c.name)) for c in cfg.chains]
    # Chains can differ in decimals: the total is expressed in the largest precision.
    dp = max(c.decimals for c in cfg.chains)
    total_fin = sum(int(c["finalized"]["raw"]) * 10 ** (dp - c["decimals"]) for c in chains)
    total_head = sum(int(c["head"]["raw"]) * 10 ** (dp - c["decimals"]) for c in chains)
    return json_response(
        {
            "token": cfg.token.symbol,
            "chains": chains,
            "total": {
                "decimals": dp,
                "finalized": amount_json(total_fin, dp),
                "head": amount_json(total_head, dp),
            },
        }
    )


async def status(request: web.Request) -> web.Response:
    v.only_params(request, set())
    cfg, store = request.app[CFG], request.app[STORE]
    statuses: dict[str, ChainStatus] = request.app[STATUSES]
    cursors = await store.cursors()
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
        }
        if st:
            item["last_error"] = st.last_error
            item["halted_reason"] = st.halted_reason
            item["supply_mismatch_raw"] = None if st.mismatch is None else str(st.mismatch)
            item["supply_check_block"] = st.mismatch_block
            item["restarts"] = st.restarts
        out.append(item)
    return json_response({"chains": out})


async def account(request: web.Request) -> web.Response:
    v.only_params(request, {"block"})
    cfg, store = request.app[CFG], request.app[STORE]
    chain = v.chain_of(cfg, request.match_info["chain"])
    address = v.address_for(chain, request.match_info["address"])
    block = v.height(request.query.get("block"), "block")
    cursor = (await store.cursors()).get(chain.name)
    if cursor is None:
        raise v.BadRequest(f"chain {chain.name} has not been indexed yet")
    head_block, fin_block = cursor["indexed_number"], cursor["finalized_number"]
    body: dict[str, Any] = {
        "chain": chain.name,
        "address": address,
        "finalized": {
            "block": fin_block,
            **amount_json(await store.balance(chain.name, address, fin_block), chain.decimals),
        },
        "head": {
            "block": head_block,
            **amount_json(await store.balance(chain.name, address), chain.decimals),
        },
    }
    if block is not None:
        if block > head_block:
            raise v.BadRequest(f"block {block} is above the indexed head {head_block}")
        body["at"] = {
            "block": block,
            "finality": "finalized" if block <= fin_block else "head",
            **amount_json(await store.balance(chain.name, address, block), chain.decimals),
        }
    return json_response(body)


async def reorgs(request: web.Request) -> web.Response:
    v.only_params(request, {"chain", "limit"})
    cfg, store = request.app[CFG], request.app[STORE]
    chain = request.query.get("chain")
    if chain is not None:
        v.chain_of(cfg, chain)
    limit = v.height(request.query.get("limit"), "limit") or 100
    if limit > 1000:
        raise v.BadRequest("limit must be at most 1000")
    rows = await store.reorgs(chain, limit)
    return json_response(
        {
            "reorgs": [
                {
                    "chain": r["chain"],
                    "detected_at": r["detected_at"].isoformat(),
                    "depth": r["depth"],
                    "ancestor": {"block": r["ancestor_number"], "hash": r["ancestor_hash"]},
                    "old_tip": {"block": r["old_tip_number"], "hash": r["old_tip_hash"]},
                    "new_tip": {"block": r["new_tip_number"], "hash": r["new_tip_hash"]},
                    "orphaned_events": r["orphaned_events"],
                    "orphaned_blocks": r["orphaned_blocks"],
                }
                for r in rows
            ]
        }
    )
