"""Tron addresses as people read them: a `dialect: tron` chain over real PostgreSQL (synthetic
history written through `Store.commit`, tests/support/api_data.py). Every address the API, the
`query` CLI and the page give out is base58check `T...`; an address typed in any Tron spelling
(base58, 21-byte `41...` hex, 20-byte `0x` hex) finds the same account; a bad `T...` is a 400
naming the parameter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml

from indexer.api.app import create_app
from indexer.chains import tron
from indexer.config import Config
from indexer.daemon import serve_http
from indexer.metrics import Metrics
from indexer.model import ControlKind
from indexer.store.store import Store
from tests.support import api_data
from tests.support.api_data import Synthetic

pytestmark = pytest.mark.integration
CHAIN = "tron"
HOLDER = "0x" + "01" * 20  # a holder of the synthetic history (api_data.load)
FROZEN = "0x" + "04" * 20  # frozen from block 70 (api_data.CONTROL_SCRIPT)


def b58(hex_address: str) -> str:
    return tron.to_base58(hex_address)


def tron_chain() -> dict[str, Any]:
    """The synthetic EVM chain as a Tron chain: the same 20-byte token, spelled the Tron ways."""
    c = api_data.evm_chain(CHAIN)
    return {
        **c,
        "dialect": "tron",
        "token": b58(api_data.TOKEN),
        "watch": [{**c["watch"][0], "address": "41" + api_data.PROXY_ADMIN[2:]}],
        "non_circulating": [
            {"address": a if a == "owner" else b58(a), "label": label}
            for a, label in api_data.NON_CIRCULATING
        ],
    }


@dataclass
class Live:
    base: str
    syn: Synthetic
    cfg_dict: dict[str, Any]


@pytest.fixture
async def live(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> AsyncIterator[Live]:
    syn = await api_data.load(pool, CHAIN)
    cfg_dict = {
        "database": {"dsn": dsn},
        "data_dir": str(tmp_path),
        "chains": [tron_chain()],
        "bridges": [{"name": "ccip"}],
    }
    cfg = Config.model_validate(cfg_dict)
    assert cfg.chains[0].token == api_data.TOKEN.lower()  # converted to the form logs carry
    app = create_app(cfg, Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield Live(f"http://127.0.0.1:{port}", syn, cfg_dict)


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params or None) as r:
        body = await r.read()
        ctype = r.headers.get("Content-Type", "")
        return r.status, orjson.loads(body) if ctype.startswith("application/json") else body.decode()


def assert_base58(value: str | None) -> None:
    assert value is not None and len(value) == 34 and value.startswith("T"), value
    assert tron.to_base58(tron.to_hex(value)) == value


async def test_transfers_and_tx_show_base58(live: Live) -> None:
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        status, page = await get(
            http, f"{live.base}/api/v1/transfers", chain=CHAIN, limit="1000", order="asc"
        )
        assert status == 200
        got = [
            (e["block_number"], e["log_index"], e["from"], e["to"], int(e["raw"])) for e in page["transfers"]
        ]
        want = [
            (e.block_number, e.log_index, b58(e.from_addr or ""), b58(e.to_addr or ""), e.amount)
            for e in syn.events
        ]
        assert got == sorted(want)
        for e in page["transfers"]:
            assert_base58(e["from"])
            assert_base58(e["to"])
        # The address filter in each spelling selects the same rows, shown in base58.
        pages = []
        for spelling in (b58(HOLDER), HOLDER, "41" + HOLDER[2:], "0x41" + HOLDER[2:].upper()):
            status, p = await get(
                http, f"{live.base}/api/v1/transfers", chain=CHAIN, address=spelling, limit="1000"
            )
            assert status == 200, p
            pages.append(p["transfers"])
        assert pages[0] and all(p == pages[0] for p in pages)
        assert all(b58(HOLDER) in (e["from"], e["to"]) for e in pages[0])
        first = syn.events[0]
        status, view = await get(http, f"{live.base}/api/v1/tx/{CHAIN}/{first.tx_hash}")
        assert status == 200
        assert view["events"][0]["to"] == b58(first.to_addr or "")


async def test_account_in_every_spelling(live: Live) -> None:
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        bodies = []
        for spelling in (b58(HOLDER), HOLDER, HOLDER.upper().replace("0X", "0x"), "41" + HOLDER[2:]):
            status, body = await get(http, f"{live.base}/api/v1/accounts/{CHAIN}/{spelling}", block="50")
            assert status == 200, body
            bodies.append(body)
        assert all(b == bodies[0] for b in bodies)
        assert bodies[0]["address"] == b58(HOLDER)
        assert int(bodies[0]["at"]["raw"]) == syn.balance_at(HOLDER, 50)
        assert int(bodies[0]["head"]["raw"]) == syn.balance_at(HOLDER, syn.head)
        # A base58 address with one character changed fails its checksum: a 400 naming the parameter.
        good = b58(HOLDER)
        bad = good[:-1] + ("a" if good[-1] != "a" else "b")
        status, err = await get(http, f"{live.base}/api/v1/accounts/{CHAIN}/{bad}")
        assert status == 400 and "invalid address" in err["error"] and "checksum" in err["error"], err
        status, err = await get(http, f"{live.base}/api/v1/transfers", chain=CHAIN, address=bad)
        assert status == 400 and "invalid address" in err["error"] and "checksum" in err["error"], err
        status, err = await get(
            http, f"{live.base}/api/v1/control-events", chain=CHAIN, address="T" + "1" * 33
        )
        assert status == 400 and "invalid address" in err["error"], err


async def test_controls_and_control_events_show_base58(live: Live) -> None:
    syn = live.syn
    async with aiohttp.ClientSession() as http:
        status, body = await get(http, f"{live.base}/api/v1/controls", chain=CHAIN)
        assert status == 200
        c = body["chains"][0]
        assert {x["address"] for x in c["contracts"]} == {b58(api_data.TOKEN), b58(api_data.PROXY_ADMIN)}
        fin = c["finalized"]
        assert fin["owner"] == b58(api_data.OWNER)
        assert fin["implementation"] == b58(api_data.IMPL)
        assert fin["admin"] == b58(api_data.PROXY_ADMIN)
        assert fin["watched"][0]["address"] == b58(api_data.PROXY_ADMIN)
        assert fin["watched"][0]["owner"] == b58(api_data.OWNER)
        assert {a["address"] for a in fin["frozen"]["accounts"]} == {
            b58(a) for a in syn.frozen_at(syn.finalized)
        }
        assert c["head"]["pending_owner"] == b58(api_data.NEW_OWNER)
        assert_base58(c["head"]["last_change"]["address"])
        # Filtered by a base58 account: its freeze events, every address in base58.
        status, page = await get(http, f"{live.base}/api/v1/control-events", chain=CHAIN, address=b58(FROZEN))
        assert status == 200
        assert [e["kind"] for e in page["events"]] == [ControlKind.FROZEN.value]
        ev = page["events"][0]
        assert ev["subject"] == b58(FROZEN)
        assert ev["address"] == b58(api_data.TOKEN) and ev["contract"] == "token"
        assert ev["actor"] == b58(api_data.OWNER)
        status, hexed = await get(http, f"{live.base}/api/v1/control-events", chain=CHAIN, address=FROZEN)
        assert hexed["events"] == page["events"]
        status, html = await get(http, f"{live.base}/")
        assert status == 200
        assert f'<td class="owner addr">{b58(api_data.OWNER)}</td>' in html
        assert api_data.OWNER not in html


def test_query_cli_shows_base58(live: Live, tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(live.cfg_dict))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "indexer.cli_query", *args, "--config", str(cfg_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("account", CHAIN, b58(HOLDER), "--block", "50", "--format", "json")
    assert r.returncode == 0, r.stderr
    body = orjson.loads(r.stdout)
    assert body["address"] == b58(HOLDER) and int(body["at"]["raw"]) == live.syn.balance_at(HOLDER, 50)
    r2 = cli("account", CHAIN, "41" + HOLDER[2:], "--block", "50", "--format", "json")
    assert r2.returncode == 0 and orjson.loads(r2.stdout) == body, r2.stderr
    r = cli("transfers", "--chain", CHAIN, "--address", b58(HOLDER), "--format", "json", "--limit", "1000")
    assert r.returncode == 0, r.stderr
    rows = orjson.loads(r.stdout)["transfers"]
    assert rows and all(b58(HOLDER) in (e["from"], e["to"]) for e in rows)
    r = cli("controls", "--chain", CHAIN, "--format", "csv")
    assert r.returncode == 0 and f"{b58(api_data.OWNER)},{b58(api_data.PROXY_ADMIN)}" in r.stdout, r.stderr
    r = cli("control-events", "--chain", CHAIN, "--address", b58(FROZEN), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert orjson.loads(r.stdout)["events"][0]["subject"] == b58(FROZEN)
    bad = b58(HOLDER)[:-1] + ("a" if b58(HOLDER)[-1] != "a" else "b")
    r = cli("account", CHAIN, bad)
    assert r.returncode == 2 and "invalid address" in r.stderr and "checksum" in r.stderr
