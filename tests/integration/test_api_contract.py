"""The API's contract on a live app over real PostgreSQL (synthetic history written through
`Store.commit`): hostile inputs are 400s, the OpenAPI document matches the handlers (schemathesis),
a SELECT-only role is enough, and the `query` CLI prints exactly what the API serves."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from yarl import URL

from indexer.api import openapi
from indexer.api.app import create_app
from indexer.config import Config
from indexer.daemon import serve_http
from indexer.metrics import Metrics
from indexer.model import ControlKind
from indexer.store.store import Store
from indexer.sync.supply_classes import SupplyClassesExporter
from indexer.units import amount_json, to_decimal_str, to_float
from tests.support import api_data
from tests.support.api_data import Synthetic

pytestmark = pytest.mark.integration
CHAIN = "devnet"
ADDR = "0x" + "01" * 20
T0 = api_data.T0
ISO0 = datetime.fromtimestamp(T0, UTC).isoformat()  # YYYY-MM-DDT00:00:00+00:00


@dataclass
class Live:
    base: str
    syn: Synthetic
    dsn: str
    pool: asyncpg.Pool
    cfg_dict: dict[str, Any]


@pytest.fixture
async def live(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> AsyncIterator[Live]:
    syn = await api_data.load(pool, CHAIN)
    cfg = api_data.config(dsn, tmp_path)
    app = create_app(cfg, Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield Live(f"http://127.0.0.1:{port}", syn, dsn, pool, api_data.config_dict(dsn, tmp_path))


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params or None) as r:
        body = await r.read()
        ctype = r.headers.get("Content-Type", "")
        return r.status, orjson.loads(body) if ctype.startswith("application/json") else body


def forged_cursor(*items: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).decode().rstrip("=")


HOSTILE = [
    "' OR 1=1 --",
    "1; DROP TABLE events; --",
    "99999999999999999999999999999999999999",
    "-1",
    "1e9",
    "0x",
    "²",
    "١٢٣",
    "\uff11\uff12",
    "\x00",
    "%00",
    "a\nb",
    "😀" * 10,
    "x" * 5000,
    "NaN",
    "Infinity",
    "[]",
    "{}",
    " 5",
]


# Odd-looking but legitimate: 10^38 tokens is below 2^256 base units.
VALID = {("min_amount", "99999999999999999999999999999999999999")}


async def test_hostile_inputs_are_400(live: Live) -> None:
    base = live.base
    url = f"{base}/api/v1/transfers"
    async with aiohttp.ClientSession() as http:
        # Every parameter of every route, with every hostile value: 400 with {"error": ...}.
        routes = {
            "/api/v1/transfers": [
                "chain",
                "address",
                "kind",
                "from_block",
                "to_block",
                "since",
                "until",
                "min_amount",
                "limit",
                "order",
                "cursor",
            ],
            "/api/v1/supply/history": ["chain", "since", "until", "interval"],
            "/api/v1/supply/at": ["time"],
            f"/api/v1/accounts/{CHAIN}/{ADDR}": ["block"],
            "/api/v1/reorgs": ["chain", "limit"],
            "/api/v1/controls": ["chain"],
            "/api/v1/control-events": [
                "chain",
                "kind",
                "address",
                "since",
                "until",
                "limit",
                "order",
                "cursor",
            ],
            "/api/v1/depegs": ["venue", "scope", "since", "until", "open", "limit", "cursor", "format"],
        }
        for path, names in routes.items():
            for name in names:
                for value in HOSTILE:
                    params = {name: value}
                    if path.endswith(("transfers", "control-events")) and name != "chain":
                        params["chain"] = CHAIN
                    status, body = await get(http, base + path, **params)
                    if (name, value) in VALID:
                        assert status == 200, (path, name, value, body)
                        continue
                    assert status == 400, (path, name, value, body)
                    assert isinstance(body, dict) and isinstance(body["error"], str)
                    assert "Traceback" not in body["error"]
        for path in [f"/api/v1/tx/{CHAIN}/", f"/api/v1/accounts/{CHAIN}/", "/api/v1/tx/nochain/"]:
            for value in HOSTILE:
                async with http.get(base + path + value.replace("/", "%2F")) as r:
                    assert r.status in (400, 404), (path, value)
                    assert "error" in await r.json()

        # Static files by name only: long, odd or climbing paths are a 404 (the file system never sees them).
        for path in [
            "/static/" + "a" * 300,
            "/static/" + quote("é" * 200),
            "/static/..%2Fpyproject.toml",
            "/static/%00",
            "/static/a/b",
        ]:
            async with http.get(URL(base + path, encoded=True)) as r:
                assert r.status == 404, path
                assert "error" in await r.json()
        async with http.get(f"{base}/static/favicon.svg") as r:
            assert r.status == 200 and r.content_type == "image/svg+xml"

        # Specific refusals.
        bad = [
            ({"chain": CHAIN, "bogus": "1"}, "unknown query parameter"),
            ({"chain": "nope"}, "unknown chain"),
            ({}, "chain is required"),
            ({"chain": CHAIN, "limit": "0"}, "limit"),
            ({"chain": CHAIN, "limit": "1001"}, "limit"),
            ({"chain": CHAIN, "kind": "mint,steal"}, "invalid kind"),
            ({"chain": CHAIN, "from_block": "10", "to_block": "9"}, "from_block"),
            ({"chain": CHAIN, "since": "2025-02-01", "until": "2025-01-01"}, "since"),
            ({"chain": CHAIN, "since": "2025-13-01"}, "invalid since"),
            ({"chain": CHAIN, "min_amount": "0.0000000000000000001"}, "decimal places"),
            ({"chain": CHAIN, "min_amount": "9" * 78}, "uint256"),
            ({"chain": CHAIN, "address": "0x" + "g" * 40}, "invalid address"),
            ({"chain": CHAIN, "cursor": "!!!"}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(1, "x", 1, 1, "0x1")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(1, "x", 1, 1, "0x1\x00")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(1, "x", 1, 2**31, "0x1")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(1, "x", -1, 1, "0x1")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(1, "x", 2**70, 1, "0x1")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor(2, "x", 1, 1, "0x1")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": forged_cursor("a", "b")}, "invalid cursor"),
            ({"chain": CHAIN, "cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "invalid cursor"),
        ]
        # A genuine cursor: refused with other filters, and once altered in any way.
        status, first = await get(http, url, chain=CHAIN, limit="1", order="asc")
        genuine = first["next_cursor"]
        assert status == 200 and genuine
        status, body = await get(http, url, chain=CHAIN, limit="1", order="asc", cursor=genuine)
        assert status == 200 and body["transfers"] != first["transfers"]
        bad.append(({"chain": CHAIN, "cursor": genuine}, "different filters"))
        flipped = "A" if genuine[5] != "A" else "B"
        bad.append(
            (
                {"chain": CHAIN, "order": "asc", "cursor": genuine[:5] + flipped + genuine[6:]},
                "invalid cursor",
            )
        )
        bad.append(({"chain": CHAIN, "order": "asc", "cursor": genuine + "AA"}, "invalid cursor"))
        for params, fragment in bad:
            status, body = await get(http, url, **params)
            assert status == 400, (params, body)
            assert fragment in body["error"], (params, body)
        async with http.get(f"{url}?chain={CHAIN}&limit=1&limit=2") as r:
            assert r.status == 400
            assert "more than once" in (await r.json())["error"]
        hist = f"{base}/api/v1/supply/history"
        for params, fragment in [
            ({"interval": "0m"}, "out of range"),
            ({"interval": "1s"}, "invalid interval"),
            ({"interval": "1m", "since": "2020-01-01", "until": "2021-01-01"}, "range too long"),
            ({"since": "1700000000", "until": "1600000000"}, "since must be before"),
            ({"since": "3000-01-01"}, "invalid since"),
        ]:
            status, body = await get(http, hist, **params)
            assert status == 400 and fragment in body["error"], (params, body)
        status, body = await get(http, f"{base}/api/v1/accounts/sol/{ADDR}")
        assert status == 400 and "invalid address" in body["error"]
        status, body = await get(http, f"{base}/api/v1/accounts/{CHAIN}/{ADDR}", block=str(10**9))
        assert status == 400 and "above the indexed head" in body["error"]

        # CORS: open for GETs of the API, nothing for other methods.
        async with http.get(f"{base}/api/v1/supply") as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
        async with http.post(f"{base}/api/v1/supply") as r:
            assert r.status == 405
            assert "Access-Control-Allow-Origin" not in r.headers


def _route_cases(genuine: str) -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """(path, query) for every route: documented parameters with hostile or plausible values,
    path segments likewise (percent-encoded), now and then an unknown parameter."""
    hostile = st.one_of(
        st.text(max_size=80),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
        st.integers(-(2**80), 2**80).map(str),
        st.sampled_from(HOSTILE),
        st.sampled_from([CHAIN, "sol", ADDR, "0x" + "ab" * 32, genuine, genuine[:-1], genuine + "A"]),
        st.builds(
            lambda i, c: genuine[:i] + c + genuine[i + 1 :], st.integers(0, len(genuine) - 1), st.characters()
        ),
    )
    segment = hostile.map(lambda t: quote(t, safe="") or "x")
    routes = sorted(set(openapi.QUERY_PARAMS) | {"/", "/readyz", "/metrics", "/static/{name}"})

    @st.composite
    def case(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
        route = draw(st.sampled_from(routes))
        path = re.sub(r"\{[a-z]+\}", lambda _m: draw(segment), route)
        names = sorted(openapi.allowed(route)) if route in openapi.QUERY_PARAMS else []
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=4)) if names else []
        query = {n: draw(hostile) for n in chosen}
        if draw(st.booleans()) and route == "/api/v1/transfers":
            query.setdefault("chain", CHAIN)
        if draw(st.integers(0, 9)) == 0:
            query[draw(st.text(min_size=1, max_size=10))] = draw(hostile)
        return path, query

    return case()


async def test_fuzzed_routes_never_5xx(live: Live) -> None:
    """Every route, every parameter (query and path), hostile values, genuine and mangled
    cursors, on the real app over real PostgreSQL: never a 5xx, errors are JSON."""
    async with aiohttp.ClientSession() as http:
        _, first = await get(http, f"{live.base}/api/v1/transfers", chain=CHAIN, limit="2")
        genuine = first["next_cursor"]
        assert genuine
        batch: list[tuple[str, dict[str, str]]] = []

        @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(_route_cases(genuine))
        def collect(c: tuple[str, dict[str, str]]) -> None:
            batch.append(c)

        collect()
        statuses: set[int] = set()
        for path, query in batch:
            url = (
                URL(live.base + path, encoded=True).update_query(query)
                if query
                else URL(live.base + path, encoded=True)
            )
            async with http.get(url) as r:
                body = await r.read()
            statuses.add(r.status)
            ready = path == "/readyz" and r.status == 503  # its contract: not ready (no chain followed here)
            assert r.status < 500 or ready, (path, query, r.status, body[:300])
            if r.status >= 400 and not ready and len(str(url)) < 8000:  # longer: aiohttp's own plain-text 400
                assert "error" in orjson.loads(body), (path, query, body[:300])
        assert {200, 400, 404} <= statuses, statuses


async def test_openapi_schemathesis(live: Live) -> None:
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    async with aiohttp.ClientSession() as http:
        status, doc = await get(http, f"{live.base}/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.0")
    for path in (
        "/api/v1/supply/history",
        "/api/v1/transfers",
        "/api/v1/tx/{chain}/{hash}",
        "/api/openapi.json",
    ):
        assert path in doc["paths"]
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(doc)
    calls: list[int] = []

    def run() -> None:
        for result in schema.get_all_operations():
            op = result.ok()
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                @settings(
                    max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
                )
                @given(op.as_strategy(mode))
                def check(case: Any) -> None:
                    response = case.call_and_validate(base_url=live.base, checks=checks)
                    calls.append(response.status_code)

                try:
                    check()
                except Unsatisfiable:
                    # No parameter to make invalid (e.g. /healthz): nothing negative to send.
                    assert mode == schemathesis.GenerationMode.NEGATIVE

    # The app serves on this event loop; schemathesis's blocking client runs in a thread.
    await asyncio.to_thread(run)
    assert len(calls) > 100
    assert 200 in calls and 400 in calls


async def test_read_only_role_serves_everything(live: Live, pg_dsn: str, tmp_path: Path) -> None:
    """Create a SELECT-only role (as documented) and run the whole API on it."""
    role = f"ro_{uuid.uuid4().hex[:10]}"
    db = live.dsn.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(live.dsn)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'GRANT CONNECT ON DATABASE "{db}" TO "{role}"')
        await admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        await admin.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
        scheme, _, rest = live.dsn.partition("://")
        ro_dsn = f"{scheme}://{role}@{rest.partition('@')[2]}"
        ro_pool = await asyncpg.create_pool(ro_dsn, min_size=1, max_size=2)
        assert ro_pool is not None
        try:
            with pytest.raises(asyncpg.PostgresError):
                await ro_pool.execute("DELETE FROM events")
            cfg = api_data.config(ro_dsn, tmp_path)
            app = create_app(cfg, Store(ro_pool), Metrics())
            paths = [
                "/api/v1/supply",
                "/api/v1/status",
                f"/api/v1/supply/history?interval=1h&since={T0}&until={T0 + 86400}",
                f"/api/v1/supply/at?time={T0 + 50 * api_data.BLOCK_SECONDS}",
                f"/api/v1/transfers?chain={CHAIN}&limit=1000",
                f"/api/v1/transfers?chain={CHAIN}&address={ADDR}&since={ISO0[:11]}05:00:00Z&until={T0 + 9 * 3600}",
                f"/api/v1/tx/{CHAIN}/{live.syn.events[0].tx_hash}",
                f"/api/v1/accounts/{CHAIN}/{ADDR}?block=50",
                "/api/v1/reorgs",
                "/api/v1/controls",
                f"/api/v1/control-events?chain={CHAIN}&kind=frozen,unfrozen",
                "/api/v1/depegs?open=false",
                "/api/openapi.json",
            ]
            async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
                for p in paths:
                    ro_status, ro_body = await get(http, f"http://127.0.0.1:{port}{p}")
                    status, body = await get(http, live.base + p)
                    assert ro_status == status == 200, (p, ro_body)
                    if p.startswith("/api/v1/depegs"):  # as_of: the time of the read
                        assert ro_body.pop("as_of") <= body.pop("as_of")
                    if p.startswith("/api/v1/supply/at"):  # generated_at differs
                        ro_body["provenance"].pop("generated_at")
                        body["provenance"].pop("generated_at")
                    if p != "/api/v1/status":
                        assert ro_body == body, p
                async with http.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 200
                    assert "supply transparency" in await r.text()
        finally:
            await ro_pool.close()
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_supply_classes_match_the_written_history(live: Live) -> None:
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        status, body = await get(http, f"{live.base}/api/v1/supply")
    assert status == 200
    classes = body["chains"][0]["classes"]
    for finality, block in (("finalized", syn.finalized), ("head", syn.head)):
        got, want = classes[finality], syn.classes_at(block)
        assert got["block"] == block
        assert int(got["total"]["raw"]) == want["total"] == int(body["chains"][0][finality]["raw"])
        assert {k: int(v["raw"]) for k, v in got["non_circulating"]["by_label"].items()} == want["by_label"]
        assert int(got["non_circulating"]["raw"]) == sum(want["by_label"].values())
        assert int(got["frozen"]["raw"]) == want["frozen"]
        assert int(got["circulating"]["raw"]) == want["circulating"]
        assert got["circulating"]["amount"] == to_decimal_str(want["circulating"], 18)
    # the data exercise both rules: a labelled frozen account (holder 4, treasury) is counted once,
    # as treasury; holder 5, frozen above the finalized block, is frozen at head only
    assert int(classes["finalized"]["frozen"]["raw"]) == 0
    assert int(classes["head"]["frozen"]["raw"]) == syn.balance_at("0x" + "05" * 20, syn.head) > 0
    assert int(classes["head"]["non_circulating"]["by_label"]["treasury"]["raw"]) > 0
    issuer = classes["head"]["non_circulating"]["by_label"]["issuer"]  # `owner`: holder 2
    assert int(issuer["raw"]) == syn.balance_at(api_data.OWNER, syn.head) > 0


async def test_supply_class_metrics_equal_the_api(live: Live, tmp_path: Path) -> None:
    syn = live.syn
    metrics = Metrics()
    # With the Solana chain not indexed: per-chain classes, but no global circulating figure.
    assert await SupplyClassesExporter(Config.model_validate(live.cfg_dict), live.pool, metrics).refresh()
    value = metrics.registry.get_sample_value
    for finality, block in (("finalized", syn.finalized), ("head", syn.head)):
        want = syn.classes_at(block)
        by_class = {"total": want["total"], "circulating": want["circulating"], "frozen": want["frozen"]}
        for name, raw in {**by_class, **want["by_label"]}.items():
            labels = {"chain": CHAIN, "class": name, "finality": finality}
            assert value("usd1_supply_class_tokens", labels) == to_float(raw, 18), (name, finality)
        assert value("usd1_supply_circulating_total", {"finality": finality}) is None
    only_evm = api_data.config(live.dsn, tmp_path, with_solana=False)
    assert await SupplyClassesExporter(only_evm, live.pool, metrics).refresh()
    for finality, block in (("finalized", syn.finalized), ("head", syn.head)):
        got = value("usd1_supply_circulating_total", {"finality": finality})
        assert got == to_float(syn.classes_at(block)["circulating"], 18)
    # ccip's only chains: devnet (native, its bridge_lock) and, above, the unindexed bridged sol (no gap)
    lock = syn.classes_at(syn.finalized)["by_label"]["bridge_lock"]
    gap = value("usd1_bridge_backing_gap_tokens", {"bridge": "ccip"})
    assert gap == to_float(-lock - 5 * 10**17, 18) and lock > 0


async def test_pages_and_answers_match_the_written_history(live: Live) -> None:
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        got: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"chain": CHAIN, "limit": "13", "order": "asc", **({"cursor": cursor} if cursor else {})}
            status, body = await get(http, f"{live.base}/api/v1/transfers", **params)
            assert status == 200
            got += body["transfers"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [(e["block_number"], e["log_index"], e["tx_hash"]) for e in got] == sorted(syn.keys())
        status, body = await get(http, f"{live.base}/api/v1/supply")
        assert int(body["chains"][0]["finalized"]["raw"]) == syn.supply_at(syn.finalized)
        assert int(body["chains"][0]["head"]["raw"]) == syn.supply_at(syn.head)
        assert body["chains"][1]["as_of"]["block"] is None  # the Solana chain is not indexed
        assert body["chains"][1]["classes"] is None
        ccip = body["bridges"]["ccip"]
        assert (ccip["native_chains"], ccip["bridged_chains"]) == ([CHAIN], ["sol"])
        lock = syn.classes_at(syn.finalized)["by_label"]["bridge_lock"]
        assert ccip["finalized"] == {"minted": None, "locked": amount_json(lock, 18), "gap": None}
        assert body["total"]["circulating"] == {"finalized": None, "head": None}
        # Daily and hourly history: the value at each bucket's end, carried forward.
        status, hist = await get(
            http,
            f"{live.base}/api/v1/supply/history",
            interval="1h",
            since=ISO0[:10],
            until=ISO0[:11] + "23:00Z",
        )
        assert status == 200
        series = hist["chains"][0]["points"]
        assert len(series) == 23 and hist["total"]["points"][0]["raw"] == series[0]["raw"]
        for pt in series:
            end = int(pt["end"][11:13]) * 3600 + T0
            last = max((n for n, t in syn.block_times.items() if t < end), default=0)
            assert int(pt["raw"]) == syn.supply_at(last)
            assert pt["finalized"] == (pt["block"] is None or pt["block"] <= syn.finalized)
        assert hist["chains"][1]["points"][0]["raw"] == "0"


async def test_controls_and_control_events_match_the_written_history(live: Live) -> None:
    """State at head and at the finalized block folded from the stored control events, against
    the synthetic script's answers; every control event once through the pages; cursors of one
    route are refused by the other."""
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        status, body = await get(http, f"{live.base}/api/v1/controls")
        assert status == 200
        c = body["chains"][0]
        assert c["enabled"] and c["coverage"] == {"from_block": 0, "complete": True}
        assert [x["label"] for x in c["contracts"]] == ["token", "proxy_admin"]
        assert body["chains"][1]["enabled"] is False and body["chains"][1]["head"] is None  # Solana
        for at, block in (("head", syn.head), ("finalized", syn.finalized)):
            st = c[at]
            assert st["block"] == block
            assert st["owner"] == syn.last_subject(ControlKind.OWNERSHIP_TRANSFERRED, block) == api_data.OWNER
            assert st["pending_owner"] == syn.last_subject(ControlKind.OWNERSHIP_TRANSFER_STARTED, block)
            assert st["implementation"] == api_data.IMPL and st["admin"] == api_data.PROXY_ADMIN
            assert st["paused"] is False
            frozen = syn.frozen_at(block)
            assert {a["address"] for a in st["frozen"]["accounts"]} == frozen and st["frozen"][
                "count"
            ] == len(frozen)
            assert int(st["frozen"]["raw"]) == sum(syn.balance_at(a, block) for a in frozen)
            last = max(
                (x for x in syn.controls if x.block_number <= block),
                key=lambda x: (x.block_number, x.log_index),
            )
            assert (st["last_change"]["block"], st["last_change"]["kind"]) == (
                last.block_number,
                last.kind.value,
            )
            assert st["watched"][0]["owner"] == api_data.OWNER
        assert c["head"]["pending_owner"] == api_data.NEW_OWNER and c["finalized"]["pending_owner"] is None
        assert len(c["head"]["frozen"]["accounts"]) == len(c["finalized"]["frozen"]["accounts"]) + 1
        # Paused between blocks 50 and 60: the event list says so.
        status, page = await get(
            http, f"{live.base}/api/v1/control-events", chain=CHAIN, kind="paused,unpaused", order="asc"
        )
        assert [(e["block_number"], e["kind"], e["event"]) for e in page["events"]] == [
            (50, "paused", "paused"),
            (60, "unpaused", "unpaused"),
        ]
        # Every event exactly once, in order, through small pages.
        got: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"chain": CHAIN, "limit": "3", "order": "asc", **({"cursor": cursor} if cursor else {})}
            status, page = await get(http, f"{live.base}/api/v1/control-events", **params)
            assert status == 200 and page["coverage"] == {"from_block": 0}
            got += page["events"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        want = sorted(syn.controls, key=lambda x: (x.block_number, x.log_index, x.tx_hash))
        assert [(e["block_number"], e["log_index"], e["kind"], e["subject"]) for e in got] == [
            (x.block_number, x.log_index, x.kind.value, x.subject) for x in want
        ]
        assert {e["contract"] for e in got} == {"token", "proxy_admin"}
        assert all(e["finalized"] == (e["block_number"] <= syn.finalized) for e in got)
        # The address filter matches the emitting contract and the accounts an event names.
        holder = "0x" + "03" * 20
        status, page = await get(http, f"{live.base}/api/v1/control-events", chain=CHAIN, address=holder)
        assert [e["kind"] for e in page["events"]] == ["unfrozen", "frozen"]
        status, page = await get(
            http, f"{live.base}/api/v1/control-events", chain=CHAIN, address=api_data.PROXY_ADMIN
        )
        assert {e["kind"] for e in page["events"]} == {"ownership_transferred", "admin_changed"}
        # One codec, two routes: a cursor of one is refused by the other.
        status, t = await get(http, f"{live.base}/api/v1/transfers", chain=CHAIN, limit="1")
        status, bad = await get(
            http, f"{live.base}/api/v1/control-events", chain=CHAIN, cursor=t["next_cursor"]
        )
        assert status == 400 and "another route" in bad["error"]
        status, ce = await get(http, f"{live.base}/api/v1/control-events", chain=CHAIN, limit="1")
        status, bad = await get(http, f"{live.base}/api/v1/transfers", chain=CHAIN, cursor=ce["next_cursor"])
        assert status == 400 and "another route" in bad["error"]
        status, bad = await get(http, f"{live.base}/api/v1/control-events", chain=CHAIN, kind="frozen,mint")
        assert status == 400 and "invalid kind" in bad["error"]
        status, st = await get(http, f"{live.base}/api/v1/status")
        assert st["chains"][0]["coverage"]["controls"]["from_block"] == 0
        assert st["chains"][0]["coverage"]["transfers"]["complete"] is True


def test_query_cli_prints_what_the_api_serves(live: Live, tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(live.cfg_dict))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "indexer.cli_query", *args, "--config", str(cfg_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("transfers", "--chain", CHAIN, "--all", "--limit", "17", "--order", "asc", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = orjson.loads(r.stdout)["transfers"]
    assert [(e["block_number"], e["log_index"], e["tx_hash"]) for e in rows] == sorted(live.syn.keys())
    r = cli("transfers", "--chain", CHAIN, "--address", ADDR, "--format", "csv", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    parsed = list(csv.DictReader(io.StringIO(r.stdout)))
    want = [e for e in live.syn.events if ADDR in (e.from_addr, e.to_addr)]
    assert len(parsed) == len(want) and all(ADDR in (p["from"], p["to"]) for p in parsed)
    # CSV exports of history say which block each row reflects: the indexed head read (transfers).
    head_time = datetime.fromtimestamp(live.syn.block_times[live.syn.head], UTC).isoformat()
    assert {(p["as_of_block"], p["as_of_time"]) for p in parsed} == {
        (str(live.syn.head), head_time.replace("+00:00", "Z"))
    }
    r = cli("control-events", "--chain", CHAIN, "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert {p["as_of_block"] for p in csv.DictReader(io.StringIO(r.stdout))} == {str(live.syn.head)}
    # ... and the block whose totals a supply-history row carries.
    r = cli(
        "supply",
        "--history",
        "--chain",
        CHAIN,
        "--interval",
        "1h",
        "--since",
        str(T0),
        "--until",
        str(T0 + 86400),
        "--format",
        "csv",
    )
    assert r.returncode == 0, r.stderr
    hist = list(csv.DictReader(io.StringIO(r.stdout)))
    assert hist and all(p["as_of_block"] == p["block"] for p in hist)
    for p in hist:
        if p["as_of_block"]:
            t = datetime.fromtimestamp(live.syn.block_times[int(p["as_of_block"])], UTC).isoformat()
            assert p["as_of_time"] == t.replace("+00:00", "Z")
            assert datetime.fromisoformat(p["as_of_time"]) < datetime.fromisoformat(p["t"]) + timedelta(
                hours=1
            )
    r = cli("supply", "--format", "json")
    assert r.returncode == 0, r.stderr
    cli_supply = orjson.loads(r.stdout)
    assert int(cli_supply["total"]["finalized"]["raw"]) == live.syn.supply_at(live.syn.finalized)
    r = cli("supply", "--history", "--interval", "6h", "--since", str(T0), "--until", str(T0 + 86400))
    assert r.returncode == 0 and "supply per 6h" in r.stdout, r.stderr
    r = cli("tx", CHAIN, live.syn.events[0].tx_hash)
    assert r.returncode == 0 and live.syn.events[0].tx_hash[:10] in r.stdout, r.stderr
    r = cli("account", CHAIN, ADDR, "--block", "50", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert int(orjson.loads(r.stdout)["at"]["raw"]) == live.syn.balance_at(ADDR, 50)
    r = cli("reorgs", "--format", "csv")
    assert r.returncode == 0 and r.stdout.startswith("detected_at,chain"), r.stderr
    # Same validation as the API: exit 2 with the API's message.
    r = cli("transfers", "--chain", CHAIN, "--address", "not-an-address")
    assert r.returncode == 2 and "invalid address" in r.stderr
    r = cli("transfers", "--chain", CHAIN, "--cursor", "garbage!")
    assert r.returncode == 2 and "invalid cursor" in r.stderr
    r = cli("tx", CHAIN, "0x" + "ab" * 32)
    assert r.returncode == 1 and "no token events" in r.stderr
    r = cli("controls", "--chain", CHAIN, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["chains"][0]["head"]["owner"] == api_data.OWNER
    r = cli("controls", "--format", "csv")
    assert r.returncode == 0 and r.stdout.startswith("chain,at,block,owner"), r.stderr
    r = cli("control-events", "--chain", CHAIN, "--all", "--limit", "2", "--order", "asc", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert len(orjson.loads(r.stdout)["events"]) == len(live.syn.controls)
    r = cli("control-events", "--chain", CHAIN, "--kind", "frozen")
    assert r.returncode == 0 and "Freeze" not in r.stdout and "frozen" in r.stdout, r.stderr
    r = cli("control-events", "--chain", CHAIN, "--kind", "stolen")
    assert r.returncode == 2 and "invalid kind" in r.stderr


async def test_metrics_name_filter(live: Live) -> None:
    """`/metrics?name[]=...` renders only the named families (the exposition convention), so a
    tight poller of one series does not pay for the whole registry; unknown names give nothing."""
    async with aiohttp.ClientSession() as http:
        status, full = await get(http, f"{live.base}/metrics")
        assert status == 200 and b"usd1_database_up" in full and b"usd1_build_info" in full
        async with http.get(f"{live.base}/metrics", params=[("name[]", "usd1_database_up")]) as r:
            only = await r.read()
        assert r.status == 200
        families = {line.split()[2] for line in only.decode().splitlines() if line.startswith("# TYPE")}
        assert families == {"usd1_database_up"}
        async with http.get(f"{live.base}/metrics", params=[("name[]", "no_such_metric")]) as r:
            assert r.status == 200 and await r.read() == b""
