"""Reserve attestations -> `usd1_reserves_usd`, `usd1_backing_ratio`, `usd1_reserves_age_seconds`,
`usd1_reserves_up`, `usd1_reserves_signature_valid`, `usd1_reserves_custodian_concentration_ratio`.

The document format (versions 1 and 2) is in `indexer.attestation`; detached signatures in
`indexer.attest_sig`. The document is loaded from `file://PATH` (relative paths resolve against
`base_dir`) or `http(s)://URL`; with `reserves.public_key` set its detached signature
(`reserves.signature_url`, default the URL + `.sig`) must verify or the document is not adopted.

Backing (`indexer.backing`): reserves against the global circulating supply at the attestation's
`as_of` (`usd1_backing_ratio_at_as_of`) and at the finalized blocks now (`usd1_backing_coverage`,
also exported as `usd1_backing_ratio`), and the supply drift between the two. Both supplies come
from callables the daemon passes in (exact base units and their decimals); the figure at as_of is
read when an attestation is adopted, again each round while it is unavailable (as_of not final
yet), and every `as_of_interval` seconds otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import aiohttp
import structlog

from indexer import backing as bk

if TYPE_CHECKING:  # cryptography loads on first use (indexer/attest_sig.py)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from indexer.attest_sig import PublicKeyError, SignatureCheck, check_signature, load_public_key
from indexer.attestation import (
    Attestation,
    ReservesError,
    parse_attestation,
)
from indexer.cadence import next_due
from indexer.config import ReservesConfig
from indexer.errors import ConfigError
from indexer.http_json import read_capped
from indexer.metrics import Metrics
from indexer.units import amount_json, to_float

MAX_DOCUMENT = 4 * 1024 * 1024


class SignatureRejected(ReservesError):
    """A public key is configured and the document's detached signature does not verify."""

    def __init__(self, source: str, check: SignatureCheck) -> None:
        self.check = check
        super().__init__(source, [f"signature: {check.reason}"])


def load_reserves_key(config: ReservesConfig | None, base_dir: Path | None) -> Ed25519PublicKey | None:
    """The configured `reserves.public_key` (a path relative to `base_dir`), or None; an unreadable
    or non-Ed25519 key is a ConfigError naming `reserves.public_key`."""
    if config is None or config.public_key is None:
        return None
    path = Path(config.public_key)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"reserves.public_key: cannot read {path}: {exc.strerror}"]) from None
    try:
        return load_public_key(data)
    except PublicKeyError as exc:
        raise ConfigError([f"reserves.public_key: {path}: {exc}"]) from None


TotalSupply = bk.TotalSupply
SupplyFn = Callable[[], Awaitable[TotalSupply | None]]  # global circulating at the finalized blocks
AsOfFn = Callable[[datetime], Awaitable[bk.AtAsOf]]  # global circulating at a time


def backing_ratio(reserves_usd: Decimal, supply: TotalSupply) -> Fraction | None:
    """reserves / (raw / 10^decimals), exact; None when the supply is zero."""
    return bk.ratio(reserves_usd, supply)


def _nan(value: Fraction | TotalSupply | None) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, Fraction):
        return float(value)
    return to_float(value.raw, value.decimals)


class _NotFound(ReservesError):
    """The document does not exist (no such file, HTTP 404 or 410)."""


async def load_optional_bytes(
    url: str, session: aiohttp.ClientSession, *, base_dir: Path | None = None, timeout_s: float = 30.0
) -> bytes | None:
    """Like load_attestation_bytes, but None when there is no such document (file or HTTP 404/410)."""
    try:
        return await load_attestation_bytes(url, session, base_dir=base_dir, timeout_s=timeout_s)
    except _NotFound:
        return None


