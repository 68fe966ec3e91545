"""PURE: Tron addresses, base58check `T...` <-> the 20-byte hex form the JSON-RPC logs carry.

A Tron account is 21 bytes: the prefix byte 0x41 and 20 bytes (the same 20 bytes as an EVM
address). Users and explorers write it base58check (`0x41 || 20 bytes || first 4 bytes of
sha256(sha256(those 21 bytes))`, base58 encoded: 34 characters starting with `T`). Tron's
JSON-RPC logs carry the 20 bytes alone (`0x` + 40 hex, no `41`), and its request parameters
accept 20-byte or 21-byte hex but not base58 (see /work/shared/realdata/tron/FACTS.md).

The indexer stores and compares the 20-byte lowercase `0x` form, so a Tron chain runs the EVM
source unchanged; `to_hex` is the one way in, `to_base58` the way out for people.

No base58 library is installed in the project's environment, so base58check is written here on
hashlib alone (a few lines; checked against the vectors in tests/unit/test_tron.py).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = 0x41
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
BASE58_LENGTH = 34

_HEX20_RE = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_HEX21_RE = re.compile(r"^(0x)?41[0-9a-fA-F]{40}$")


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58encode(data: bytes) -> str:
    """Plain base58 (Bitcoin alphabet); each leading zero byte becomes a leading `1`."""
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n:
        n, r = divmod(n, 58)
        out.append(ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Plain base58 to bytes; ValueError naming the first character outside the alphabet."""
    n = 0
    for pos, c in enumerate(text):
        digit = _INDEX.get(c)
        if digit is None:
            raise ValueError(f"character {c!r} at position {pos} is not base58")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


class TronAddressError(ValueError):
    """A string that is no Tron address; `why` says what is wrong without quoting the value."""

    def __init__(self, value: str, why: str) -> None:
        super().__init__(f"invalid Tron address {value[:80]!r}: {why}")
        self.why = why


def _invalid(value: str, why: str) -> TronAddressError:
    return TronAddressError(value, why)


def _from_base58(value: str) -> bytes:
    if len(value) != BASE58_LENGTH:
        raise _invalid(value, f"a base58 address is {BASE58_LENGTH} characters, got {len(value)}")
    try:
        raw = b58decode(value)
    except ValueError as exc:
        raise _invalid(value, str(exc)) from None
    if len(raw) != 25:
        raise _invalid(value, f"decodes to {len(raw)} bytes, expected 25 (21 + 4 checksum)")
    payload, check = raw[:21], raw[21:]
    if _checksum(payload) != check:
        raise _invalid(value, "bad base58check checksum")
    if payload[0] != PREFIX:
        raise _invalid(value, f"prefix byte is 0x{payload[0]:02x}, expected 0x41")
    return payload[1:]


def to_hex(value: str) -> str:
    """Any accepted spelling of a Tron address -> lowercase `0x` + 40 hex (the form in logs).

    Accepted: base58check `T...` (34 characters), 21-byte hex `41...` and 20-byte hex, each hex
    form with or without `0x`. Anything else is a ValueError naming what is wrong.
    """
    if not isinstance(value, str):
        raise TypeError(f"a Tron address is a string, got {type(value).__name__}")
    if _HEX20_RE.match(value):
        return "0x" + value.removeprefix("0x").lower()
    if _HEX21_RE.match(value):
        return "0x" + value.removeprefix("0x")[2:].lower()
    if value.startswith("0x") or re.fullmatch(r"[0-9a-fA-F]+", value):
        raise _invalid(value, "hex must be 40 digits (20 bytes) or 42 digits starting with 41")
    if not value.startswith("T"):
        raise _invalid(value, "expected base58 starting with T, or 20/21-byte hex")
    return "0x" + _from_base58(value).hex()


def to_base58(value: str) -> str:
    """A 20-byte (or 21-byte `41...`) hex address -> base58check `T...`."""
    if _HEX20_RE.match(value):
        body = bytes.fromhex(value.removeprefix("0x"))
    elif _HEX21_RE.match(value):
        body = bytes.fromhex(value.removeprefix("0x")[2:])
    else:
        raise _invalid(value, "expected 0x + 40 hex digits or 41 + 40 hex digits")
    payload = bytes([PREFIX]) + body
    return b58encode(payload + _checksum(payload))


def is_tron_address(value: str) -> bool:
    """Whether `to_hex` accepts `value`."""
    try:
        to_hex(value)
    except ValueError:
        return False
    return True
