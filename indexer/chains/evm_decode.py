"""PURE: ERC-20 Transfer log decoding by slicing topics and data (no per-log ABI objects).

Input is the JSON-RPC log object as parsed by orjson (hex strings). Mint = from the zero address,
burn = to the zero address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from indexer.errors import MalformedReply
from indexer.model import EventKind, TokenEvent

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def _hex_int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise MalformedReply(f"log field {what} is not a hex quantity: {value!r}")


def _topic_address(topic: Any, what: str) -> str:
    if not isinstance(topic, str) or len(topic) != 66 or not topic.startswith("0x"):
        raise MalformedReply(f"log {what} topic is not a 32-byte word: {topic!r}")
    return "0x" + topic[26:].lower()


def classify(from_addr: str, to_addr: str) -> EventKind:
    if from_addr == ZERO_ADDRESS and to_addr != ZERO_ADDRESS:
        return EventKind.MINT
    if to_addr == ZERO_ADDRESS and from_addr != ZERO_ADDRESS:
        return EventKind.BURN
    return EventKind.TRANSFER


def decode_transfer(chain: str, log: Mapping[str, Any], timestamp: int = 0) -> TokenEvent | None:
    """Decode one log; None when it is not an ERC-20 Transfer (e.g. ERC-721 with 4 topics)."""
    topics = log.get("topics")
    if not isinstance(topics, list):
        raise MalformedReply(f"log has no topics list: {log!r:.200}")
    if len(topics) != 3 or str(topics[0]).lower() != TRANSFER_TOPIC:
        return None
    data = log.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) != 66:
        raise MalformedReply(f"Transfer log data is not one 32-byte word: {data!r:.100}")
    block_hash = log.get("blockHash")
    tx_hash = log.get("transactionHash")
    if not isinstance(block_hash, str) or not isinstance(tx_hash, str):
        raise MalformedReply("log is missing blockHash or transactionHash (pending log?)")
    if log.get("removed") is True:
        raise MalformedReply("log is marked removed")
    from_addr = _topic_address(topics[1], "from")
    to_addr = _topic_address(topics[2], "to")
    ts = log.get("blockTimestamp")
    return TokenEvent(
        chain=chain,
        block_number=_hex_int(log.get("blockNumber"), "blockNumber"),
        block_hash=block_hash.lower(),
        tx_hash=tx_hash.lower(),
        log_index=_hex_int(log.get("logIndex"), "logIndex"),
        kind=classify(from_addr, to_addr),
        from_addr=from_addr,
        to_addr=to_addr,
        amount=_hex_int(data, "data"),
        timestamp=_hex_int(ts, "blockTimestamp") if ts is not None else timestamp,
    )


def decode_logs(chain: str, logs: Iterable[Mapping[str, Any]], token: str | None = None) -> list[TokenEvent]:
    """Decode the Transfer logs among `logs` (optionally only those emitted by `token`),
    dropping exact duplicates of an event identity (a provider fault seen in the wild)."""
    out: list[TokenEvent] = []
    seen: set[tuple[str, str, str, int]] = set()
    want = token.lower() if token else None
    for log in logs:
        if want is not None and str(log.get("address", "")).lower() != want:
            continue
        ev = decode_transfer(chain, log)
        if ev is None or ev.identity in seen:
            continue
        seen.add(ev.identity)
        out.append(ev)
    return out
