"""PURE: the Ethereum 2048-bit logs bloom (yellow paper, section 4.3.1).

For each log, the emitting address and every topic are added: take keccak256 of the raw bytes, and
for each of the first three byte pairs of the hash, set bit `pair & 2047` (bit 0 = lowest-order
bit of the last byte of the 256-byte big-endian filter).

A bloom has no false negatives: an address or topic that was logged in a block is always in the
block's `logsBloom`. It has false positives, so "in the bloom" proves nothing by itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import sha3  # safe-pysha3: C keccak256, ~9x faster than eth_utils' wrapper on this hot path

from indexer.errors import MalformedReply

BLOOM_BYTES = 256
_TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_BLOOM_RE = re.compile(r"^0x[0-9a-fA-F]{512}$")
_BYTES_RE = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")


def parse_bloom(value: Any) -> int:
    """A `logsBloom` hex string -> the filter as a 2048-bit integer."""
    if not isinstance(value, str) or not _BLOOM_RE.match(value):
        raise MalformedReply(f"logsBloom is not 256 hex bytes: {value!r:.80}")
    return int(value, 16)


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _BYTES_RE.match(value):
        raise MalformedReply(f"{what} is not hex bytes: {value!r:.80}")
    return bytes.fromhex(value[2:])


@functools.lru_cache(maxsize=65536)  # tokens, topic0s and busy holders recur in every block
def bloom_bits(item: bytes) -> int:
    """The three bits `item` sets, as a mask."""
    h = sha3.keccak_256(item).digest()
    mask = 0
    for i in (0, 2, 4):
        mask |= 1 << (((h[i] << 8) | h[i + 1]) & 2047)
    return mask


def contains(bloom: int, item: bytes) -> bool:
    mask = bloom_bits(item)
    return bloom & mask == mask


def contains_hex(bloom: int, value: str, what: str = "value") -> bool:
    return contains(bloom, _bytes(value, what))


def log_in_bloom(bloom: int, log: Mapping[str, Any]) -> bool:
    """True when the log's address and every topic are in the bloom (always true for a log
    that really is in the block)."""
    if not contains_hex(bloom, log.get("address"), "log address"):  # type: ignore[arg-type]
        return False
    topics = log.get("topics")
    if not isinstance(topics, list):
        raise MalformedReply(f"log has no topics list: {topics!r:.80}")
    return all(contains_hex(bloom, t, "log topic") for t in topics)


@functools.lru_cache(maxsize=65536)
def _address_bits(address: str) -> int:
    return bloom_bits(bytes.fromhex(address[2:]))


@functools.lru_cache(maxsize=65536)
def _address_topic_bits(address: str) -> int:
    return bloom_bits(bytes(12) + bytes.fromhex(address[2:]))


def transfer_in_bloom(bloom: int, token: str, from_addr: str, to_addr: str) -> bool:
    """`log_in_bloom` for an already decoded ERC-20 Transfer (address, topic0, from, to words)."""
    mask = (
        _address_bits(token) | _TRANSFER_BITS | _address_topic_bits(from_addr) | _address_topic_bits(to_addr)
    )
    return bloom & mask == mask


def bloom_of(logs: Iterable[Mapping[str, Any]]) -> int:
    """The bloom of a set of logs (a block's bloom is the bloom of all its receipts' logs)."""
    out = 0
    for log in logs:
        out |= bloom_bits(_bytes(log.get("address"), "log address"))
        topics = log.get("topics")
        if not isinstance(topics, list):
            raise MalformedReply(f"log has no topics list: {topics!r:.80}")
        for t in topics:
            out |= bloom_bits(_bytes(t, "log topic"))
    return out


def may_contain_event(bloom: int, address: str, topic0: str) -> bool:
    """Whether a block with this bloom may hold a log of `address` with `topic0` (False is
    certain; True may be a false positive)."""
    return contains_hex(bloom, address, "address") and contains_hex(bloom, topic0, "topic")


_TRANSFER_BITS = bloom_bits(bytes.fromhex(_TRANSFER_TOPIC))
