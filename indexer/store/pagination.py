"""Keyset-pagination cursors: one strict, authenticated codec for every paginated route.

A route declares its position type once, as a `Layout`: a scope (the route's name), and one
`IntField`/`TextField` per field of the position dataclass, with the range or the characters the
database column accepts. `CursorCodec.encode` turns a position into an opaque token;
`CursorCodec.decode` turns a token back into the position or raises `CursorError` (a 400 for the
HTTP API, exit 2 for the CLI). Nothing a client sends reaches SQL unless it decodes.

Token: urlsafe base64 (no padding) of the JSON array `[version, scope, fingerprint, *values]`
followed by a 16-byte HMAC-SHA256 tag over those bytes. The tag makes a forged or altered cursor
a 400 before anything in it is looked at; the scope keeps one route's cursor out of another; the
fingerprint (the caller's hash of the filters) binds a cursor to the filters it was issued for.
Even an authentic cursor is then checked field by field (types, ranges, lengths, characters), so
a key that leaked, or a change of layout, cannot put an out-of-range value into a query.

The key: `http.cursor_key` in the config, or else a random key generated once into
`data_dir/cursor.key` (mode 0600). Every process serving the API for one database (a `serve` on a
read replica) must use the same key, or cursors from one are refused by another.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import structlog

from indexer.errors import ConfigError

log = structlog.get_logger(__name__)

VERSION = 2  # 1: unauthenticated [1, fingerprint, block, log_index, tx_hash]
TAG_BYTES = 16
MAX_TOKEN_CHARS = 512
MIN_KEY_BYTES = 16
KEY_FILE = "cursor.key"
INT32_MAX = 2**31 - 1  # PostgreSQL integer
BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_KEY_FILE_RE = re.compile(r"[0-9a-f]{64}")

P = TypeVar("P")


class CursorError(ValueError):
    """A pagination cursor that is malformed, forged, altered or was issued for other filters."""


@dataclass(frozen=True, slots=True)
class IntField:
    """An integer position field within [low, high] (the column type's range, or narrower)."""

    name: str
    low: int = 0
    high: int = BIGINT_MAX

    def check(self, value: Any) -> bool:
        return type(value) is int and self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class TextField:
    """A text position field: at most `max_len` characters, all matching `pattern` (a character
    class of printable ASCII: no NUL, nothing outside what the column holds)."""

    name: str
    max_len: int
    pattern: re.Pattern[str] = re.compile(r"[0-9A-Za-z]+")

    def check(self, value: Any) -> bool:
        return (
            type(value) is str
            and 0 < len(value) <= self.max_len
            and value.isascii()
            and value.isprintable()
            and self.pattern.fullmatch(value) is not None
        )


Field = IntField | TextField


@dataclass(frozen=True)
class Layout(Generic[P]):
    """The cursor shape of one route: `position` is a dataclass whose fields are `fields`, in order."""

    scope: str
    position: Callable[..., P]
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        assert dataclasses.is_dataclass(self.position)
        names = [f.name for f in dataclasses.fields(self.position)]
        assert names == [f.name for f in self.fields], f"{self.scope}: layout {self.fields} != {names}"


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"cursor key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]

    def encode(self, layout: Layout[P], fingerprint: str, position: P) -> str:
        values = tuple(getattr(position, f.name) for f in layout.fields)
        for f, value in zip(layout.fields, values, strict=True):
            if not f.check(value):  # never issue a cursor that decode would refuse
                raise ValueError(f"{layout.scope}: {f.name}={value!r} cannot be put in a cursor")
        payload = orjson.dumps([VERSION, layout.scope, fingerprint, *values])
        return base64.urlsafe_b64encode(payload + self._tag(payload)).decode().rstrip("=")

    def decode(self, layout: Layout[P], fingerprint: str, token: str) -> P:
        if (
            not isinstance(token, str)
            or not 0 < len(token) <= MAX_TOKEN_CHARS
            or len(token) % 4 == 1
            or _TOKEN_RE.fullmatch(token) is None
        ):
            raise CursorError("invalid cursor")
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise CursorError("invalid cursor") from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode():
            raise CursorError("invalid cursor")  # non-canonical padding bits: not what we issued
        payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if len(raw) <= TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise CursorError("invalid cursor: not issued by this server, or altered")
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise CursorError("invalid cursor") from None
        n = len(layout.fields)
        if not isinstance(data, list) or len(data) != 3 + n or type(data[0]) is not int or data[0] != VERSION:
            raise CursorError("invalid cursor")
        if data[1] != layout.scope:
            raise CursorError(f"invalid cursor: it was issued by another route, not {layout.scope}")
        if data[2] != fingerprint:
            raise CursorError("cursor was issued for different filters; start again without a cursor")
        values = data[3:]
        for f, value in zip(layout.fields, values, strict=True):
            if not f.check(value):
                raise CursorError(f"invalid cursor: bad {f.name}")
        return layout.position(*values)


def cursor_key(configured: str, data_dir: Path) -> bytes:
    """The configured key (`http.cursor_key`), else the one kept in `data_dir/cursor.key`, created
    on first use (64 hex digits, mode 0600, published atomically so concurrent starts agree)."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process published one first: use that one
            log.info("cursor_key_created", path=str(path))
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, 0o600)
        log.warning("cursor_key_permissions_fixed", path=str(path), was=oct(stat.S_IMODE(mode)))
    text = path.read_text().strip()
    if _KEY_FILE_RE.fullmatch(text) is None:
        raise ConfigError(
            [f"data_dir: {path} does not hold a cursor key (64 hex digits); delete it to make a new one"]
        )
    return bytes.fromhex(text)
