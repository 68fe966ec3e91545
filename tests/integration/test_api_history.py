"""History API against the devnet's ground truth: anvil's own logs, balanceOf and totalSupply.

The real follower indexes random traffic (with reorgs) on anvil; then every page of
/api/v1/transfers is walked and compared with the chain's Transfer logs, and the tx, account,
supply and supply-history answers with the token's own view at the same blocks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from indexer.api.app import create_app
from indexer.daemon import serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import open_runtime
from indexer.sync.supervisor import Supervisor
from indexer.units import to_decimal_str
from tests.integration.test_evm_pipeline import CHAIN, make_config, wait_for
from tests.support.chain_truth import EventKey, chain_transfer_events

pytestmark = pytest.mark.integration


def key(ev: dict[str, Any]) -> EventKey:
    return (
        ev["block_hash"],
        ev["tx_hash"],
        ev["log_index"],
        ev["kind"],
        ev["from"],
        ev["to"],
        int(ev["raw"]),
    )


async def walk(http: aiohttp.ClientSession, url: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a transfers query, following next_cursor."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        async with http.get(url, params=q) as r:
            body = await r.json()
            assert r.status == 200, body
        assert len(body["transfers"]) <= int(params.get("limit", "100"))
        out.extend(body["transfers"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("pagination never ended")


async def canonical_blocks(anvil: Anvil, head: int) -> tuple[dict[int, int], dict[str, int]]:
    """(number -> timestamp, hash -> number) of the canonical chain."""
    blocks = await asyncio.gather(
        *(anvil.rpc("eth_getBlockByNumber", [hex(n), False]) for n in range(head + 1))
    )
    return (
        {int(b["number"], 16): int(b["timestamp"], 16) for b in blocks},
        {b["hash"]: int(b["number"], 16) for b in blocks},
    )


@pytest.fixture
async def indexed(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Any
) -> AsyncIterator[tuple[str, Any, int, int]]:
    """Traffic with reorgs, indexed live by the real follower; yields (base_url, runtime, head, fin)
    with the chain frozen (head > finalized, so both finalities are present)."""
    cfg = make_config(anvil.url, token.address, dsn, tmp_path)
    rng = random.Random(11)
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        status = rt.statuses[CHAIN]
        try:
            for i in range(45):
                await traffic.step()
                if i % 15 == 14:
                    tip = await anvil.block_number()
                    await wait_for(lambda tip=tip: status.indexed >= tip, 10, "follower to reach the tip")
                    await traffic.reorg(rng.randint(1, 3))
            await anvil.mine(6)  # new heights: reaching them means the last reorg was followed
            head = await anvil.block_number()
            await wait_for(
                lambda: status.indexed == head and status.indexed_finalized >= head - 4, 20, "follower"
            )
        finally:
            stop.set()
            await task
        fin = status.indexed_finalized
        assert fin < head
        app = create_app(cfg, rt.store, rt.metrics, rt.statuses)
        async with serve_http(app, "127.0.0.1", 0) as port:
            yield f"http://127.0.0.1:{port}", rt, head, fin


async def test_history_api_matches_chain(
    indexed: tuple[str, Any, int, int], anvil: Anvil, token: TestToken, traffic: Traffic
) -> None:
    base, _rt, head, fin = indexed
    truth = await chain_transfer_events(anvil, token.address, head)
    assert {k[3] for k in truth} == {"mint", "burn", "transfer"}
    times, numbers = await canonical_blocks(anvil, head)
    by_block = {k: numbers[k[0]] for k in truth}
    url = f"{base}/api/v1/transfers"
    async with aiohttp.ClientSession() as http:
        # Every page, both orders, small pages: exactly the chain's set, no duplicates, in order.
        for order in ("desc", "asc"):
            got = await walk(http, url, {"chain": CHAIN, "limit": "7", "order": order})
            keys = [key(e) for e in got]
            assert len(keys) == len(set(keys)), "a row appeared on two pages"
            assert set(keys) == truth
            pos = [(e["block_number"], e["log_index"], e["tx_hash"]) for e in got]
            assert pos == sorted(pos, reverse=order == "desc")
            for e in got:
                assert e["finalized"] == (e["block_number"] <= fin)
                assert e["block_time"] == datetime.fromtimestamp(
                    times[e["block_number"]], UTC
                ).isoformat().replace("+00:00", "Z")

        # Address filter (sender or receiver), kinds, block range, time range, amount.
        holder = traffic.holders[0].lower()
        got = await walk(http, url, {"chain": CHAIN, "address": traffic.holders[0], "limit": "3"})
        assert {key(e) for e in got} == {k for k in truth if holder in (k[4], k[5])}
        got = await walk(http, url, {"chain": CHAIN, "kind": "mint,burn", "limit": "50"})
        assert {key(e) for e in got} == {k for k in truth if k[3] in ("mint", "burn")}
        lo, hi = head // 3, 2 * head // 3
        got = await walk(http, url, {"chain": CHAIN, "from_block": str(lo), "to_block": str(hi)})
        assert {key(e) for e in got} == {k for k in truth if lo <= by_block[k] <= hi}
        t_lo, t_hi = times[lo], times[hi] + 1
        got = await walk(http, url, {"chain": CHAIN, "since": str(t_lo), "until": str(t_hi), "limit": "5"})
        assert {key(e) for e in got} == {k for k in truth if t_lo <= times[by_block[k]] < t_hi}
        amounts = sorted(k[6] for k in truth)
        median = amounts[len(amounts) // 2]
        got = await walk(http, url, {"chain": CHAIN, "min_amount": to_decimal_str(median, 18)})
        assert {key(e) for e in got} == {k for k in truth if k[6] >= median}

        # A cursor is bound to its filters.
        async with http.get(url, params={"chain": CHAIN, "limit": "2"}) as r:
            cursor = (await r.json())["next_cursor"]
        async with http.get(
            url, params={"chain": CHAIN, "limit": "2", "kind": "mint", "cursor": cursor}
        ) as r:
            assert r.status == 400
            assert "different filters" in (await r.json())["error"]

        # /tx: all token events of a transaction (batch mints have several).
        by_tx: dict[str, set[EventKey]] = {}
        for k in truth:
            by_tx.setdefault(k[1], set()).add(k)
        for tx_hash in sorted(by_tx, key=lambda h: -len(by_tx[h]))[:5]:
            async with http.get(f"{base}/api/v1/tx/{CHAIN}/{tx_hash}") as r:
                body = await r.json()
                assert r.status == 200, body
            assert {key(e) for e in body["events"]} == by_tx[tx_hash]
            assert body["as_of"] == {**body["as_of"], "block": head, "finalized_block": fin}
        async with http.get(f"{base}/api/v1/tx/{CHAIN}/0x{'ab' * 32}") as r:
            assert r.status == 404
            assert "error" in await r.json()

        # Accounts: the token's own balanceOf at the finalized block, the head and a past block.
        mid = (fin + 1) // 2
        for h in traffic.holders[:6]:
            async with http.get(f"{base}/api/v1/accounts/{CHAIN}/{h}", params={"block": str(mid)}) as r:
                body = await r.json()
            assert int(body["finalized"]["raw"]) == await token.balance_of(h, fin)
            assert int(body["head"]["raw"]) == await token.balance_of(h, head)
            assert int(body["at"]["raw"]) == await token.balance_of(h, mid)
            assert body["at"]["finality"] == "finalized"

        # Supply now and over time: totalSupply() at the last block of each bucket.
        async with http.get(f"{base}/api/v1/supply") as r:
            supply = await r.json()
            assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert int(supply["total"]["finalized"]["raw"]) == await token.total_supply(fin)
        assert int(supply["total"]["head"]["raw"]) == await token.total_supply(head)
        first, last = min(times.values()), max(times.values())
        async with http.get(
            f"{base}/api/v1/supply/history",
            params={"chain": CHAIN, "since": str(first), "until": str(last + 1), "interval": "1m"},
        ) as r:
            hist = await r.json()
            assert r.status == 200, hist
        points = hist["chains"][0]["points"]
        assert points
        for pt in points:
            end = datetime.fromisoformat(pt["end"].replace("Z", "+00:00")).timestamp()
            at_block = max(n for n, t in times.items() if t < end)
            assert int(pt["raw"]) == await token.total_supply(at_block), pt
        assert int(points[-1]["raw"]) == await token.total_supply(head)
        assert hist["chains"][0]["as_of"]["block"] == head
        assert hist["chains"][0]["as_of"]["finalized_block"] == fin

        # The page: 200 with an ETag, then 304 for the same ETag; the figure matches the API.
        async with http.get(f"{base}/") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/html")
            etag = r.headers["ETag"]
            html = await r.text()
        assert f'data-amount="{supply["total"]["finalized"]["amount"]}"' in html
        async with http.get(f"{base}/", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""
