"""The public transparency page (`GET /`): server-rendered HTML, no JavaScript, inline CSS and SVG.

Every figure comes from `indexer.store.queries` read in one snapshot, the same reads the JSON API
serves, so the page and `/api/v1/*` agree. The rendered page is cached in memory keyed by each
chain's (head, head hash, finalized) and the minute, and served with a strong ETag (304 on
If-None-Match), so a busy page costs one small query per request.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import jinja2

from indexer import bridges
from indexer.api.chart import PALETTE, stacked_svg
from indexer.attest_sig import SignatureCheck
from indexer.attestation import Attestation
from indexer.backing import Backing
from indexer.config import Config
from indexer.depegs import exact_median
from indexer.market.depth import band_label
from indexer.oracle import OracleSnapshot
from indexer.reserves import ReservesSnapshot, backing_json
from indexer.store import control_queries as cq
from indexer.store import depeg_queries as dq
from indexer.store import queries as q
from indexer.units import to_decimal_str

if TYPE_CHECKING:  # web3 is imported only when venues are configured
    from indexer.market.service import VenueSnapshot

ReservesProvider = Callable[[], ReservesSnapshot | None]
MarketProvider = Callable[[], Mapping[str, "VenueSnapshot"]]

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
    env.filters["usd"] = fmt_usd
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
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 // 60 else f"{s // 3600} h"
    return f"{s // 86400} d {s % 86400 // 3600} h" if s % 86400 // 3600 else f"{s // 86400} d"


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


async def gather(
    cfg: Config,
    conn: Any,
    ats: dict[str, q.AsOf],
    now: datetime,
    reserves: ReservesSnapshot | None,
    venues: Mapping[str, VenueSnapshot] | None = None,
    oracle: OracleSnapshot | None = None,
) -> dict[str, Any]:
    chains = list(cfg.chains)
    supplies = [
        await cq.with_classes(
            conn,
            await q.chain_supply(conn, c, ats.get(c.name, q.AsOf(c.name))),
            c.control_contracts(),
            c.classified(),
        )
        for c in chains
    ]
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

    flows = flow_view(
        supplies,
        await q.flows(
            conn,
            {s.chain: s.as_of.block for s in supplies if s.as_of.block is not None},
            [now - timedelta(days=d) for d in WINDOWS],
        ),
        now,
        dp,
    )

    first = await q.first_block_time(conn, [c.name for c in chains])
    chart = stacked_svg([], [], "", str)
    chart_info = ""
    legend: list[dict[str, Any]] = []
    if first is not None:
        span = min(max(now - first, timedelta(minutes=10)), timedelta(days=365))
        step = chart_interval(span)
        since = now - span
        series = [await q.supply_history(conn, c, since, now, step) for c in chains]
        times = [pt.end for pt in series[0].points] if series else []
        stacked = [
            (s.chain, [max(0, q.scale(pt.totals.supply, s.decimals, dp)) for pt in s.points]) for s in series
        ]
        latest = sum(values[-1] for _, values in stacked) if times else 0
        title = f"Supply by chain from {fmt_time(times[0])} to {fmt_time(times[-1])}" if times else ""
        chart = stacked_svg(
            times, stacked, f"{title}; latest {fmt_tokens(latest, dp, 0)}", lambda v: fmt_tokens(v, dp, 0)
        )
        chart_info = f"{len(times)} points, one per {_human(step)}"
        legend = [
            {
                "chain": s.chain,
                "css": f"s{i % PALETTE}",
                "latest": Figure(s.points[-1].totals.supply, s.decimals) if s.points else None,
            }
            for i, s in enumerate(series)
        ]

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
            "by_category": [(k, _usd(v), str(v)) for k, v in att.by_category().items()],
            "by_custodian": [(k, _usd(v), str(v)) for k, v in (att.by_custodian() or {}).items()],
            "age": None if reserves.age_seconds is None else fmt_duration(Decimal(reserves.age_seconds)),
            "age_seconds": None if reserves.age_seconds is None else round(reserves.age_seconds),
            "cadence": _cadence(cfg),
            **_backing_view(reserves.backing),
        }
    depegs = await dq.depegs(conn, dq.DepegFilter(), limit=PEG_HISTORY_ROWS)
    return {
        "token": cfg.token.symbol,
        "breakdown": breakdown(supplies),
        "peg_history": peg_history(depegs),
        "depeg_threshold_bps": cfg.market.depeg_threshold_bps,
        "total_finalized": Figure(total_fin, dp),
        "total_head": Figure(total_head, dp),
        "total_pending": Figure(total_head - total_fin, dp),
        "chains": rows,
        "flows": flows,
        "chart": chart,
        "chart_info": chart_info,
        "legend": legend,
        "controls": controls,
        "reserves": reserve_view,
        "reserves_configured": reserves is not None,
        "market": None if not venues else market_view(venues, cfg.market.bands_bps),
        "oracle": oracle_view(oracle),
        "generated_minute": now.strftime("%Y-%m-%d %H:%M UTC"),
    }


ONE_CENT_BPS = 100  # one cent of a $1 peg


@dataclass(frozen=True, slots=True)
class VenueRow:
    name: str
    kind: str
    up: bool
    price: str  # "0.9994" or "—"
    deviation: str  # "-6.0" bps or "—"
    deviation_exact: str | None
    depth: Decimal | None  # bid + ask within the band, USD (None: not read)
    complete: bool
    last_success: str


@dataclass(frozen=True, slots=True)
class MarketView:
    band_bps: int  # the band the depth figures are within (100, else the widest configured below)
    venues: list[VenueRow]
    median_deviation: str | None  # over the live venues (the depeg aggregate), bps
    depth: Decimal  # every live venue's depth within the band, USD
    complete: bool  # every live venue's book was read to the band's edge


def depth_band(bands: Sequence[int]) -> int:
    """One cent (100 bps) when configured, else the widest band below it, else the narrowest."""
    below = [b for b in bands if b <= ONE_CENT_BPS]
    return max(below) if below else min(bands)


def market_view(venues: Mapping[str, VenueSnapshot], bands: Sequence[int]) -> MarketView:
    """Per venue (config order) its last good price, deviation from the peg and depth within the
    band; the aggregate over the venues that are up (a venue down keeps its last figures but
    counts in no aggregate)."""
    band = depth_band(bands)
    label = band_label(band)
    rows, live = [], []
    depth, complete = Decimal(0), True
    for v in venues.values():
        d = None
        if v.depth_usd:
            d = sum((v.depth_usd.get(side, {}).get(label, Decimal(0)) for side in v.depth_usd), Decimal(0))
        if v.up and v.deviation_bps is not None:
            live.append(v.deviation_bps)
            depth += d or Decimal(0)
            complete = complete and v.depth_complete
        rows.append(
            VenueRow(
                v.name,
                v.kind,
                v.up,
                "—"
                if v.price_usd is None
                else f"{v.price_usd.quantize(Decimal('0.0001'), rounding=ROUND_HALF_EVEN)}",
                "—" if v.deviation_bps is None else _bps(v.deviation_bps),
                None if v.deviation_bps is None else str(v.deviation_bps),
                d,
                v.depth_complete,
                "—" if v.last_success is None else fmt_time(datetime.fromtimestamp(v.last_success, UTC)),
            )
        )
    median = _bps(exact_median(live)) if live else None
    return MarketView(band, rows, median, depth, complete)


def _bps(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN):+}"


def fmt_usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN):,}"


@dataclass(frozen=True, slots=True)
class FlowRow:
    """Mints and burns of one scope (a chain, or `all` in the largest precision) in one window."""

    scope: str
    minted: Figure
    burned: Figure
    mints: int
    burns: int

    @property
    def net(self) -> Figure:
        return Figure(self.minted.raw - self.burned.raw, self.minted.decimals)


@dataclass(frozen=True, slots=True)
class FlowWindow:
    days: int
    total: FlowRow
    chains: list[FlowRow]


def flow_view(
    supplies: Sequence[q.ChainSupply], flows: Sequence[q.Flow], now: datetime, dp: int
) -> list[FlowWindow]:
    """One row per window of `WINDOWS` days before `now`: every chain's mints and burns (0 while
    a chain is not indexed) and their sum in precision `dp`. `flows`: from `q.flows`."""
    by = {(f.chain, f.since): f for f in flows}
    out = []
    for days in WINDOWS:
        since = now - timedelta(days=days)
        chains = []
        for s in supplies:
            f = by.get((s.chain, since)) or q.Flow(s.chain, since, 0, 0, 0, 0)
            chains.append(
                FlowRow(s.chain, Figure(f.minted, s.decimals), Figure(f.burned, s.decimals), f.mints, f.burns)
            )
        total = FlowRow(
            "all",
            Figure(sum(q.scale(c.minted.raw, c.minted.decimals, dp) for c in chains), dp),
            Figure(sum(q.scale(c.burned.raw, c.burned.decimals, dp) for c in chains), dp),
            sum(c.mints for c in chains),
            sum(c.burns for c in chains),
        )
        out.append(FlowWindow(days, total, chains))
    return out


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Total -> circulating at the finalized block(s): `total = non_circulating (by label) + frozen +
    circulating`. `scope`: a chain's name or `all` (every chain, in the largest precision; None
    figures while a chain has no classes, as the API's `total.circulating`)."""

    scope: str
    total: Figure
    labels: list[tuple[str, Figure]]
    frozen: Figure | None
    circulating: Figure | None


