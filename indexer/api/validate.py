"""Input validation for the HTTP API and CLI: every bad value is a clear 400, never a 500."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import orjson
from aiohttp import web

from indexer.config import ChainConfig, Config

_DIGITS = re.compile(r"[0-9]{1,19}")
_UNIX = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")
_INTERVAL = re.compile(r"([0-9]{1,6})([mhdw])")
_AMOUNT = re.compile(r"[0-9]{1,78}(\.[0-9]{1,78})?")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_HEIGHT = 2**62
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_UNIX = 7258118400  # 2200-01-01: far enough, and bucket arithmetic cannot overflow
MIN_INTERVAL = timedelta(minutes=1)
MAX_INTERVAL = timedelta(days=366)


class BadRequest(web.HTTPBadRequest):
    """400 with a JSON body naming what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(text=orjson.dumps({"error": message}).decode(), content_type="application/json")
        self.message = message


def chain_of(cfg: Config, name: str) -> ChainConfig:
    for c in cfg.chains:
        if c.name == name:
            return c
    raise BadRequest(f"unknown chain {name[:64]!r}; known: {', '.join(c.name for c in cfg.chains)}")


def address_for(chain: ChainConfig, value: str, what: str = "address") -> str:
    """A user-typed address (parameter `what`) -> the stored form, in any spelling the chain's
    dialect accepts (Tron: `T...`, `41...` or 20-byte hex); a 400 naming `what` otherwise."""
    try:
        return chain.parse_address(value)
    except ValueError as exc:
        raise BadRequest(f"invalid {what} {value[:80]!r} for chain {chain.name}: {exc}") from None


def tx_hash_for(chain: ChainConfig, value: str) -> str:
    fmt = chain.TX
    got = fmt.parse(value)
    if got is None:
        raise BadRequest(f"invalid {fmt.noun} {value[: fmt.shown]!r}: {fmt.doc}")
    return got


def height(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not _DIGITS.fullmatch(value) or int(value) > MAX_HEIGHT:
        raise BadRequest(f"invalid {what} {value[:40]!r}: expected a non-negative integer")
    return int(value)


def only_params(request: web.Request, allowed: set[str]) -> None:
    """Refuse unknown and repeated query parameters (a repeated one would be silently ambiguous)."""
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    if len(request.query) != len(set(request.query)):
        repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
        raise BadRequest(f"query parameter(s) given more than once: {', '.join(repeated[:5])}")


def timestamp(value: str | None, what: str) -> datetime | None:
    """ISO-8601 (a missing zone means UTC) or Unix seconds -> aware UTC datetime."""
    if value is None or value == "":
        return None
    text = value
    try:
        if _UNIX.fullmatch(text):
            seconds = Decimal(text)
            if not 0 <= seconds < MAX_UNIX:
                raise ValueError
            return EPOCH + timedelta(seconds=float(seconds))
        if len(text) > 40 or not text.isascii():
            raise ValueError
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
        if not EPOCH <= parsed < EPOCH + timedelta(seconds=MAX_UNIX):
            raise ValueError
        return parsed
    except (ValueError, OverflowError, ArithmeticError):
        raise BadRequest(
            f"invalid {what} {value[:40]!r}: expected ISO-8601 (2025-01-31T12:00:00Z) or Unix seconds"
        ) from None


def interval(value: str | None, default: timedelta) -> timedelta:
    """`N` + m|h|d|w, e.g. 15m, 1h, 1d, 1w; between 1 minute and 366 days."""
    if value is None or value == "":
        return default
    m = _INTERVAL.fullmatch(value)
    if m is None:
        raise BadRequest(
            f"invalid interval {value[:40]!r}: expected N followed by m, h, d or w (e.g. 1h, 1d)"
        )
    result = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if not MIN_INTERVAL <= result <= MAX_INTERVAL:
        raise BadRequest(f"interval {value!r} is out of range: 1m .. 366d")
    return result


def bounded_int(value: str | None, what: str, default: int, low: int, high: int) -> int:
    parsed = height(value, what)
    if parsed is None:
        return default
    if not low <= parsed <= high:
        raise BadRequest(f"{what} must be between {low} and {high}")
    return parsed


def amount(value: str | None, decimals: int, what: str = "min_amount") -> int | None:
    """A non-negative decimal token amount (`1000`, `0.5`) -> exact base units."""
    if value is None or value == "":
        return None
    if not _AMOUNT.fullmatch(value):
        raise BadRequest(f"invalid {what} {value[:40]!r}: expected a non-negative decimal amount of tokens")
    whole, _, frac = value.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        raise BadRequest(f"invalid {what} {value[:40]!r}: more than {decimals} decimal places")
    try:
        raw = int(whole) * 10**decimals + (int(frac.ljust(decimals, "0")) if frac else 0)
    except (ValueError, InvalidOperation):
        raise BadRequest(f"invalid {what} {value[:40]!r}") from None
    if raw >= 2**256:
        raise BadRequest(f"{what} is larger than any uint256 amount")
    return raw


def choice(value: str | None, what: str, options: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    if value not in options:
        raise BadRequest(f"invalid {what} {value[:40]!r}: expected one of {', '.join(options)}")
    return value


def kinds(value: str | None, options: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated event kinds; empty means every kind."""
    if value is None or value == "":
        return ()
    parts = [k.strip() for k in value.split(",")]
    bad = [k for k in parts if k not in options]
    if bad:
        raise BadRequest(
            f"invalid kind {bad[0][:40]!r}: expected a comma-separated subset of {', '.join(options)}"
        )
    return tuple(sorted(set(parts)))
