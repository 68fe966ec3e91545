"""Reserve attestations from file:// and http:// (local aiohttp server): exact backing ratio,
clear errors and reserves_up 0 for malformed documents, last valid attestation kept."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from indexer.config import ReservesConfig
from indexer.metrics import Metrics
from indexer.reserves import (
    ReservesError,
    ReservesService,
    TotalSupply,
    backing_ratio,
    parse_attestation,
)

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "reserves.example.json"
NOW = 1_748_736_000.0 + 3600  # one hour after the example's as_of (2025-05-31T23:59:59Z + 1 s)


def doc(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(EXAMPLE.read_text())
    d.update(over)
    return d


class Supply:
    def __init__(self, raw: int, decimals: int = 18) -> None:
        self.value: TotalSupply | None = TotalSupply(raw, decimals)

    async def __call__(self) -> TotalSupply | None:
        return self.value


def test_example_file_is_valid_and_exact() -> None:
    att = parse_attestation(EXAMPLE.read_bytes(), str(EXAMPLE))
    assert att.reserves_usd == Decimal("2200000000.25")
    assert att.by_category()["cash"] == Decimal("25000000.25")
    # 2,200,000,000.25 USD over 2,199,999,999.999999999999999999 tokens (18 dp)
    supply = TotalSupply(2_200_000_000 * 10**18 - 1, 18)
    ratio = backing_ratio(att.reserves_usd, supply)
    assert ratio == Fraction(220000000025, 100) / Fraction(2_200_000_000 * 10**18 - 1, 10**18)
    assert ratio is not None and ratio > 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{not json", "<root>: not valid JSON"),
        (json.dumps(doc(assets=[])), "assets: List should have at least 1 item"),
        (json.dumps(doc(as_of="2025-05-31T23:59:59")), "as_of:"),
        (json.dumps(doc(total_usd="1.00")), "does not equal the sum of assets"),
        (json.dumps(doc(assets=[{"category": "cash", "amount_usd": "-5"}])), "assets.0.amount_usd:"),
        (json.dumps(doc(assets=[{"category": "Cash!", "amount_usd": "5"}])), "invalid category"),
        (json.dumps(doc(assets=[{"category": "cash", "amount_usd": "abc"}])), "invalid decimal amount"),
        (json.dumps(doc(custodian=None)), "custodian:"),
        (json.dumps(doc(surprise=1)), "surprise: unknown key"),
    ],
)
def test_malformed_documents_give_clear_errors(data: Any, fragment: str) -> None:
    with pytest.raises(ReservesError) as info:
        parse_attestation(data, "file://x.json")
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_json_numbers_are_exact() -> None:
    d = doc(assets=[{"category": "cash", "amount_usd": 0.1}, {"category": "cash", "amount_usd": 0.2}])
    d["total_usd"] = 0.3
    att = parse_attestation(json.dumps(d))
    assert att.reserves_usd == Decimal("0.3")


async def test_file_attestation_backing_ratio_and_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "reserves.json"
    path.write_text(EXAMPLE.read_text())
    metrics = Metrics()
    reg = metrics.registry
    supply = Supply(2_000_000_000 * 10**18)
    cfg = ReservesConfig(url="file://reserves.json", interval=3600)
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(cfg, metrics, session, supply, base_dir=tmp_path, clock=lambda: NOW)
        assert await svc.refresh()
        ratio = await svc.update_ratio()
        assert ratio == Fraction(Decimal("2200000000.25")) / 2_000_000_000
        snap = svc.snapshot()
        assert snap.backing_ratio == Decimal("1.100000000125")
        assert reg.get_sample_value("usd1_backing_ratio") == pytest.approx(1.100000000125, rel=1e-15)
        assert reg.get_sample_value("usd1_reserves_usd") == 2200000000.25
        assert reg.get_sample_value("usd1_reserves_up") == 1
        assert reg.get_sample_value("usd1_reserves_age_seconds") == 3601.0
        assert not snap.stale

        path.write_text('{"version": 1, "as_of": "2025-06-30T00:00:00Z", "assets": "lots"}')
        assert not await svc.refresh()
        snap = svc.snapshot()
        assert reg.get_sample_value("usd1_reserves_up") == 0
        assert snap.last_error is not None
        assert "assets: Input should be a valid list" in snap.last_error
        assert "custodian: Field required" in snap.last_error
        # the last valid attestation still backs the ratio, and the supply moves it
        supply.value = TotalSupply(2_200_000_000_25 * 10**16, 18)
        assert await svc.update_ratio() == 1
        assert reg.get_sample_value("usd1_backing_ratio") == 1.0

        path.unlink()
        assert not await svc.refresh()
        assert "cannot read" in (svc.snapshot().last_error or "")


async def test_http_attestation_and_run_loop() -> None:
    state: dict[str, Any] = {"status": 200, "body": EXAMPLE.read_text()}

    async def handle(_: web.Request) -> web.Response:
        return web.Response(status=state["status"], text=state["body"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/reserves.json", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    metrics = Metrics()
    reg = metrics.registry
    cfg = ReservesConfig(url=f"http://127.0.0.1:{port}/reserves.json", interval=0.05)
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as session:
            svc = ReservesService(
                cfg,
                metrics,
                session,
                Supply(1_100_000_000_125 * 10**15),
                ratio_interval=0.02,
                retry_interval=0.05,
            )
            task = asyncio.create_task(svc.run(stop))
            for _ in range(200):
                if svc.snapshot().backing_ratio is not None:
                    break
                await asyncio.sleep(0.01)
            assert svc.snapshot().backing_ratio == 2
            assert reg.get_sample_value("usd1_reserves_up") == 1
            state["status"] = 500
            for _ in range(200):
                if not svc.snapshot().up:
                    break
                await asyncio.sleep(0.01)
            assert reg.get_sample_value("usd1_reserves_up") == 0
            assert "HTTP 500" in (svc.snapshot().last_error or "")
            assert svc.snapshot().backing_ratio == 2  # last valid document
            stop.set()
            await asyncio.wait_for(task, 5)
    finally:
        await runner.cleanup()