def breakdown(supplies: Sequence[q.ChainSupply]) -> list[Breakdown]:
    """The global breakdown first, then one per chain with classes (finalized figures)."""
    dp = max((s.decimals for s in supplies), default=0)
    total = sum(q.scale(s.finalized.supply, s.decimals, dp) for s in supplies)
    complete = all(s.finalized_classes is not None for s in supplies)
    labels: dict[str, int] = {}
    frozen = 0
    per_chain = []
    for s in supplies:
        c = s.finalized_classes
        if c is None:
            continue
        for label, raw in c.non_circulating.items():
            labels[label] = labels.get(label, 0) + q.scale(raw, s.decimals, dp)
        frozen += q.scale(c.frozen, s.decimals, dp)
        per_chain.append(
            Breakdown(
                s.chain,
                Figure(c.total, s.decimals),
                [(label, Figure(raw, s.decimals)) for label, raw in c.non_circulating.items()],
                Figure(c.frozen, s.decimals),
                Figure(c.circulating, s.decimals),
            )
        )
    circulating = bridges.global_circulating(q.positions(supplies)["finalized"])
    glob = Breakdown(
        "all",
        Figure(total, dp),
        [(label, Figure(raw, dp)) for label, raw in sorted(labels.items())] if complete else [],
        Figure(frozen, dp) if complete else None,
        None if circulating is None else Figure(circulating, dp),
    )
    return [glob, *per_chain]


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"


