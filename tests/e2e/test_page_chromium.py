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
from indexer.market.service import VenueSnapshot
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


NOW_RESERVES = datetime(2025, 7, 31, 1, tzinfo=UTC).timestamp()  # a month after the v2 example's as_of
VENUES = {  # the market service's latest readings (its VenueSnapshot), one venue down
    "binance-usd1-usdt": VenueSnapshot(
        "binance-usd1-usdt",
        "orderbook",
        True,
        D("0.99942"),
        D("-5.8"),
        {"bid": {"10bps": D("120000.5"), "100bps": D("2500000.25")}, "ask": {"100bps": D("1750000")}},
        last_success=NOW_RESERVES,
    ),
    "univ3-usd1-usdc": VenueSnapshot(
        "univ3-usd1-usdc",
        "uniswap_v3",
        True,
        D("1.0003"),
        D("3.0"),
        {"bid": {"100bps": D("400000")}, "ask": {"100bps": D("600000.75")}},
        depth_complete=False,
        block=19_000_000,
        last_success=NOW_RESERVES,
    ),
    "univ2-usd1-weth": VenueSnapshot(
        "univ2-usd1-weth",
        "uniswap_v2",
        False,
        D("0.9871"),
        D("-129"),
        {"bid": {"100bps": D("10")}, "ask": {"100bps": D("10")}},
        last_success=NOW_RESERVES - 600,
        last_error="timeout",
        failing_since=NOW_RESERVES - 300,
    ),
}


async def test_page_reserves_and_market_match_the_api(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> None:
    """A signed v2 attestation on a monthly cadence and three venues (one down): the page's reserve
    figures equal /api/v1/reserves, the peg and depth are the venues' readings, at 390 and 1280 px."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from playwright.async_api import async_playwright

    from indexer.attest_sig import fingerprint, sign_document
    from indexer.backing import AtAsOf, BlockAt
    from indexer.config import Config, ReservesConfig
    from indexer.reserves import ReservesService, TotalSupply

    await api_data.load(pool, "devnet", blocks=60)
    key = Ed25519PrivateKey.generate()
    doc = (Path(__file__).resolve().parents[2] / "config" / "reserves.v2.example.json").read_bytes()
    (tmp_path / "r.json").write_bytes(doc)
    (tmp_path / "r.json.sig").write_bytes(sign_document(doc, key))
    reserves = {"url": "file://r.json", "cadence": "monthly", "grace": "30d", "public_key": "k.pem"}
    cfg = Config.model_validate(api_data.config_dict(dsn, tmp_path) | {"reserves": reserves})

    async def supply() -> TotalSupply:
        return TotalSupply(2_000_000_000 * 10**18, 18)

    async def supply_at(when: datetime) -> AtAsOf:  # 1.9 G circulating at as_of: 100 M issued since
        block = BlockAt(41, "0x" + "ab" * 32, when)
        return AtAsOf(when, TotalSupply(1_900_000_000 * 10**18, 18), {"devnet": block}, exact=True)

    async with aiohttp.ClientSession() as http:
        svc = ReservesService(
            ReservesConfig.model_validate(reserves),
            Metrics(),
            http,
            supply,
            base_dir=tmp_path,
            clock=lambda: NOW_RESERVES,
            public_key=key.public_key(),
            supply_at=supply_at,
        )
        assert await svc.refresh()
        await svc.update_ratio()
        app = create_app(cfg, Store(pool), Metrics(), reserves=svc.snapshot, market=lambda: VENUES)
        async with serve_http(app, "127.0.0.1", 0) as port:
            site = f"http://127.0.0.1:{port}"
            async with http.get(f"{site}/api/v1/reserves") as r:
                api: dict[str, Any] = await r.json()
            ARTIFACTS.mkdir(exist_ok=True)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    for width, name in ((390, "phone"), (1280, "desktop")):
                        ctx = await browser.new_context(
                            viewport={"width": width, "height": 900}, java_script_enabled=False
                        )
                        page = await ctx.new_page()
                        assert (resp := await page.goto(site + "/")) is not None and resp.status == 200
                        await check_reserves_and_market(page, api, fingerprint(key.public_key()))
                        scroll = await page.evaluate("document.documentElement.scrollWidth")
                        assert scroll <= width, (name, scroll)
                        await page.screenshot(
                            path=str(ARTIFACTS / f"transparency-full-{name}.png"), full_page=True
                        )
                        await ctx.close()
                finally:
                    await browser.close()


async def check_reserves_and_market(page: Any, api: dict[str, Any], fp: str) -> None:
    att = api["attestation"]
    for table, attr, figures in (
        ("#reserves-by-category", "category", att["by_category"]),
        ("#reserves-by-custodian", "custodian", att["by_custodian"]),
    ):
        rows = page.locator(f"{table} tr[data-{attr}]")
        assert [await rows.nth(i).get_attribute(f"data-{attr}") for i in range(await rows.count())] == list(
            figures
        )
        for k, usd in figures.items():
            assert await page.locator(f'{table} tr[data-{attr}="{k}"] td').get_attribute("data-usd") == usd
    assert int(await page.locator("#reserves-age").get_attribute("data-seconds")) == api["age_seconds"]
    assert "on time" in await page.locator("#reserves-age").inner_text()
    assert (await page.locator("#reserves-cadence").inner_text()).strip() == "monthly + 30 d grace"
    due = datetime.fromisoformat(api["next_due"].replace("Z", "+00:00"))
    assert (await page.locator("#reserves-next-due").inner_text()).strip() == due.strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    assert api["signature"]["status"] == "valid"
    assert (await page.locator("#reserves-signature").inner_text()).startswith(f"verified (key {fp[:23]}")
    ratio = D(api["backing_ratio"]) * 100
    assert (await page.locator("#backing-ratio").inner_text()).strip() == f"{ratio.quantize(D('0.01'))} %"
    assert (await page.locator("#reserves-coverage").inner_text()).startswith(
        f"{ratio.quantize(D('0.01'))} %"
    )
    # The ratio at as_of and the supply issued since: the API's exact figures.
    at_ratio = api["at_as_of"]["ratio"]
    assert at_ratio is not None and D(at_ratio) != D(api["backing_ratio"])
    assert await page.locator("#reserves-ratio-at-as-of").get_attribute("data-ratio") == at_ratio
    shown = f"{(D(at_ratio) * 100).quantize(D('0.01'))} %"
    assert (await page.locator("#reserves-ratio-at-as-of").inner_text()).startswith(shown)
    assert await page.locator("#reserves-drift").get_attribute("data-raw") == api["drift"]["raw"]
    assert (
        (await page.locator("#reserves-drift").inner_text()).strip() == api["drift"]["amount"] == "100000000"
    )
    # Peg: the median of the venues up (-5.8, +3.0 -> -1.4), their depth within one cent, summed.
    assert (await page.locator("#peg-median").inner_text()).strip() == "-1.4 bps"
    assert await page.locator("#peg-depth").get_attribute("data-usd") == str(
        D("2500000.25") + D("1750000") + D("400000") + D("600000.75")
    )
    rows = page.locator("#venues tbody tr")
    assert [await rows.nth(i).get_attribute("data-venue") for i in range(3)] == list(VENUES)
    down = page.locator('#venues tr[data-venue="univ2-usd1-weth"]')
    assert (await down.locator(".status").inner_text()).startswith("down")
    assert await down.locator(".deviation").get_attribute("data-bps") == "-129"
    v3 = page.locator('#venues tr[data-venue="univ3-usd1-usdc"]')
    assert (await v3.locator(".depth").inner_text()).strip() == "1,000,001+"  # a lower bound
