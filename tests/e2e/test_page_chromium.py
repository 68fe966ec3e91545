"""The transparency page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
it renders the figures the JSON API returns, with JavaScript disabled, on a phone-sized screen.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from indexer.api.app import create_app
from indexer.api.page import fmt_tokens
from indexer.daemon import serve_http
from indexer.depegs import Episode
from indexer.metrics import Metrics
from indexer.model import EventKind
from indexer.store import depeg_queries as dq
from indexer.store.store import Store
from indexer.units import to_decimal_str
from tests.support import api_data

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (make install-apt)"),
]


@pytest.fixture
async def served(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[str, api_data.Synthetic]]:
    syn = await api_data.load(pool, "devnet", blocks=150)
    t = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
    async with pool.acquire() as conn:  # a closed wick on one venue and an open aggregate episode
        await dq.upsert(
            conn,
            [
                Episode(
                    "venue", "univ3-usd1-usdc", t, D("-54.03"), D("-54.03"), t, t + timedelta(minutes=6), D(3)
                ),
                Episode("aggregate", None, t, D("-120.5"), D("-120.5"), t),
            ],
        )
    app = create_app(api_data.config(dsn, tmp_path), Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}", syn


def raw_to_display(raw: str, decimals: int) -> str:
    return fmt_tokens(int(raw), decimals)


async def test_page_renders_api_figures(served: tuple[str, api_data.Synthetic]) -> None:
    site, syn = served
    from playwright.async_api import async_playwright

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{site}/api/v1/supply") as r:
            supply: dict[str, Any] = await r.json()
        async with http.get(f"{site}/api/v1/controls") as r:
            controls: dict[str, Any] = await r.json()
    dp = supply["total"]["decimals"]
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # A phone, without JavaScript: everything is server-rendered.
            ctx = await browser.new_context(
                viewport={"width": 390, "height": 844}, java_script_enabled=False, device_scale_factor=2
            )
            page = await ctx.new_page()
            external: list[str] = []
            page.on("request", lambda req: None if req.url.startswith(site) else external.append(req.url))
            resp = await page.goto(site + "/")
            assert resp is not None and resp.status == 200
            total = page.locator("#total-finalized")
            assert await total.get_attribute("data-amount") == supply["total"]["finalized"]["amount"]
            assert (await total.inner_text()).strip() == raw_to_display(
                supply["total"]["finalized"]["raw"], dp
            )
            head = page.locator("#total-head")
            assert (await head.inner_text()).strip() == raw_to_display(supply["total"]["head"]["raw"], dp)
            for chain in supply["chains"]:
                row = page.locator(f'#chains tr[data-chain="{chain["chain"]}"]')
                assert (
                    await row.locator(".finalized").get_attribute("data-amount")
                    == chain["finalized"]["amount"]
                )
                fin_block = chain["finalized"]["block"]
                assert (await row.locator(".finalized-block").inner_text()).strip() == (
                    "—" if fin_block is None else str(fin_block)
                )
                head_block = chain["head"]["block"]
                pending = "—" if head_block is None else str(head_block - fin_block)
                assert (await row.locator(".pending-blocks").inner_text()).strip() == pending
            # Total -> circulating: the API's finalized classes, per chain and for all chains.
            glob = page.locator('#breakdown table[data-scope="all"]')
            assert (
                await glob.locator("tr.total td").get_attribute("data-amount")
                == (supply["total"]["finalized"]["amount"])
            )
            circ = supply["total"]["circulating"]["finalized"]
            glob_circ = glob.locator("tr.circulating td")
            if circ is None:  # a chain is not indexed: no global figure, as the API
                assert (await glob_circ.inner_text()).strip() == "—"
            else:
                assert await glob_circ.get_attribute("data-amount") == circ["amount"]
            with_classes = [c for c in supply["chains"] if c["classes"] is not None]
            assert with_classes
            assert await page.locator("#breakdown table[data-scope]").count() == 1 + len(with_classes)
            for chain in with_classes:
                classes = chain["classes"]["finalized"]
                t = page.locator(f'#breakdown table[data-scope="{chain["chain"]}"]')
                assert (
                    await t.locator("tr.total td").get_attribute("data-amount") == classes["total"]["amount"]
                )
                assert (
                    await t.locator("tr.frozen td").get_attribute("data-amount")
                    == classes["frozen"]["amount"]
                )
                circ_td = t.locator("tr.circulating td")
                assert await circ_td.get_attribute("data-amount") == classes["circulating"]["amount"]
                assert await circ_td.get_attribute("title") == f"{classes['circulating']['amount']} USD1"
                by_label = classes["non_circulating"]["by_label"]
                assert by_label and await t.locator("tr.label").count() == len(by_label)
                for label, amount in by_label.items():
                    cell = t.locator(f'tr.label[data-label="{label}"] td')
                    assert await cell.get_attribute("data-amount") == amount["amount"]
            # Contract controls: the API's head state, chain by chain (chains without controls: no row).
            enabled = [c for c in controls["chains"] if c["enabled"]]
            assert enabled and await page.locator("#controls table[data-chain]").count() == len(enabled)
            for c in enabled:
                row = page.locator(f'#controls table[data-chain="{c["chain"]}"]')
                head = c["head"]
                for field in ("owner", "admin", "implementation"):
                    assert (await row.locator(f".{field}").inner_text()).strip() == (head[field] or "—")
                paused = (await row.locator(".paused").inner_text()).strip()
                assert paused == ("paused" if head["paused"] else "no")
                assert int(await row.locator(".frozen-count").inner_text()) == head["frozen"]["count"] > 0
                assert (
                    await row.locator(".frozen-amount").get_attribute("data-amount")
                    == head["frozen"]["amount"]
                )
                last = row.locator(".last-change")
                assert await last.get_attribute("data-block") == str(head["last_change"]["block"])
                assert await last.get_attribute("data-kind") == head["last_change"]["kind"]
            # Supply by chain: an inline SVG, one stacked layer per chain, the legend at the heads.
            layers = page.locator("svg.chart path.layer")
            assert [await layers.nth(i).get_attribute("data-chain") for i in range(await layers.count())] == [
                c["chain"] for c in supply["chains"]
            ]
            for chain in supply["chains"]:
                latest = page.locator(f'#chart-legend li[data-chain="{chain["chain"]}"] .latest')
                assert await latest.get_attribute("data-amount") == chain["head"]["amount"]
            assert int(await page.locator("svg.chart").get_attribute("data-points") or 0) > 10
            # Mints and burns: all within the last 2 days, so every window holds the whole history.
            minted = to_decimal_str(sum(e.amount for e in syn.events if e.kind == EventKind.MINT), 18)
            burned = to_decimal_str(sum(e.amount for e in syn.events if e.kind == EventKind.BURN), 18)
            assert await page.locator("#flow-table tr[data-scope='all']").count() == 3
            for days in (7, 30, 365):
                for scope, want in (
                    ("all", (minted, burned)),
                    ("devnet", (minted, burned)),
                    ("sol", ("0", "0")),
                ):
                    row = page.locator(f"#flow-table tr[data-days='{days}'][data-scope='{scope}']")
                    got = (
                        await row.locator(".minted").get_attribute("data-amount"),
                        await row.locator(".burned").get_attribute("data-amount"),
                    )
                    assert got == want, (days, scope)
            assert "No attestation configured" in await page.locator("#no-attestation").inner_text()
            # Peg history: the episodes, newest first, readable without scrolling the table sideways.
            episodes = page.locator("#depegs tbody tr")
            assert await episodes.count() == 2
            texts = [(await episodes.nth(i).inner_text()).split("\t") for i in range(2)]
            assert texts[0][0].strip() == "all venues"
            assert [x.strip() for x in texts[0]][-1] == "open"
            assert [x.strip() for x in texts[1]][2:] == ["-54.0", "6 min", "recovered"]
            fits = await page.evaluate(
                "(() => { const t = document.querySelector('#depegs');"
                " return t.scrollWidth <= t.parentElement.clientWidth; })()"
            )
            assert fits, "the Peg history table needs horizontal scrolling at 390 px"
            # Fits a phone: no horizontal scrolling of the page itself (tables scroll in their box).
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
            await page.screenshot(path=str(ARTIFACTS / "transparency-phone.png"), full_page=True)
            assert external == [], f"external requests: {external}"
            await ctx.close()

            desktop = await browser.new_page(viewport={"width": 1280, "height": 900})
            await desktop.goto(site + "/")
            await desktop.screenshot(path=str(ARTIFACTS / "transparency-desktop.png"), full_page=True)
        finally:
            await browser.close()