def _backing_view(b: Backing | None) -> dict[str, Any]:
    """The ratio at the attestation's as_of (or why it is unknown) and the supply issued since,
    from the same figures as /api/v1/reserves (`backing_json`)."""
    body = backing_json(b)
    at, drift = body["at_as_of"], body["drift"]
    ratio = None if at is None else at["ratio"]
    return {
        "ratio_at_as_of": None if ratio is None else f"{(Decimal(ratio) * 100).quantize(Decimal('0.01'))} %",
        "ratio_at_as_of_exact": ratio,
        "ratio_at_as_of_reason": None if at is None else at["reason"],
        "drift": None if drift is None else drift["amount"],
        "drift_raw": None if drift is None else drift["raw"],
    }


def _cadence(cfg: Config) -> str:
    """The configured cadence as read: `monthly`, `every 30 d`, or the max age without one."""
    r = cfg.reserves
    if r is None:
        return "—"
    if r.cadence is None:
        return f"none (stale after {fmt_duration(Decimal(r.max_age))})"
    grace = f" + {fmt_duration(Decimal(r.grace))} grace" if r.grace else ""
    if isinstance(r.cadence, str):
        return r.cadence + grace
    return f"every {fmt_duration(Decimal(r.cadence))}{grace}"


def _pct(value: Any) -> str | None:
    if value is None:
        return None
    d = Decimal(value.numerator) / Decimal(value.denominator) * 100
    return f"{d.quantize(Decimal('0.01'))} %"


def oracle_view(snap: OracleSnapshot | None) -> dict[str, Any] | None:
    """The proof-of-reserve feed's rows in the reserves section (None: no feed configured)."""
    if snap is None:
        return None
    r = snap.reading
    return {
        "chain": snap.chain,
        "address": snap.address,
        "answer": None if r is None else f"{Decimal(r.answer).quantize(Decimal('0.01')):,}",
        "round_id": None if r is None else r.round.round_id,
        "updated": None if r is None else fmt_time(datetime.fromtimestamp(r.round.updated_at, UTC)),
        "stale": snap.stale,
        "up": snap.up,
        "vs_attestation": _pct(snap.vs_attestation),
        "coverage": _pct(snap.coverage),
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
    market: MarketProvider | None = None,
    oracle: Callable[[], OracleSnapshot] | None = None,
) -> tuple[bytes, str]:
    """(body, ETag) of the page; re-rendered when a chain moves, the attestation changes, or a
    minute passes (the 7/30/365-day windows slide), or a venue goes up or down or its price moves
    by 0.0001 (depth figures refresh with the minute)."""
    now = datetime.now(UTC)
    snap = reserves() if reserves is not None else None
    venues = market() if market is not None else None
    att = snap.attestation if snap is not None else None
    feed = oracle() if oracle is not None else None
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
            None if venues is None else tuple((v.name, v.up, _price_key(v)) for v in venues.values()),
            None if feed is None else (oracle_view(feed), feed.reading),
        )
        if cache.get("key") == key:
            return cache["body"], cache["etag"]
        ctx = await gather(cfg, conn, ats, now, snap, venues, feed)
    body = _env().get_template("index.html").render(**ctx).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    cache.update(key=key, body=body, etag=etag)
    return body, etag


def _price_key(v: VenueSnapshot) -> Decimal | None:
    return None if v.price_usd is None else v.price_usd.quantize(Decimal("0.0001"))


def _cursor_key(at: q.AsOf | None) -> tuple[Any, ...]:
    return (None, None, None) if at is None else (at.block, at.block_hash, at.finalized_block)
