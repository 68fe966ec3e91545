"""Watchlists end to end (issue #17 item 5) on anvil + PostgreSQL through the real daemon
(`run_daemon`): transfers to and from an address on the real OFAC ETH and USDT lists
(tests/fixtures/sanctions/) count once per list in usd1_watchlist_*_total (not again when final),
and `/api/v1/transfers` flags them at query time (`flagged`, `lists`, `flagged=true|false`) against
the lists in force, which follow a changed file and survive a bad one."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from indexer.config import Config
from indexer.daemon import run_daemon
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.token import TestToken
from indexer.runtime import Runtime
from tests.integration.test_evm_pipeline import CHAIN, wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sanctions"
BOTH = "0x983a81ca6FB1e441266D2FbcB7D8E530AC2E05A2"  # on the ETH and the USDT list, as written there
ETH_ONLY = "0x8589427373D6D84E98730D7795D8f6f8731FDA16"  # on the ETH list only
HOLDER = "0x" + "cd" * 20
E18 = 10**18


def write(path: Path, data: bytes, bump_s: int) -> None:
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_s * 1_000_000_000))


async def test_listed_transfers_are_counted_once_and_flagged_in_the_api(
    anvil: Anvil, token: TestToken, dsn: str, tmp_path: Path
) -> None:
    assert ETH_ONLY in (FIXTURES / "sanctioned_addresses_ETH.txt").read_text().split()
    assert ETH_ONLY.lower() not in (FIXTURES / "sanctioned_addresses_USDT.json").read_text().lower()
    lists = tmp_path / "lists"
    lists.mkdir()
    eth_list = lists / "eth.txt"
    shutil.copy(FIXTURES / "sanctioned_addresses_ETH.txt", eth_list)
    shutil.copy(FIXTURES / "sanctioned_addresses_USDT.json", lists / "usdt.json")
    port = free_port()
    cfg_dict: dict[str, Any] = {
        "database": {"dsn": dsn},
        "data_dir": str(tmp_path),
        "http": {"listen": f"127.0.0.1:{port}"},
        "chains": [
            {
                "name": CHAIN,
                "kind": "evm",
                "rpc": [anvil.url],
                "token": token.address,
                "decimals": 18,
                "finality": {"tag": "finalized"},
                "poll_interval": "50ms",
            }
        ],
        "watchlists": [
            {"name": "ofac-eth", "url": "lists/eth.txt", "format": "ofac_txt"},
            {"name": "ofac-usdt", "url": f"file://{lists / 'usdt.json'}", "format": "ofac_json"},
        ],
        "watchlist_reload_seconds": "100ms",
    }
    cfg = Config.model_validate(cfg_dict)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg_dict))
    holder: dict[str, Runtime] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_daemon(cfg, stop, on_ready=lambda rt, _p: holder.setdefault("rt", rt), config_dir=tmp_path)
    )
    base = f"http://127.0.0.1:{port}/api/v1/transfers"
    try:
        await wait_for(lambda: "rt" in holder, 30, "daemon start")
        rt = holder["rt"]
        status = rt.statuses[CHAIN]

        def hits(name: str, lst: str) -> float | None:
            return rt.metrics.registry.get_sample_value(name, {"chain": CHAIN, "list": lst})

        def counts() -> list[float | None]:
            return [
                hits(m, lst)
                for lst in ("ofac-eth", "ofac-usdt")
                for m in ("usd1_watchlist_transfers_total", "usd1_watchlist_tokens_total")
            ]

        await wait_for(lambda: status.phase.value == "live", 30, "live")
        assert counts() == [0, 0, 0, 0]  # series exist from the start
        await token.mint(HOLDER, 5 * E18)
        tip = await anvil.block_number()
        await wait_for(lambda: status.indexed >= tip, 30, "the unlisted mint")
        assert counts() == [0, 0, 0, 0]

        await token.mint(BOTH, 100 * E18)  # to a listed address: both lists
        await token.batch_transfer([BOTH], [HOLDER], [40 * E18])  # from it: both lists
        await token.batch_transfer([HOLDER], [ETH_ONLY], [E18 * 5 // 2])  # to ETH_ONLY: ofac-eth
        await token.batch_transfer([BOTH], [ETH_ONLY], [E18])  # both sides listed: once per list
        tip = await anvil.block_number()
        await wait_for(lambda: status.indexed >= tip, 30, "the listed transfers")
        assert counts() == [4, 143.5, 3, 141]
        await anvil.mine(6)  # final now: not counted again
        head = await anvil.block_number()
        await wait_for(lambda: status.indexed_finalized >= tip and status.indexed == head, 30, "finality")
        assert counts() == [4, 143.5, 3, 141]

        async with aiohttp.ClientSession() as http:

            async def page(**params: str) -> list[dict[str, Any]]:
                async with http.get(base, params={"order": "asc", **params}) as r:
                    assert r.status == 200, await r.text()
                    rows: list[dict[str, Any]] = (await r.json())["transfers"]
                    return rows

            rows = await page()
            assert [(r["to"], r["flagged"], r.get("lists")) for r in rows] == [
                (HOLDER, False, None),
                (BOTH.lower(), True, ["ofac-eth", "ofac-usdt"]),
                (HOLDER, True, ["ofac-eth", "ofac-usdt"]),
                (ETH_ONLY.lower(), True, ["ofac-eth"]),
                (ETH_ONLY.lower(), True, ["ofac-eth", "ofac-usdt"]),
            ]
            assert [r["amount"] for r in await page(flagged="true")] == ["100", "40", "2.5", "1"]
            assert [r["amount"] for r in await page(flagged="false")] == ["5"]
            # Paged one row at a time, both orders: the same rows, none twice.
            for order in ("asc", "desc"):
                walked, cursor = [], None
                while True:
                    extra = {"cursor": cursor} if cursor else {}
                    async with http.get(
                        base, params={"order": order, "flagged": "true", "limit": "1", **extra}
                    ) as r:
                        body = await r.json()
                    walked += [t["amount"] for t in body["transfers"]]
                    cursor = body["next_cursor"]
                    if cursor is None:
                        break
                want = ["100", "40", "2.5", "1"]
                assert walked == (want if order == "asc" else want[::-1])
            assert [r["amount"] for r in await page(flagged="true", address=ETH_ONLY)] == ["2.5", "1"]
            assert [r["amount"] for r in await page(flagged="false", address=HOLDER)] == ["5"]
            # The query CLI prints the body the API serves (same filter, same flags).
            async with http.get(base, params={"order": "asc", "flagged": "true"}) as r:
                api_body = await r.json()
            cmd = [
                sys.executable,
                "-m",
                "indexer.cli_query",
                "transfers",
                "--config",
                str(tmp_path / "c.yaml"),
            ]
            out = await asyncio.to_thread(
                subprocess.run,
                [*cmd, "--order", "asc", "--flagged", "true", "--format", "json"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == api_body
            out = await asyncio.to_thread(
                subprocess.run,
                [*cmd, "--order", "asc", "--format", "csv"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert [(r["flagged"], r["lists"]) for r in csv.DictReader(io.StringIO(out.stdout))] == [
                ("False", ""),
                ("True", "ofac-eth,ofac-usdt"),
                ("True", "ofac-eth,ofac-usdt"),
                ("True", "ofac-eth"),
                ("True", "ofac-eth,ofac-usdt"),
            ]
            async with http.get(base, params={"flagged": "yes"}) as r:
                assert r.status == 400
                assert (await r.json()) == {"error": "invalid flagged 'yes': expected one of true, false"}

            # A bad new ETH list: the previous one stays in force.
            write(eth_list, eth_list.read_bytes() + b"0x12\n", 5)
            await wait_for(
                lambda: rt.watchlists is not None and rt.watchlists.error("ofac-eth") is not None, 15, "bad"
            )
            assert [r["amount"] for r in await page(flagged="true")] == ["100", "40", "2.5", "1"]
            assert rt.metrics.registry.get_sample_value("usd1_watchlist_up", {"list": "ofac-eth"}) == 0

            # A good new version lists HOLDER alone: the API flags at query time, by the new lists.
            write(eth_list, f"{HOLDER}\n".encode(), 10)
            await wait_for(
                lambda: rt.watchlists is not None and rt.watchlists.error("ofac-eth") is None, 15, "good"
            )
            rows = await page()
            assert [r.get("lists") for r in rows] == [
                ["ofac-eth"],
                ["ofac-usdt"],
                ["ofac-eth", "ofac-usdt"],
                ["ofac-eth"],
                ["ofac-usdt"],
            ]
        # History is not recounted by a reload.
        assert counts() == [4, 143.5, 3, 141]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
