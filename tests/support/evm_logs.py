"""What a node returns for an eth_getLogs filter, applied to recorded logs (tests only): the
address and topic0 rules of `LogDispatch.log_filter`, nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from indexer.chains.evm_families import LogDispatch


def node_filter(logs: Iterable[dict[str, Any]], d: LogDispatch) -> list[dict[str, Any]]:
    addresses, topics = set(d.addresses), set(d.topics)
    return [
        lg
        for lg in logs
        if str(lg.get("address", "")).lower() in addresses
        and lg.get("topics")
        and str(lg["topics"][0]).lower() in topics
    ]
