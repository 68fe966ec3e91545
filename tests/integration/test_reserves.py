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


class RecordingLog:
    """A structlog-shaped logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.records.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)

    def events(self, level: str | None = None) -> list[str]:
        return [e for lv, e, _ in self.records if level is None or lv == level]


def _pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


async def test_signed_attestations_valid_tampered_wrong_key_truncated_missing(tmp_path: Path) -> None:
    """With a key configured only a document whose detached signature verifies is adopted; every
    rejection keeps the last valid attestation, sets the metric to 0 and is logged once with its
    reason; a valid document afterwards is adopted again (and its recovery logged once)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from indexer.attest_sig import fingerprint, sign_document
    from indexer.reserves import load_reserves_key

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "issuer.pub.pem").write_bytes(_pem(key))
    path, sig = tmp_path / "reserves.json", tmp_path / "reserves.json.sig"
    first = EXAMPLE.read_bytes()
    path.write_bytes(first)
    sig.write_bytes(sign_document(first, key))
    cfg = ReservesConfig(url="file://reserves.json", public_key="issuer.pub.pem")
    pub = load_reserves_key(cfg, tmp_path)
    assert pub is not None
    fp = fingerprint(key.public_key())
    metrics, log = Metrics(), RecordingLog()
    reg = metrics.registry
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(
            cfg,
            metrics,
            session,
            Supply(10**27),
            base_dir=tmp_path,
            clock=lambda: NOW + 86400 * 40,
            logger=log,
            public_key=pub,
        )
        assert await svc.refresh()
        snap = svc.snapshot()
        assert snap.signature is not None and snap.signature.status == "valid"
        assert snap.signature.key_fingerprint == fp
        assert reg.get_sample_value("usd1_reserves_signature_valid") == 1
        assert snap.reserves_usd == Decimal("2200000000.25")

        # tampered: the issuer's signed June document with one figure raised after signing
        june = json.loads(first)
        june["as_of"] = "2025-06-30T23:59:59Z"
        signed = json.dumps(june).encode()
        tampered = signed.replace(b'"1850000000.00"', b'"9850000000.00"').replace(
            b'"2200000000.25"', b'"10200000000.25"'
        )
        assert tampered != signed
        path.write_bytes(tampered)
        sig.write_bytes(sign_document(signed, key))
        cases = [
            ("tampered", lambda: None, "tampered content"),
            (
                "wrong key",
                lambda: (path.write_bytes(signed), sig.write_bytes(sign_document(signed, other))),
                f"wrong key: signed by {fingerprint(other.public_key())}",
            ),
            ("truncated", lambda: sig.write_bytes(key.sign(signed)[:50]), "signature truncated: 50 bytes"),
            ("missing", lambda: sig.unlink(), "no detached signature found"),
        ]
        for name, setup, reason in cases:
            setup()
            assert not await svc.refresh(), name
            snap = svc.snapshot()
            assert snap.latest_signature is not None, name
            assert snap.latest_signature.status == ("missing" if name == "missing" else "invalid"), name
            assert (snap.latest_signature.reason or "").startswith(reason), (name, snap.latest_signature)
            assert reg.get_sample_value("usd1_reserves_signature_valid") == 0, name
            rejections = reg.get_sample_value("usd1_reserves_signature_rejections_total")
            assert rejections == 1 + [c[0] for c in cases].index(name), name
            assert reg.get_sample_value("usd1_reserves_up") == 0, name
            # the last valid attestation stays in force
            assert snap.attestation is not None and snap.attestation.as_of.month == 5, name
            assert snap.reserves_usd == Decimal("2200000000.25"), name
            assert snap.signature is not None and snap.signature.status == "valid", name
            assert f"signature: {reason}" in (snap.last_error or ""), name
        # one error log for the outage, naming the first reason
        rejected = [kw for lv, e, kw in log.records if e == "reserves_signature_rejected"]
        assert len(rejected) == 1 and log.events("error") == ["reserves_signature_rejected"]
        assert rejected[0]["reason"].startswith("tampered content")
        assert rejected[0]["kept_as_of"] == "2025-05-31T23:59:59+00:00"
        assert reg.get_sample_value("usd1_reserves_signature_rejections_total") == 4

        # an unreadable document, then a rejected one again: each change of kind is logged once
        path.unlink()
        assert not await svc.refresh() and not await svc.refresh()
        path.write_bytes(tampered)
        sig.write_bytes(sign_document(signed, key))
        assert not await svc.refresh() and not await svc.refresh()
        assert [e for e in log.events() if e != "reserves_stale"] == [
            "reserves_signature_rejected",
            "reserves_down",
            "reserves_signature_rejected",
        ]

        path.write_bytes(signed)
        assert await svc.refresh()
        snap = svc.snapshot()
        assert snap.attestation is not None and snap.attestation.as_of.month == 6
        assert reg.get_sample_value("usd1_reserves_signature_valid") == 1
        assert log.events("info") == ["reserves_recovered"]


