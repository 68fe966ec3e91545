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
    """The slot up to which the index treats data as final under the configured commitment.

    Never above `confirmed_slot` (the newest slot the index reads): the two slots may come from
    different nodes, and a finalized slot reported ahead of it is capped, like the EVM tag rule.
    """
    if rule.commitment == "confirmed":
        return confirmed_slot
    return min(finalized_slot, confirmed_slot)


def confirmations_behind(head: int, finalized: int) -> int:
    return max(0, head - finalized)
