"""Tron address codec (indexer.chains.tron): the worked vectors of realdata/tron/FACTS.md, the real
mainnet log address, round trips, and every bad spelling refused with a message naming why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.chains.dialects import DIALECTS
from indexer.chains.tron import b58decode, b58encode, is_tron_address, to_base58, to_hex

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tron"

# FACTS.md "Worked example": base58, 21-byte hex, 20-byte (log) form.
VECTORS = [
    (
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
        "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c",
    ),  # USDT
    (
        "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc",
        "4191bed8e784249c91611e61c4585c40e21fd0ace2",
        "0x91bed8e784249c91611e61c4585c40e21fd0ace2",
    ),  # USD1
    (
        "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8",
        "413487b63d30b5b2c87fb7ffa8bcfade38eaac1abe",
        "0x3487b63d30b5b2c87fb7ffa8bcfade38eaac1abe",
    ),  # USDC
]


@pytest.mark.parametrize(("b58", "hex21", "hex20"), VECTORS)
def test_every_spelling_gives_the_log_form(b58: str, hex21: str, hex20: str) -> None:
    for spelling in (
        b58,
        hex21,
        "0x" + hex21,
        hex20,
        hex20[2:],
        hex20.upper().replace("0X", "0x"),
        hex21.upper(),
    ):
        assert to_hex(spelling) == hex20, spelling
    assert to_base58(hex20) == b58
    assert to_base58(hex21) == b58
    assert is_tron_address(b58)


def test_usd1_on_tron() -> None:
    assert to_hex("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc") == "0x91bed8e784249c91611e61c4585c40e21fd0ace2"
    assert to_base58("0x91bed8e784249c91611e61c4585c40e21fd0ace2") == "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"


def test_the_real_mainnet_log_address_is_usdt_without_the_41_prefix() -> None:
    """The recorded trongrid reply (java-tron #4987) carries USDT as 20-byte hex; it is TR7NH...."""
    (entry,) = json.loads(
        (FIXTURES / "mainnet_eth_getLogs__java-tron_issue4987__block_0x223a0a7_partial.json").read_text()
    )
    addresses = {log["address"] for log in entry["response"]["result"]}
    assert "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c" in addresses
    for a in addresses:  # every log address is the 20-byte form, and survives the round trip
        assert to_hex(a) == a
        b58 = to_base58(a)
        assert b58.startswith("T") and len(b58) == 34
        assert to_hex(b58) == a
    assert to_base58("0xa614f803b6fd780986a42c78ec9c7f77e6ded13c") == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@given(st.binary(min_size=20, max_size=20))
def test_round_trip(body: bytes) -> None:
    hex20 = "0x" + body.hex()
    b58 = to_base58(hex20)
    assert len(b58) == 34 and b58[0] == "T"
    assert to_hex(b58) == hex20


@given(st.binary(max_size=40))
def test_plain_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


def _flip_last(s: str) -> str:
    return s[:-1] + ("u" if s[-1] != "u" else "v")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (_flip_last("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"), "bad base58check checksum"),
        ("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6R", "34 characters, got 33"),
        ("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6R0", "'0' at position 33 is not base58"),
        ("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rl", "'l' at position 33 is not base58"),
        ("0x91bed8e784249c91611e61c4585c40e21fd0ac", "hex must be 40 digits"),
        ("0x4291bed8e784249c91611e61c4585c40e21fd0ace2", "hex must be 40 digits"),
        ("0xzz", "hex must be 40 digits"),
        ("USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB", "expected base58 starting with T"),
        ("", "expected base58 starting with T"),
    ],
)
def test_bad_addresses_are_refused_naming_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid Tron address") as err:
        to_hex(value)
    assert why in str(err.value)
    assert not is_tron_address(value)


def test_a_valid_checksum_with_another_prefix_is_refused() -> None:
    """A base58check of 25 bytes whose first byte is 0x42: it also spells T..., 34 characters."""
    payload = bytes([0x42]) + bytes(range(20))
    value = b58encode(payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4])
    assert value == "TZJqCCFeCFdJJaGGgNhTbhcLdyjmqUrgFq"
    with pytest.raises(ValueError, match="prefix byte is 0x42, expected 0x41"):
        to_hex(value)


def test_to_base58_refuses_non_hex() -> None:
    with pytest.raises(ValueError, match="invalid Tron address"):
        to_base58("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc")


def test_the_tron_dialect_parses_every_spelling_and_shows_base58() -> None:
    d, eth = DIALECTS["tron"], DIALECTS["ethereum"]
    hex20 = "0x91bed8e784249c91611e61c4585c40e21fd0ace2"
    for spelling in (
        "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc",
        hex20,
        hex20.upper().replace("0X", "0x"),
        "41" + hex20[2:],
    ):
        assert d.parse_address(spelling) == hex20
    assert d.show_address(hex20) == "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"
    assert d.show_address("0x" + "ab" * 32) == "0x" + "ab" * 32  # a role id is no address: unchanged
    assert eth.show_address(hex20) == hex20
    assert eth.parse_address(hex20.upper().replace("0X", "0x")) == hex20
    with pytest.raises(ValueError, match="base58check checksum"):
        d.parse_address("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rd")
    with pytest.raises(ValueError, match="40 hex digits"):
        eth.parse_address("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc")