async def test_unsigned_without_key_is_adopted_but_unverified(tmp_path: Path) -> None:
    (tmp_path / "reserves.json").write_bytes(EXAMPLE.read_bytes())
    metrics = Metrics()
    cfg = ReservesConfig(url="file://reserves.json")
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(cfg, metrics, session, Supply(10**27), base_dir=tmp_path, clock=lambda: NOW)
        assert await svc.refresh()
    snap = svc.snapshot()
    assert snap.signature is not None and snap.signature.status == "unconfigured"
    assert metrics.registry.get_sample_value("usd1_reserves_signature_valid") == 0


def test_bad_public_key_is_a_config_error(tmp_path: Path) -> None:
    from indexer.errors import ConfigError
    from indexer.reserves import load_reserves_key

    (tmp_path / "k.pem").write_text("hello")
    with pytest.raises(ConfigError) as info:
        load_reserves_key(ReservesConfig(url="file://r.json", public_key="k.pem"), tmp_path)
    assert info.value.problems[0].startswith("reserves.public_key: ")
    assert "not an Ed25519 public key" in info.value.problems[0]
    with pytest.raises(ConfigError, match="cannot read"):
        load_reserves_key(ReservesConfig(url="file://r.json", public_key="nope.pem"), tmp_path)


async def test_v2_attestation_exports_custodian_concentration(tmp_path: Path) -> None:
    v2 = EXAMPLE.parent / "reserves.v2.example.json"
    path = tmp_path / "reserves.json"
    path.write_bytes(v2.read_bytes())
    metrics = Metrics()
    reg = metrics.registry
    cfg = ReservesConfig(url="file://reserves.json")
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(
            cfg, metrics, session, Supply(10**27), base_dir=tmp_path, clock=lambda: NOW + 86400 * 31
        )
        assert await svc.refresh()
        assert reg.get_sample_value("usd1_reserves_usd") == 2180450000.25
        conc = reg.get_sample_value("usd1_reserves_custodian_concentration_ratio")
        assert conc == float(Fraction(158555000000, 218045000025))
        # back to a v1 document: concentration is unknown, not 1 and not the old value
        path.write_bytes(EXAMPLE.read_bytes())
        assert await svc.refresh()
        conc = reg.get_sample_value("usd1_reserves_custodian_concentration_ratio")
        assert conc is not None and conc != conc  # NaN


async def test_cadence_drives_next_due_and_staleness(tmp_path: Path) -> None:
    (tmp_path / "reserves.json").write_bytes(EXAMPLE.read_bytes())  # as of 2025-05-31T23:59:59Z
    due = 1_754_006_399.0  # 2025-07-31T23:59:59Z: the June attestation, 31 days' grace
    now = {"t": due - 1}
    metrics = Metrics()
    reg = metrics.registry
    cfg = ReservesConfig.model_validate(
        {"url": "file://reserves.json", "cadence": "monthly", "grace": "31d", "max_age": "1h"}
    )
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(
            cfg, metrics, session, Supply(10**27), base_dir=tmp_path, clock=lambda: now["t"]
        )
        assert reg.get_sample_value("usd1_reserves_next_due_timestamp_seconds") != reg.get_sample_value(
            "usd1_reserves_next_due_timestamp_seconds"
        )  # NaN before any attestation
        assert await svc.refresh()
        assert reg.get_sample_value("usd1_reserves_next_due_timestamp_seconds") == due
        snap = svc.snapshot()
        assert not snap.stale  # two months old, but within its cadence (max_age no longer applies)
        assert snap.next_due is not None and snap.next_due.timestamp() == due
        now["t"] = due + 1
        assert svc.snapshot().stale