async def load_attestation_bytes(
    url: str, session: aiohttp.ClientSession, *, base_dir: Path | None = None, timeout_s: float = 30.0
) -> bytes:
    """Read the document from file:// or http(s)://; failures raise ReservesError."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # file:///abs/path, file://relative/path (netloc is the first path segment) and file:rel
        path = Path(unquote(parsed.netloc + parsed.path))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise _NotFound(url, [f"<root>: cannot read {path}: {exc.strerror}"]) from None
        except OSError as exc:
            raise ReservesError(url, [f"<root>: cannot read {path}: {exc.strerror}"]) from None
        if len(data) > MAX_DOCUMENT:
            raise ReservesError(url, [f"<root>: document larger than {MAX_DOCUMENT} bytes"])
        return data
    if parsed.scheme in ("http", "https"):
        try:
            async with asyncio.timeout(timeout_s):
                async with session.get(url) as resp:
                    body = await read_capped(resp.content, MAX_DOCUMENT)
                    if resp.status in (404, 410):
                        raise _NotFound(url, [f"<root>: HTTP {resp.status}"])
                    if resp.status != 200:
                        raise ReservesError(url, [f"<root>: HTTP {resp.status}"])
        except TimeoutError:
            raise ReservesError(url, [f"<root>: no reply within {timeout_s:g}s"]) from None
        except aiohttp.ClientError as exc:
            raise ReservesError(url, [f"<root>: {type(exc).__name__}: {exc}"]) from None
        if len(body) > MAX_DOCUMENT:
            raise ReservesError(url, [f"<root>: document larger than {MAX_DOCUMENT} bytes"])
        return body
    raise ReservesError(url, ["<root>: unsupported URL scheme (use file://, http:// or https://)"])


@dataclass(frozen=True)
class ReservesSnapshot:
    up: bool
    attestation: Attestation | None  # the last valid one (kept while later reads fail)
    reserves_usd: Decimal | None
    backing_ratio: Decimal | None  # reserves / circulating now (= `backing.coverage`)
    supply: TotalSupply | None  # global circulating now (finalized)
    age_seconds: float | None
    stale: bool  # past next_due
    last_success: float | None
    last_error: str | None
    # Signature of the attestation in force, and of the last document read (differs when that one
    # was rejected; None before any read)
    signature: SignatureCheck | None = None
    latest_signature: SignatureCheck | None = None
    # When the next attestation is overdue (reserves.cadence + grace, or as_of + max_age)
    next_due: datetime | None = None
    # Reserves against circulating supply at as_of and now (None before the first round)
    backing: bk.Backing | None = None


class ReservesService:
    """Fetches the attestation every `config.interval`; recomputes the ratio every `ratio_interval`
    (the supply moves much faster than attestations). A failed fetch sets `usd1_reserves_up` 0 and
    keeps using the last valid attestation (its age keeps growing)."""

    def __init__(
        self,
        config: ReservesConfig,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        supply: SupplyFn,
        *,
        token_symbol: str | None = None,
        base_dir: Path | None = None,
        logger: Any | None = None,
        clock: Callable[[], float] = time.time,
        ratio_interval: float = 30.0,
        retry_interval: float = 60.0,
        public_key: Ed25519PublicKey | None = None,
        supply_at: AsOfFn | None = None,
        as_of_interval: float = 300.0,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._session = session
        self._supply_fn = supply
        self._token = token_symbol
        self._base_dir = base_dir
        self._log = logger if logger is not None else structlog.get_logger("indexer.reserves")
        self._clock = clock
        self._ratio_interval = ratio_interval
        self._retry_interval = retry_interval
        self._attestation: Attestation | None = None
        self._up = False
        self._error: str | None = None
        self._last_success: float | None = None
        self._supply: TotalSupply | None = None
        self._ratio: Fraction | None = None
        self._supply_failing = False
        self._stale_logged = False
        self._key = public_key
        self._signature: SignatureCheck | None = None
        self._latest_signature: SignatureCheck | None = None
        self._failure_kind: str | None = None  # "read" | "signature" while failing
        self._supply_at_fn = supply_at
        self._as_of_interval = as_of_interval
        self._at: bk.AtAsOf | None = None  # for the attestation in force (its as_of)
        self._at_checked = 0.0
        self._at_failing = False
        self._at_reason: str | None = None  # the unavailability last logged
        self._backing: bk.Backing | None = None
        for g in (
            metrics.backing_ratio,
            metrics.backing_ratio_at_as_of,
            metrics.backing_coverage,
            metrics.supply_drift_since_as_of,
        ):
            g.set(float("nan"))
        metrics.reserves_up.set(0)
        metrics.reserves_signature_valid.set(0)
        metrics.reserves_age.set_function(self._age_metric)
        metrics.reserves_next_due.set_function(self._next_due_metric)

    def _age(self) -> float | None:
        if self._attestation is None:
            return None
        return self._clock() - self._attestation.as_of.timestamp()

    def _next_due(self) -> datetime | None:
        if self._attestation is None:
            return None
        c = self._config
        return next_due(self._attestation.as_of, c.cadence, c.grace, c.max_age)

    def _next_due_metric(self) -> float:
        due = self._next_due()
        return float("nan") if due is None else due.timestamp()

    def _stale(self) -> bool:
        due = self._next_due()
        return due is not None and self._clock() > due.timestamp()

    def _age_metric(self) -> float:
        age = self._age()
        return float("nan") if age is None else age

    async def refresh(self) -> bool:
        """Fetch and validate the attestation now; True on success."""
        url = self._config.url
        try:
            data = await load_attestation_bytes(url, self._session, base_dir=self._base_dir)
            check = await self._check_signature(data)
            self._latest_signature = check
            self._metrics.reserves_signature_valid.set(1 if check.valid else 0)
            if self._key is not None and not check.valid:
                self._metrics.reserves_signature_rejections.inc()
                raise SignatureRejected(url, check)
            att = parse_attestation(data, url, token=self._token)
            if att.as_of.timestamp() > self._clock() + 300:
                raise ReservesError(url, [f"as_of: {att.as_of.isoformat()} is in the future"])
        except ReservesError as exc:
            self._metrics.reserves_up.set(0)
            # logged once per outage, and again when its kind changes (unreadable <-> rejected)
            kind = "signature" if isinstance(exc, SignatureRejected) else "read"
            if self._up or self._error is None or kind != self._failure_kind:
                self._failure_kind = kind
                if isinstance(exc, SignatureRejected):
                    self._log.error(
                        "reserves_signature_rejected",
                        source=url,
                        signature=self._config.signature_source,
                        status=exc.check.status,
                        reason=exc.check.reason,
                        key_fingerprint=exc.check.key_fingerprint,
                        kept_as_of=None if self._attestation is None else self._attestation.as_of.isoformat(),
                    )
                else:
                    self._log.warning("reserves_down", source=url, problems=exc.problems)
            self._up, self._error = False, str(exc)
            return False
        if not self._up and self._error is not None:
            self._log.info("reserves_recovered", source=url, signature=check.status)
        self._attestation, self._up, self._error = att, True, None
        self._failure_kind = None
        self._signature = check
        self._last_success = self._clock()
        self._metrics.reserves_up.set(1)
        self._metrics.reserves_usd.set(float(att.reserves_usd))
        conc = att.custodian_concentration()
        self._metrics.reserves_custodian_concentration.set(float("nan") if conc is None else float(conc))
        age = self._age() or 0.0
        stale = self._stale()
        if stale and not self._stale_logged:
            due = self._next_due()
            self._log.warning(
                "reserves_stale",
                as_of=att.as_of.isoformat(),
                age_seconds=round(age),
                next_due=None if due is None else due.isoformat(),
            )
            self._stale_logged = True
        elif not stale:
            self._stale_logged = False
        return True

    async def _check_signature(self, data: bytes) -> SignatureCheck:
        """Fetch the detached signature (only with a key configured) and check it."""
        if self._key is None:
            return check_signature(data, None, None)
        sig = await load_optional_bytes(self._config.signature_source, self._session, base_dir=self._base_dir)
        return check_signature(data, sig, self._key)

    async def _update_at(self, att: Attestation) -> bk.AtAsOf:
        """The circulating supply at the attestation's as_of: read again for a new attestation,
        each round while unavailable, and every `as_of_interval` otherwise. A failed read keeps
        the last figure of the same as_of (logged once, and its recovery once)."""
        if self._supply_at_fn is None:
            return bk.unavailable(att.as_of, "this process does not read the supply at a time")
        at = self._at if self._at is not None and self._at.as_of == att.as_of else None
        now = self._clock()
        if at is not None and at.circulating is not None and now < self._at_checked + self._as_of_interval:
            return at
        try:
            at = await self._supply_at_fn(att.as_of)
        except Exception as exc:
            if not self._at_failing:
                self._log.warning("reserves_supply_at_as_of_failed", error=f"{type(exc).__name__}: {exc}")
            self._at_failing = True
            self._at = at
            return at if at is not None else bk.unavailable(att.as_of, "the store could not be read")
        if self._at_failing:
            self._log.info("reserves_supply_at_as_of_recovered")
            self._at_failing = False
        self._at, self._at_checked = at, now
        if at.reason != self._at_reason:
            if at.reason is not None:
                self._log.warning("reserves_as_of_unavailable", as_of=att.as_of.isoformat(), reason=at.reason)
            else:
                self._log.info(
                    "reserves_as_of_available",
                    as_of=att.as_of.isoformat(),
                    blocks={c: b.number for c, b in at.blocks.items()},
                )
            self._at_reason = at.reason
        return at

    async def update_ratio(self) -> Fraction | None:
        """Recompute the backing figures from the last valid attestation, the circulating supply
        now and at its as_of; returns the coverage (reserves / circulating now)."""
        try:
            supply = await self._supply_fn()
        except Exception as exc:
            if not self._supply_failing:
                self._log.warning("reserves_supply_failed", error=f"{type(exc).__name__}: {exc}")
            self._supply_failing = True
            supply = None
        else:
            if self._supply_failing:
                self._log.info("reserves_supply_recovered")
            self._supply_failing = False
        self._supply = supply
        att = self._attestation
        b = None if att is None else bk.Backing(att.reserves_usd, await self._update_at(att), supply)
        self._backing = b
        ratio = None if b is None else b.coverage
        self._ratio = ratio
        m = self._metrics
        m.backing_ratio.set(_nan(ratio))
        m.backing_coverage.set(_nan(ratio))
        m.backing_ratio_at_as_of.set(_nan(None if b is None else b.ratio_at_as_of))
        m.supply_drift_since_as_of.set(_nan(None if b is None else b.drift))
        return ratio

    def snapshot(self) -> ReservesSnapshot:
        age = self._age()
        att = self._attestation
        return ReservesSnapshot(
            up=self._up,
            attestation=att,
            reserves_usd=att.reserves_usd if att is not None else None,
            backing_ratio=(
                Decimal(self._ratio.numerator) / Decimal(self._ratio.denominator)
                if self._ratio is not None
                else None
            ),
            supply=self._supply,
            age_seconds=age,
            stale=self._stale(),
            last_success=self._last_success,
            last_error=self._error,
            signature=self._signature,
            latest_signature=self._latest_signature,
            next_due=self._next_due(),
            backing=self._backing,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: refresh on schedule, recompute the ratio in between."""
        next_fetch = self._clock()
        while not stop.is_set():
            if self._clock() >= next_fetch:
                ok = await self.refresh()
                next_fetch = self._clock() + (
                    self._config.interval if ok else min(self._config.interval, self._retry_interval)
                )
            await self.update_ratio()
            wait = max(0.0, min(self._ratio_interval, next_fetch - self._clock()))
            try:
                async with asyncio.timeout(wait):
                    await stop.wait()
            except TimeoutError:
                pass


