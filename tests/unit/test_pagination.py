"""The pagination cursor codec: strict, authenticated, and nothing but `CursorError` for any input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.errors import ConfigError
from indexer.store import pagination as pg
from indexer.store.pagination import BIGINT_MAX, INT32_MAX, CursorCodec, CursorError, cursor_key
from indexer.store.queries import POSITION, Position
from tests.unit.test_fuzz_inputs import FUZZ

KEY = b"k" * 32
CODEC = CursorCodec(KEY)
FP = "0123456789abcdef"

positions = st.builds(
    Position,
    st.integers(0, BIGINT_MAX),
    st.integers(0, INT32_MAX),
    st.text("0123456789abcdefx" + "ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=128),
)


def signed(*items: Any, key: bytes = KEY) -> str:
    """A token over arbitrary items, authenticated with `key`: what a holder of the key could make."""
    payload = json.dumps(list(items), separators=(",", ":")).encode()  # json: integers of any size
    tag = hmac.new(key, payload, hashlib.sha256).digest()[: pg.TAG_BYTES]
    return base64.urlsafe_b64encode(payload + tag).decode().rstrip("=")


@FUZZ
@given(positions)
def test_round_trip(pos: Position) -> None:
    token = CODEC.encode(POSITION, FP, pos)
    assert len(token) <= pg.MAX_TOKEN_CHARS
    assert CODEC.decode(POSITION, FP, token) == pos


@FUZZ
@given(positions, st.data())
def test_any_change_to_a_cursor_is_refused(pos: Position, data: st.DataObject) -> None:
    token = CODEC.encode(POSITION, FP, pos)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("AQgw_-09az").filter(lambda c: c != token[i]))
    for bad in (token[:i] + c + token[i + 1 :], token[:i] + token[i + 1 :], token + c):
        with pytest.raises(CursorError):
            CODEC.decode(POSITION, FP, bad)


@FUZZ
@given(st.text(max_size=700) | st.binary(max_size=300).map(lambda b: base64.urlsafe_b64encode(b).decode()))
@example("\x00")
@example("A" * 513)
@example("")
def test_any_text_is_a_position_or_a_cursor_error(token: str) -> None:
    try:
        pos = CODEC.decode(POSITION, FP, token)
    except CursorError:
        return
    raise AssertionError(f"accepted a token the codec never issued: {token!r} -> {pos}")


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.integers(-(2**80), 2**80),
            st.text(max_size=140),
            st.none(),
            st.booleans(),
            st.floats(allow_nan=False),
        ),
        min_size=3,
        max_size=3,
    )
)
def test_authentic_cursors_are_still_checked_field_by_field(values: list[Any]) -> None:
    """Even with the key (leaked, or a layout change), a value outside its column is refused."""
    token = signed(pg.VERSION, "transfers", FP, *values)
    try:
        pos = CODEC.decode(POSITION, FP, token)
    except CursorError:
        return
    assert 0 <= pos.block_number <= BIGINT_MAX and type(pos.block_number) is int
    assert 0 <= pos.log_index <= INT32_MAX and type(pos.log_index) is int
    assert pos.tx_hash.isascii() and pos.tx_hash.isalnum() and len(pos.tx_hash) <= 128


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ((pg.VERSION, "transfers", FP, 1, 2**31, "0xab"), "bad log_index"),  # int32 column
        ((pg.VERSION, "transfers", FP, 2**63, 1, "0xab"), "bad block_number"),  # bigint column
        ((pg.VERSION, "transfers", FP, -1, 1, "0xab"), "bad block_number"),
        ((pg.VERSION, "transfers", FP, 1, 1, "0xab\x00"), "bad tx_hash"),  # NUL
        ((pg.VERSION, "transfers", FP, 1, 1, "0xé"), "bad tx_hash"),
        ((pg.VERSION, "transfers", FP, 1, 1, "a" * 129), "bad tx_hash"),
        ((pg.VERSION, "transfers", FP, 1, True, "0xab"), "bad log_index"),
        ((pg.VERSION, "transfers", FP, 1.0, 1, "0xab"), "bad block_number"),
        ((pg.VERSION, "control-events", FP, 1, 1, "0xab"), "another route"),
        ((pg.VERSION, "transfers", "other", 1, 1, "0xab"), "different filters"),
        ((1, "transfers", FP, 1, 1, "0xab"), "invalid cursor"),
        ((pg.VERSION, "transfers", FP, 1, 1), "invalid cursor"),
    ],
)
def test_refusals(items: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(CursorError, match=fragment):
        CODEC.decode(POSITION, FP, signed(*items))


def test_forged_and_foreign_cursors_are_refused() -> None:
    genuine = signed(pg.VERSION, "transfers", FP, 1, 1, "0xab")
    assert CODEC.decode(POSITION, FP, genuine) == Position(1, 1, "0xab")
    with pytest.raises(CursorError, match="not issued by this server"):
        CODEC.decode(POSITION, FP, signed(pg.VERSION, "transfers", FP, 1, 1, "0xab", key=b"x" * 32))
    unsigned = base64.urlsafe_b64encode(orjson.dumps([1, FP, 1, 1, "0xab"])).decode().rstrip("=")
    with pytest.raises(CursorError, match="invalid cursor"):
        CODEC.decode(POSITION, FP, unsigned)  # the version 1 format had no tag
    with pytest.raises(ValueError, match="cannot be put in a cursor"):
        CODEC.encode(POSITION, FP, Position(1, 2**31, "0xab"))


def test_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = cursor_key("", data)
    path = data / pg.KEY_FILE
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cursor_key("", data) == key
    assert sorted(p.name for p in data.iterdir()) == [pg.KEY_FILE]  # no temporary file left
    os.chmod(path, 0o644)
    assert cursor_key("", data) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cursor_key("a configured key, long enough", data) == b"a configured key, long enough"
    path.write_text("not a key\n")
    with pytest.raises(ConfigError, match="does not hold a cursor key"):
        cursor_key("", data)
    with pytest.raises(ValueError, match="at least"):
        CursorCodec(b"short")
