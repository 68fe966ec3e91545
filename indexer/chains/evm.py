"""EVM chain source: Transfer logs of one ERC-20 via eth_getLogs with adaptive ranges,
block headers, finality by tag or confirmations, totalSupply at a block.

Transport is the endpoint pool in `rpc.py` (aiohttp + orjson, batched requests); logs are decoded
by slicing (`evm_decode`), not per-log ABI objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from indexer.chains.evm_decode import TRANSFER_TOPIC, decode_logs
from indexer.chains.ranges import AdaptiveRange
from indexer.chains.rpc import RpcPool
from indexer.config import EvmChainConfig
from indexer.errors import DataConsistencyError, MalformedReply, RpcError
from indexer.finality import evm_finalized_height
from indexer.model import BlockRef, RangeData, TokenEvent

log = structlog.get_logger(__name__)

TOTAL_SUPPLY_SELECTOR = "0x18160ddd"
BALANCE_OF_SELECTOR = "0x70a08231"
HEADER_BATCH = 50


def parse_header(raw: Any) -> BlockRef | None:
    """A `eth_getBlockByNumber` result -> BlockRef (None for a null result)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedReply(f"block header is not an object: {raw!r:.100}")
    try:
        return BlockRef(
            number=int(raw["number"], 16),
            hash=str(raw["hash"]).lower(),
            parent_hash=str(raw["parentHash"]).lower(),
            timestamp=int(raw["timestamp"], 16),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedReply(f"block header lacks a valid {exc}: {raw!r:.200}") from None


def _hex_word(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise MalformedReply(f"{what} returned {value!r:.80}, expected one 32-byte word")
    return int(value, 16)


@dataclass
class EvmSource:
    cfg: EvmChainConfig
    rpc: RpcPool
    ranges: AdaptiveRange = field(init=False)

    def __post_init__(self) -> None:
        self.ranges = AdaptiveRange(self.cfg.max_block_range)

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def decimals(self) -> int:
        return self.cfg.decimals

    async def head(self) -> int:
        value = await self.rpc.call("eth_blockNumber", [])
        if not isinstance(value, str) or not value.startswith("0x"):
            raise MalformedReply(f"eth_blockNumber returned {value!r:.80}")
        return int(value, 16)

    async def finalized(self, head: int) -> int:
        rule = self.cfg.finality
        tagged: int | None = None
        if rule.tag is not None:
            ref = parse_header(await self.rpc.call("eth_getBlockByNumber", [rule.tag, False]))
            tagged = None if ref is None else ref.number
        return evm_finalized_height(rule, head, tagged)

    async def headers(self, numbers: Sequence[int]) -> list[BlockRef | None]:
        out: list[BlockRef | None] = []
        for i in range(0, len(numbers), HEADER_BATCH):
            chunk = numbers[i : i + HEADER_BATCH]
            replies = await self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            for n, raw in zip(chunk, replies, strict=True):
                ref = parse_header(raw)
                if ref is not None and ref.number != n:
                    raise MalformedReply(f"asked for block {n}, got block {ref.number}")
                out.append(ref)
        return out

    async def _logs(self, start: int, end: int) -> list[dict[str, Any]]:
        """All Transfer logs of the token in [start, end], splitting ranges a provider refuses."""
        logs: list[dict[str, Any]] = []
        s = start
        while s <= end:
            size = min(self.ranges.current, end - s + 1)
            e = s + size - 1
            try:
                part = await self.rpc.call(
                    "eth_getLogs",
                    [
                        {
                            "fromBlock": hex(s),
                            "toBlock": hex(e),
                            "address": self.cfg.token,
                            "topics": [TRANSFER_TOPIC],
                        }
                    ],
                )
            except RpcError as exc:
                if not exc.range_too_large:
                    raise
                if size == 1:
                    raise RpcError(f"provider refuses eth_getLogs even for one block {s}: {exc}") from None
                new = self.ranges.refused(size)
                log.info("logs_range_shrunk", chain=self.name, refused=size, now=new, error=str(exc))
                continue
            if not isinstance(part, list):
                raise MalformedReply(f"eth_getLogs returned {type(part).__name__}, expected a list")
            logs.extend(part)
            self.ranges.succeeded(size)
            s = e + 1
        return logs

    async def fetch_range(self, start: int, end: int, *, with_headers: bool) -> RangeData:
        events = decode_logs(self.name, await self._logs(start, end), self.cfg.token)
        for ev in events:
            if not start <= ev.block_number <= end:
                raise DataConsistencyError(
                    f"{self.name}: eth_getLogs [{start}, {end}] returned a log of block {ev.block_number}"
                )
        if with_headers:
            numbers = list(range(start, end + 1))
        else:
            numbers = sorted({e.block_number for e in events if not e.timestamp} | {end})
        got = await self.headers(numbers)
        by_number: dict[int, BlockRef] = {}
        for n, ref in zip(numbers, got, strict=True):
            if ref is None:
                raise DataConsistencyError(f"{self.name}: block {n} is missing (the head moved back?)")
            by_number[n] = ref
        fixed: list[TokenEvent] = []
        for ev in events:
            ref = by_number.get(ev.block_number)
            if ref is not None and ref.hash != ev.block_hash:
                raise DataConsistencyError(
                    f"{self.name}: log of block {ev.block_number} has hash {ev.block_hash}, "
                    f"the canonical header has {ref.hash} (reorg while reading)"
                )
            if not ev.timestamp and ref is not None:
                ev = TokenEvent(
                    ev.chain,
                    ev.block_number,
                    ev.block_hash,
                    ev.tx_hash,
                    ev.log_index,
                    ev.kind,
                    ev.from_addr,
                    ev.to_addr,
                    ev.amount,
                    ref.timestamp,
                )
            fixed.append(ev)
        headers = tuple(by_number[n] for n in range(start, end + 1)) if with_headers else ()
        return RangeData(start, end, tuple(fixed), headers, by_number[end])

    async def _call_word(self, data: str, block: BlockRef) -> int:
        result = await self.rpc.call(
            "eth_call", [{"to": self.cfg.token, "data": data}, {"blockHash": block.hash}]
        )
        if result == "0x":
            return 0  # no contract code at that block yet (before the token's deployment)
        return _hex_word(result, f"eth_call {data[:10]}")

    async def total_supply(self, block: BlockRef) -> int:
        return await self._call_word(TOTAL_SUPPLY_SELECTOR, block)

    async def balance_of(self, address: str, block: BlockRef) -> int:
        return await self._call_word(
            BALANCE_OF_SELECTOR + address.lower().removeprefix("0x").rjust(64, "0"), block
        )

    async def close(self) -> None:
        return None
