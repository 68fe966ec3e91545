"""PURE: per-chain finality rules -> finalized height."""

from __future__ import annotations

from indexer.config import EvmFinality, SolanaFinality


def evm_finalized_height(rule: EvmFinality, head: int, tagged: int | None) -> int:
    """Finalized height under `rule`.

    `tagged` is the number of the block the node returns for the rule's tag (`finalized` or
    `safe`), None when the node has no such block yet. The result never exceeds `head` and is -1
    when nothing is final yet.
    """
    if rule.confirmations is not None:
        return max(-1, head - rule.confirmations)
    if tagged is None:
        return -1
    return max(-1, min(tagged, head))


def solana_finalized_height(rule: SolanaFinality, confirmed_slot: int, finalized_slot: int) -> int:
    """The slot up to which the index treats data as final under the configured commitment."""
    return confirmed_slot if rule.commitment == "confirmed" else finalized_slot


def confirmations_behind(head: int, finalized: int) -> int:
    return max(0, head - finalized)
