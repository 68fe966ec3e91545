"""PURE: a block's receipts as the completeness check of chains whose blooms are empty (Tron).

On Ethereum, a block whose `logsBloom` may match the filter but that came back from eth_getLogs
without logs is re-read (indexer.chains.evm). Tron's blooms are all zeros (realdata/tron/FACTS.md),
so nothing can be told from them; its `eth_getBlockReceipts` gives every receipt of a block with
its logs instead. The logs there that the filter asks for (address in the filter's addresses,
first topic in its topics) must be as many as eth_getLogs returned for that block: counted per
block, since nothing documents that the two number `logIndex` the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from indexer.errors import MalformedReply


class OtherBlock(Exception):
    """The receipts belong to another block than the one asked for (a reorg while reading)."""


def asked_logs(
    receipts: Any, block_hash: str, addresses: Collection[str], topics: Collection[str]
) -> list[Mapping[str, Any]]:
    """The logs of one block's `eth_getBlockReceipts` result that the filter `addresses` x
    `topics` (first topic) asks for. MalformedReply for a reply of the wrong shape, OtherBlock
    when a receipt or log names another block hash than `block_hash`."""
    if not isinstance(receipts, list):
        raise MalformedReply(f"eth_getBlockReceipts returned {receipts!r:.80}, not a list")
    want_a = {a.lower() for a in addresses}
    want_t = {t.lower() for t in topics}
    out: list[Mapping[str, Any]] = []
    for i, r in enumerate(receipts):
        if not isinstance(r, dict) or not isinstance(r.get("logs"), list):
            raise MalformedReply(f"eth_getBlockReceipts: receipt {i} is not an object with logs: {r!r:.80}")
        if str(r.get("blockHash", "")).lower() != block_hash:
            raise OtherBlock(f"receipt {i} is of block {r.get('blockHash')!r:.80}, not {block_hash}")
        for lg in r["logs"]:
            if not isinstance(lg, dict) or not isinstance(lg.get("topics"), list):
                raise MalformedReply(f"eth_getBlockReceipts: receipt {i} has a malformed log: {lg!r:.80}")
            topics_ = lg["topics"]
            if not topics_ or str(lg.get("address", "")).lower() not in want_a:
                continue
            if str(topics_[0]).lower() in want_t:
                if str(lg.get("blockHash", block_hash)).lower() != block_hash:
                    raise OtherBlock(f"a log of receipt {i} is of block {lg.get('blockHash')!r:.80}")
                out.append(lg)
    return out
