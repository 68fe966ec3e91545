"""The public transparency page (`GET /`): server-rendered HTML, no JavaScript, inline CSS and SVG.

Every figure comes from `indexer.store.queries` read in one snapshot, the same reads the JSON API
serves, so the page and `/api/v1/*` agree. The rendered page is cached in memory keyed by each
chain's (head, head hash, finalized) and the minute, and served with a strong ETag (304 on
If-None-Match), so a busy page costs one small query per request.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from markupsafe import Markup

from indexer.attest_sig import SignatureCheck
from indexer.attestation import Attestation
from indexer.config import Config
from indexer.reserves import ReservesSnapshot
from indexer.store import control_queries as cq
from indexer.store import depeg_queries as dq
from indexer.store import queries as q
from indexer.units import to_decimal_str

ReservesProvider = Callable[[], ReservesSnapshot | None]

TEMPLATES = Path(__file__).parent / "templates"
WINDOWS = (7, 30, 365)
PEG_HISTORY_ROWS = 10  # depeg episodes shown in "Peg history"
CHART_MAX_POINTS = 120
_LADDER = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=7),
]


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tokens"] = fmt_tokens
    return env


def fmt_tokens(raw: int, decimals: int, places: int = 2) -> str:
    """Human figure: thousands separators, `places` decimals (exact value goes in data-amount)."""
    value = Decimal(raw).scaleb(-decimals).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{value:,.{places}f}"


def fmt_time(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: Decimal) -> str:
    """A short human duration: 45 s, 12 min 5 s, 3 h 20 min, 2 d 4 h."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def peg_history(page: dq.DepegPage) -> list[dict[str, Any]]:
    """The "Peg history" rows: venue (or all venues), start, peak (bps, one decimal; exact in the
    title), duration so far or in all, open/closed."""
    rows = []
    for item in page.episodes:
        e, j = item.episode, item.to_json(page.now)
        rows.append(
            {
                "id": item.id,
                "venue": e.venue if e.venue is not None else "all venues",
                "scope": e.scope,
                "started": fmt_time(e.started_at),
                "peak": f"{e.peak_bps.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN):+}",
                "peak_exact": j["peak_bps"],
                "peak_at": fmt_time(e.peak_at),
                "duration": fmt_duration(Decimal(j["duration_seconds"])),
                "open": e.open,
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class Figure:
    """An exact amount with its display form."""

    raw: int
    decimals: int

    @property
    def exact(self) -> str:
        return to_decimal_str(self.raw, self.decimals)

    @property
    def display(self) -> str:
        return fmt_tokens(self.raw, self.decimals)


def chart_interval(span: timedelta) -> timedelta:
    for step in _LADDER:
        if span / step <= CHART_MAX_POINTS:
            return step
    return _LADDER[-1]


def svg_chart(
    points: Sequence[tuple[datetime, int]], decimals: int, width: int = 720, height: int = 220
) -> Markup:
    """A step chart of cumulative supply (carried forward between blocks), drawn server-side."""
    if not points:
        return Markup('<p class="muted">No supply history yet.</p>')
    pad_l, pad_r, pad_t, pad_b = 8, 8, 22, 24
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max(v for _, v in points) or 1
    top = top + top // 20
    n = len(points)

    def x(i: int) -> float:
        return pad_l + (w * i / (n - 1) if n > 1 else w)

    def y(value: int) -> float:
        return pad_t + h - h * value / top

    d = [f"M{x(0):.1f},{y(points[0][1]):.1f}"]
    for i in range(1, n):
        d.append(f"H{x(i):.1f}V{y(points[i][1]):.1f}")
    area = "".join(d) + f"V{pad_t + h:.1f}H{x(0):.1f}Z"
    first, last = points[0][0], points[-1][0]
    label_max = fmt_tokens(top, decimals, 0)
    latest = fmt_tokens(points[-1][1], decimals, 0)
    svg = (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" '
        f'preserveAspectRatio="none" class="chart" data-points="{n}">'
        f'<title id="chart-title">Total supply from {fmt_time(first)} to {fmt_time(last)}; latest {latest}</title>'
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" class="axis"/>'
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l + w}" y2="{pad_t}" class="grid"/>'
        f'<path d="{area}" class="area"/>'
        f'<path d="{"".join(d)}" class="line"/>'
        f'<text x="{pad_l}" y="{pad_t - 6}" class="lbl">{label_max}</text>'
        f'<text x="{pad_l}" y="{height - 6}" class="lbl">{first:%Y-%m-%d %H:%M}</text>'
        f'<text x="{pad_l + w}" y="{height - 6}" class="lbl" text-anchor="end">{last:%Y-%m-%d %H:%M}</text>'
        "</svg>"
    )
    return Markup(svg)


async def gather(
    cfg: Config, conn: Any, ats: dict[str, q.AsOf], now: datetime, reserves: ReservesSnapshot | None
) -> dict[str, Any]:
    chains = list(cfg.chains)
    supplies = [await q.chain_supply(conn, c, ats.get(c.name, q.AsOf(c.name))) for c in chains]
    dp = max((c.decimals for c in chains), default=0)
    total_fin = sum(q.scale(s.finalized.supply, s.decimals, dp) for s in supplies)
    total_head = sum(q.scale(s.head.supply, s.decimals, dp) for s in supplies)

    rows = []
    for s in supplies:
        at = s.as_of
        pending_blocks = (
            None if at.block is None or at.finalized_block is None else at.block - at.finalized_block
        )
        rows.append(
            {
                "chain": s.chain,
                "finalized": Figure(s.finalized.supply, s.decimals),
                "head": Figure(s.head.supply, s.decimals),
                "pending": Figure(s.head.supply - s.finalized.supply, s.decimals),
                "pending_blocks": pending_blocks,
                "as_of": at,
                "updated": fmt_time(at.updated_at),
                "block_time": fmt_time(at.block_time),
            }
        )

    flows = []
    for days in WINDOWS:
        minted = burned = mints = burns = 0
        for s in supplies:
            fl = await q.flow(conn, s.chain, s.as_of.block, now - timedelta(days=days))
            minted += q.scale(fl.minted, s.decimals, dp)
            burned += q.scale(fl.burned, s.decimals, dp)
            mints += fl.mints
            burns += fl.burns
        flows.append(
            {
                "days": days,
                "minted": Figure(minted, dp),
                "burned": Figure(burned, dp),
                "net": Figure(minted - burned, dp),
                "mints": mints,
                "burns": burns,
            }
        )

    first = await q.first_block_time(conn, [c.name for c in chains])
    chart = svg_chart([], dp)
    chart_info = ""
    if first is not None:
        span = min(max(now - first, timedelta(minutes=10)), timedelta(days=365))
        step = chart_interval(span)
        since = now - span
        series = [await q.supply_history(conn, c, since, now, step) for c in chains]
        pts: list[tuple[datetime, int]] = []
        for i, pt in enumerate(series[0].points if series else []):
            pts.append((pt.end, sum(q.scale(s.points[i].totals.supply, s.decimals, dp) for s in series)))
        chart = svg_chart(pts, dp)
        chart_info = f"{len(pts)} points, one per {_human(step)}"

    controls = []
    for c in chains:
        contracts = c.control_contracts()
        if not contracts:
            continue
        view = await cq.chain_controls(conn, c.name, c.decimals, c.first_height, contracts, ats.get(c.name))
        if not view.enabled:
            continue
        head = view.head
        last = head.state.last if head is not None else None
        controls.append(
            {
                "chain": c.name,
                "kind": c.kind,
                "state": None if head is None else head.state.token,
                "show": c.show_address,
                "frozen": None if head is None else Figure(head.frozen_raw, c.decimals),
                "last": last,
                "last_time": None if last is None else fmt_time(cq.block_time(last.timestamp)),
                "coverage_from": None if view.coverage is None else view.coverage.from_block,
                "complete": view.complete,
            }
        )

    reserve_view = None
    if reserves is not None and reserves.attestation is not None:
        att = reserves.attestation
        ratio = reserves.backing_ratio
        reserve_view = {
            "ratio": None if ratio is None else f"{(ratio * 100).quantize(Decimal('0.01'))} %",
            "reserves_usd": None
            if reserves.reserves_usd is None
            else f"{reserves.reserves_usd.quantize(Decimal('0.01')):,}",
            "as_of": fmt_time(att.as_of),
            "next_due": None if reserves.next_due is None else fmt_time(reserves.next_due),
            "custodian": att.custodian,
            "largest_custodian": _largest_custodian(att),
            "attestor": att.attestor,
            "report_url": att.report_url,
            "stale": reserves.stale,
            "up": reserves.up,
            "signature": _signature_view(reserves.signature),
        }
    depegs = await dq.depegs(conn, dq.DepegFilter(), limit=PEG_HISTORY_ROWS)
    return {
        "token": cfg.token.symbol,
        "peg_history": peg_history(depegs),
        "depeg_threshold_bps": cfg.market.depeg_threshold_bps,
        "total_finalized": Figure(total_fin, dp),
        "total_head": Figure(total_head, dp),
        "total_pending": Figure(total_head - total_fin, dp),
        "chains": rows,
        "flows": flows,
        "chart": chart,
        "chart_info": chart_info,
        "controls": controls,
        "reserves": reserve_view,
        "reserves_configured": reserves is not None,
        "generated_minute": now.strftime("%Y-%m-%d %H:%M UTC"),
    }


def _largest_custodian(att: Attestation) -> str | None:
    """`NAME (share %)` for version 2 documents, else None."""
    held, share = att.by_custodian(), att.custodian_concentration()
    if not held or share is None:
        return None
    pct = (Decimal(share.numerator) / Decimal(share.denominator) * 100).quantize(Decimal("0.1"))
    return f"{next(iter(held))} ({pct} %)"


def _signature_view(check: SignatureCheck | None) -> dict[str, Any]:
    """Verified only when the signature checked out; anything else reads as unverified."""
    if check is None or not check.valid:
        reason = (
            "no signature key configured" if check is None or check.status == "unconfigured" else check.reason
        )
        return {"verified": False, "status": "unverified", "detail": reason, "key": None}
    fp = check.key_fingerprint or ""
    return {"verified": True, "status": "verified", "detail": None, "key": fp[:23]}


def _human(step: timedelta) -> str:
    s = int(step.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if s % size == 0:
            n = s // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{s} s"


async def transparency_page(
    cfg: Config,
    pool: asyncpg.Pool,
    reserves: ReservesProvider | None,
    cache: dict[str, Any],
) -> tuple[bytes, str]:
    """(body, ETag) of the page; re-rendered when a chain moves, the attestation changes, or a
    minute passes (the 7/30/365-day windows slide)."""
    now = datetime.now(UTC)
    snap = reserves() if reserves is not None else None
    att = snap.attestation if snap is not None else None
    async with q.snapshot(pool) as conn:
        ats = await q.as_of_all(conn)
        key = (
            tuple((c.name, *_cursor_key(ats.get(c.name))) for c in cfg.chains),
            now.replace(second=0, microsecond=0),
            await dq.last_change(conn),
            reserves is not None,
            None
            if att is None
            else (att.as_of, snap.backing_ratio if snap else None, snap.stale if snap else None),
        )
        if cache.get("key") == key:
            return cache["body"], cache["etag"]
        ctx = await gather(cfg, conn, ats, now, snap)
    body = _env().get_template("index.html").render(**ctx).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    cache.update(key=key, body=body, etag=etag)
    return body, etag


def _cursor_key(at: q.AsOf | None) -> tuple[Any, ...]:
    return (None, None, None) if at is None else (at.block, at.block_hash, at.finalized_block)