def _ratio_str(value: Fraction | Decimal | None, places: int = 12) -> str | None:
    """An exact ratio as a decimal string rounded (half-even) to `places` decimals."""
    if value is None:
        return None
    d = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(value, Fraction) else value
    return str(d.quantize(Decimal(1).scaleb(-places)))


def _iso(ts: datetime | float | None) -> str | None:
    if ts is None:
        return None
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def attestation_json(att: Attestation) -> dict[str, Any]:
    """The document as read (amounts as exact decimal strings) plus its derived figures."""
    out: dict[str, Any] = att.model_dump(mode="json", exclude_none=False)
    out["as_of"] = _iso(att.as_of)
    out["reserves_usd"] = str(att.reserves_usd)
    out["by_category"] = {k: str(v) for k, v in att.by_category().items()}
    held = att.by_custodian()
    out["by_custodian"] = None if held is None else {k: str(v) for k, v in held.items()}
    out["custodian_concentration"] = _ratio_str(att.custodian_concentration())
    return out


def snapshot_json(snap: ReservesSnapshot | None) -> dict[str, Any]:
    """`GET /api/v1/reserves`: the attestation in force and how far it can be trusted. `signature`
    is that of the attestation in force, `latest_signature` that of the last document read (they
    differ when that one was rejected: `last_error` says why)."""
    if snap is None:
        return {
            "configured": False,
            "up": False,
            "attestation": None,
            "backing_ratio": None,
            "age_seconds": None,
            "next_due": None,
            "stale": False,
            "last_success": None,
            "last_error": None,
            "signature": None,
            "latest_signature": None,
            "at_as_of": None,
            "now": None,
            "drift": None,
        }
    att = snap.attestation
    return {
        "configured": True,
        "up": snap.up,
        "attestation": None if att is None else attestation_json(att),
        "backing_ratio": _ratio_str(snap.backing_ratio),
        "age_seconds": None if snap.age_seconds is None else round(snap.age_seconds),
        "next_due": _iso(snap.next_due),
        "stale": snap.stale,
        "last_success": _iso(snap.last_success),
        "last_error": snap.last_error,
        "signature": None if snap.signature is None else snap.signature.as_json(),
        "latest_signature": None if snap.latest_signature is None else snap.latest_signature.as_json(),
        **backing_json(snap.backing),
    }


def _supply_json(s: TotalSupply | None) -> dict[str, Any] | None:
    return None if s is None else {**amount_json(s.raw, s.decimals), "decimals": s.decimals}


def backing_json(b: bk.Backing | None) -> dict[str, Any]:
    """`at_as_of`, `now` and `drift` of `GET /api/v1/reserves` (exact decimal strings; a figure
    that cannot be known is null, `at_as_of.reason` says why)."""
    if b is None:
        return {"at_as_of": None, "now": None, "drift": None}
    at = b.at
    return {
        "at_as_of": (
            None
            if at is None
            else {
                "as_of": _iso(at.as_of),
                "circulating": _supply_json(at.circulating),
                "ratio": _ratio_str(b.ratio_at_as_of),
                "circulating_exact": at.exact if at.circulating is not None else None,
                "blocks": {
                    c: {"number": blk.number, "hash": blk.hash, "time": _iso(blk.time)}
                    for c, blk in at.blocks.items()
                },
                "reason": at.reason,
            }
        ),
        "now": {
            "finality": "finalized",
            "circulating": _supply_json(b.now),
            "coverage": _ratio_str(b.coverage),
        },
        "drift": _supply_json(b.drift),
    }
