"""`GET /api/v1/depegs`, `query depegs` and the page's "Peg history" over real PostgreSQL, with
episodes written the way the daemon writes them (`depeg_queries.upsert`)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml

from indexer.api.app import create_app
from indexer.config import Config
from indexer.daemon import serve_http
from indexer.depegs import Episode
from indexer.metrics import Metrics
from indexer.store import depeg_queries as dq
from indexer.store.store import Store
from tests.support import api_data

pytestmark = pytest.mark.integration
T = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
D = Decimal
VENUES = [
    {"name": "dex", "kind": "orderbook", "exchange": "binance", "url": "https://example.invalid/dex"},
    {"name": "cex", "kind": "orderbook", "exchange": "kraken", "url": "https://example.invalid/cex"},
]


def h(hours: float) -> datetime:
    return T + timedelta(hours=hours)


# (scope, venue, start h, peak bps, peak h, end h | None)
EPISODES = [
    ("venue", "dex", 0, D("-54.03"), 0.05, 0.1),  # the February wick: ~54 bps for minutes
    ("venue", "cex", 1, D("-220"), 3, 10),
    ("venue", "dex", 1.5, D("-310.5"), 3, 9),
    ("aggregate", None, 1.5, D("-265.25"), 3, 9),
    ("venue", "cex", 20, D("75"), 21, None),  # still open
]


@dataclass
class Live:
    base: str
    cfg: dict[str, Any]


@pytest.fixture
async def live(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> AsyncIterator[Live]:
    eps = [
        Episode(s, v, h(a), peak, peak, h(p), None if e is None else h(e), None if e is None else D(1))  # type: ignore[arg-type]
        for s, v, a, peak, p, e in EPISODES
    ]
    async with pool.acquire() as conn:
        await dq.upsert(conn, eps)
    cfg_dict = {**api_data.config_dict(dsn, tmp_path), "venues": VENUES}
    app = create_app(Config.model_validate(cfg_dict), Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield Live(f"http://127.0.0.1:{port}", cfg_dict)


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params or None) as r:
        if r.headers.get("Content-Type", "").startswith("application/json"):
            return r.status, await r.json()
        return r.status, await r.text()


def starts(body: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["venue"], e["started_at"]) for e in body["episodes"]]


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def test_filters_pages_and_csv(live: Live) -> None:
    url = f"{live.base}/api/v1/depegs"
    async with aiohttp.ClientSession() as http:
        status, body = await get(http, url)
        assert status == 200, body
        assert starts(body) == [
            ("cex", iso(h(20))),
            (None, iso(h(1.5))),  # same start: the later row (the daemon writes the venue first) first
            ("dex", iso(h(1.5))),
            ("cex", iso(h(1))),
            ("dex", iso(h(0))),
        ]
        wick = body["episodes"][-1]
        assert wick == {
            "id": wick["id"],
            "scope": "venue",
            "venue": "dex",
            "started_at": iso(h(0)),
            "start_bps": "-54.03",
            "peak_bps": "-54.03",
            "peak_at": iso(h(0.05)),
            "ended_at": iso(h(0.1)),
            "end_bps": "1",
            "duration_seconds": "360",
            "open": False,
        }
        opened = body["episodes"][0]
        assert opened["open"] and opened["ended_at"] is None
        assert D(opened["duration_seconds"]) > 0  # so far, up to as_of

        _, only_dex = await get(http, url, venue="dex")
        assert [e["venue"] for e in only_dex["episodes"]] == ["dex", "dex"]
        _, agg = await get(http, url, scope="aggregate")
        assert [e["peak_bps"] for e in agg["episodes"]] == ["-265.25"]
        _, still = await get(http, url, open="true")
        assert starts(still) == [("cex", iso(h(20)))]
        _, closed = await get(http, url, open="false")
        assert len(closed["episodes"]) == 4
        # Active within [2h, 5h): the three episodes of the run, not the wick nor the later one.
        _, window = await get(http, url, since=iso(h(2)), until=iso(h(5)))
        assert starts(window) == [(None, iso(h(1.5))), ("dex", iso(h(1.5))), ("cex", iso(h(1)))]

        # Pages of 2 walk the same list.
        seen: list[tuple[str | None, str]] = []
        cursor: str | None = None
        for _ in range(10):
            status, page = await get(http, url, limit="2", **({"cursor": cursor} if cursor else {}))
            assert status == 200 and len(page["episodes"]) <= 2
            seen += starts(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == starts(body)
        # A cursor is bound to its filters.
        _, first = await get(http, url, limit="1")
        status, err = await get(http, url, limit="1", venue="dex", cursor=first["next_cursor"])
        assert status == 400 and "different filters" in err["error"]

        async with http.get(url, params={"format": "csv", "limit": "2"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert r.headers["X-Next-Cursor"]
            rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert list(rows[0]) == list(dq.COLUMNS)
        assert [(x["venue"], x["open"], x["ended_at"]) for x in rows] == [
            ("cex", "true", ""),
            ("", "false", iso(h(9))),
        ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"venue": "nope"}, "unknown venue 'nope'; known: dex, cex"),
        ({"open": "yes"}, "invalid open 'yes': expected one of true, false"),
        ({"scope": "global"}, "invalid scope 'global': expected one of venue, aggregate"),
        ({"venue": "dex", "scope": "aggregate"}, "venue and scope=aggregate exclude each other"),
        ({"since": "yesterday"}, "invalid since 'yesterday'"),
        ({"since": "2026-02-11", "until": "2026-02-10"}, "since must be before until"),
        ({"limit": "0"}, "limit must be between 1 and 1000"),
        ({"cursor": "garbage!"}, "invalid cursor"),
        ({"format": "xml"}, "invalid format 'xml'"),
        ({"chain": "devnet"}, "unknown query parameter(s) 'chain'"),
    ],
)
async def test_bad_input_is_a_clear_400(live: Live, params: dict[str, str], message: str) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await get(http, f"{live.base}/api/v1/depegs", **params)
    assert status == 400 and message in body["error"], body


async def test_page_shows_peg_history(live: Live) -> None:
    async with aiohttp.ClientSession() as http:
        status, html = await get(http, f"{live.base}/")
    assert status == 200
    assert '<h2 id="peg-history">Peg history</h2>' in html
    table = html.split('<table id="depegs"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-id=") == len(EPISODES)
    assert 'data-bps="-54.03"' in table and "6 min" in table and "-54.0<" in table
    assert "all venues" in table
    assert table.count('<span class="warn">open</span>') == 1 and table.count("recovered") == 4


def test_query_depegs_prints_what_the_api_serves(live: Live, tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(live.cfg))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "indexer.cli_query", "depegs", *args, "--config", str(cfg_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("--all", "--limit", "2", "--format", "json")
    assert r.returncode == 0, r.stderr
    body = orjson.loads(r.stdout)
    assert [e["peak_bps"] for e in body["episodes"]] == ["75", "-265.25", "-310.5", "-220", "-54.03"]
    r = cli("--venue", "dex", "--open", "false", "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["venue"], x["peak_bps"], x["duration_seconds"], x["open"]) for x in rows] == [
        ("dex", "-310.5", "27000", "false"),
        ("dex", "-54.03", "360", "false"),
    ]
    r = cli("--scope", "aggregate")
    assert r.returncode == 0 and "-265.25" in r.stdout, r.stderr
    r = cli("--venue", "nope")
    assert r.returncode == 2 and "unknown venue 'nope'" in r.stderr