async def test_api_and_page_show_signature_status_and_v2_figures(pool: Any, dsn: str, tmp_path: Path) -> None:
    """`/api/v1/reserves` and the page: a verified v2 attestation, then a tampered one (rejected:
    the API shows why, the page keeps the verified one), and the unconfigured case."""
    import orjson
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from indexer.api.app import create_app
    from indexer.attest_sig import fingerprint, sign_document
    from indexer.daemon import serve_http
    from indexer.store.store import Store
    from tests.support import api_data

    key = Ed25519PrivateKey.generate()
    fp = fingerprint(key.public_key())
    doc_bytes = (EXAMPLE.parent / "reserves.v2.example.json").read_bytes()
    (tmp_path / "r.json").write_bytes(doc_bytes)
    (tmp_path / "r.json.sig").write_bytes(sign_document(doc_bytes, key))
    cfg = api_data.config(dsn, tmp_path)
    rcfg = ReservesConfig.model_validate(
        {"url": "file://r.json", "cadence": "monthly", "grace": "30d", "public_key": "k.pem"}
    )
    metrics = Metrics()
    async with aiohttp.ClientSession() as http:
        svc = ReservesService(
            rcfg,
            metrics,
            http,
            Supply(2_000_000_000 * 10**18),
            base_dir=tmp_path,
            clock=lambda: NOW + 86400 * 31,
            public_key=key.public_key(),
        )
        assert await svc.refresh()
        await svc.update_ratio()
        app = create_app(cfg, Store(pool), metrics, reserves=svc.snapshot)
        bare = create_app(cfg, Store(pool), Metrics())
        async with serve_http(app, "127.0.0.1", 0) as port, serve_http(bare, "127.0.0.1", 0) as port2:
            base = f"http://127.0.0.1:{port}"

            async def api() -> dict[str, Any]:
                async with http.get(f"{base}/api/v1/reserves") as r:
                    assert r.status == 200
                    out: dict[str, Any] = orjson.loads(await r.read())
                    return out

            async def page() -> str:
                async with http.get(f"{base}/") as r:
                    assert r.status == 200
                    return await r.text()

            body = await api()
            assert body["configured"] and body["up"] and not body["stale"]
            assert body["signature"] == {"status": "valid", "key_fingerprint": fp, "reason": None}
            att = body["attestation"]
            assert att["version"] == 2 and att["as_of"] == "2025-06-30T23:59:59Z"
            assert att["reserves_usd"] == "2180450000.25"
            assert att["by_custodian"]["Example Bank N.A."] == "519900000.25"
            assert att["custodian_concentration"] == "0.727166410520"
            assert att["assets"][0]["market_value_usd"] == "994250000.00"
            assert att["assets"][0]["isin"] == "US912797KJ59"
            assert body["backing_ratio"] == "1.090225000125"
            assert body["next_due"] == "2025-08-30T23:59:59Z"  # end of July + 30 days grace
            html = await page()
            assert f"verified (key {fp[:23]}" in html
            assert "Example Trust Company (72.7 %)" in html

            tampered = doc_bytes.replace(b'"25000000.25"', b'"95000000.25"').replace(
                b'"2180450000.25"', b'"2250450000.25"'
            )
            (tmp_path / "r.json").write_bytes(tampered)
            assert not await svc.refresh()
            body = await api()
            assert not body["up"] and body["attestation"]["reserves_usd"] == "2180450000.25"
            assert body["signature"]["status"] == "valid"
            assert body["latest_signature"]["status"] == "invalid"
            assert body["latest_signature"]["reason"].startswith("tampered content")
            assert "signature: tampered content" in body["last_error"]
            async with http.get(f"{base}/api/v1/reserves", params={"x": "1"}) as r:
                assert r.status == 400 and "error" in orjson.loads(await r.read())

            async with http.get(f"http://127.0.0.1:{port2}/api/v1/reserves") as r:
                unconf = orjson.loads(await r.read())
            assert unconf["configured"] is False and unconf["signature"] is None

        # no key configured: adopted, and shown as unverified
        unsigned = ReservesService(
            ReservesConfig(url="file://u.json"),
            Metrics(),
            http,
            Supply(10**27),
            base_dir=tmp_path,
            clock=lambda: NOW,
        )
        (tmp_path / "u.json").write_bytes(EXAMPLE.read_bytes())
        assert await unsigned.refresh()
        app3 = create_app(cfg, Store(pool), Metrics(), reserves=unsigned.snapshot)
        async with serve_http(app3, "127.0.0.1", 0) as port3:
            async with http.get(f"http://127.0.0.1:{port3}/") as r:
                html = await r.text()
            assert '<span class="warn">unverified</span>: no signature key configured' in html
            async with http.get(f"http://127.0.0.1:{port3}/api/v1/reserves") as r:
                sig = orjson.loads(await r.read())["signature"]
            assert sig == {
                "status": "unconfigured",
                "key_fingerprint": None,
                "reason": "no reserves.public_key configured",
            }


async def test_figure_at_as_of_schedule_failures_and_logs(tmp_path: Path) -> None:
    """The circulating supply at as_of is read at adoption, each round while unknown, every
    `as_of_interval` once known, and again for a new as_of; a failed read keeps the last figure of
    the same as_of; unavailability, failure and recovery are each logged once."""
    from datetime import datetime

    from indexer import backing as bk

    path = tmp_path / "reserves.json"
    path.write_text(EXAMPLE.read_text())
    metrics = Metrics()
    gauge = metrics.registry.get_sample_value
    log = RecordingLog()
    now = [NOW]
    calls: list[datetime] = []
    answers: list[bk.AtAsOf | Exception] = []

    async def supply_at(when: datetime) -> bk.AtAsOf:
        calls.append(when)
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    def known(when: datetime, raw: int) -> bk.AtAsOf:
        return bk.AtAsOf(when, bk.TotalSupply(raw, 18), {}, exact=True)

    att = parse_attestation(EXAMPLE.read_bytes())
    cfg = ReservesConfig(url="file://reserves.json", interval=3600)
    async with aiohttp.ClientSession() as session:
        svc = ReservesService(
            cfg,
            metrics,
            session,
            Supply(2_200_000_000_25 * 10**16),
            base_dir=tmp_path,
            clock=lambda: now[0],
            logger=log,
            supply_at=supply_at,
            as_of_interval=300,
        )
        assert all(
            gauge(n) != gauge(n)  # NaN before any attestation
            for n in (
                "usd1_backing_ratio_at_as_of",
                "usd1_backing_coverage",
                "usd1_supply_drift_since_as_of_tokens",
            )
        )
        assert await svc.refresh()
        answers += [bk.unavailable(att.as_of, "not final"), bk.unavailable(att.as_of, "not final")]
        await svc.update_ratio()
        await svc.update_ratio()
        assert len(calls) == 2 and log.events("warning") == ["reserves_as_of_unavailable"]
        assert gauge("usd1_backing_ratio_at_as_of") != gauge("usd1_backing_ratio_at_as_of")
        assert gauge("usd1_backing_coverage") == 1.0
        # known: read once, not again within as_of_interval
        answers.append(known(att.as_of, 2_000_000_000 * 10**18))
        await svc.update_ratio()
        now[0] += 299
        await svc.update_ratio()
        assert len(calls) == 3
        assert gauge("usd1_backing_ratio_at_as_of") == pytest.approx(1.100000000125, rel=1e-15)
        assert gauge("usd1_supply_drift_since_as_of_tokens") == 200_000_000.25
        assert log.events("info")[-1] == "reserves_as_of_available"
        # after the interval: read again; a failure keeps the figure of the same as_of
        now[0] += 2
        answers += [OSError("db gone"), OSError("db gone")]
        await svc.update_ratio()
        await svc.update_ratio()
        assert len(calls) == 5
        assert gauge("usd1_backing_ratio_at_as_of") == pytest.approx(1.100000000125, rel=1e-15)
        assert log.events("warning").count("reserves_supply_at_as_of_failed") == 1
        answers.append(known(att.as_of, 2_000_000_000 * 10**18))
        await svc.update_ratio()
        assert log.events("info").count("reserves_supply_at_as_of_recovered") == 1
        # a new attestation (another as_of) is read at once, never with the old figure
        path.write_text(json.dumps(doc(as_of="2025-06-01T00:00:00Z")))
        now[0] += 10
        assert await svc.refresh()
        answers.append(OSError("db gone"))
        await svc.update_ratio()
        assert calls[-1].isoformat() == "2025-06-01T00:00:00+00:00"
        assert gauge("usd1_backing_ratio_at_as_of") != gauge("usd1_backing_ratio_at_as_of")
        snap = svc.snapshot()
        assert snap.backing is not None and snap.backing.at is not None
        assert snap.backing.at.reason == "the store could not be read"
