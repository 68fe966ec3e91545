"""The store reads of the attestation package (`indexer.supply_at`): in one snapshot, per chain the
block at or before TIME and the last final block the store knows, the refusal check, then the
supply and its classes at each chain's block (the same `control_queries.classes_at` as
`/api/v1/supply`, folded at that block)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from indexer.config import ChainConfig
from indexer.model import Family
from indexer.store import control_queries as cq
from indexer.store import queries as q
from indexer.store.db import Conn
from indexer.supply_at import ChainAt, check_final, frozen_status


async def _position(conn: Conn, chain: ChainConfig, when: datetime) -> ChainAt:
    at = await q.as_of(conn, chain.name)
    cov = await q.coverage(conn, chain.name)
    transfers, controls = cov.get(Family.TRANSFERS), cov.get(Family.CONTROLS)
    controls_from = None if controls is None else controls.from_block
    status = frozen_status(bool(chain.control_contracts()), controls_from, chain.first_height)
    final = block = None
    if at.block is not None and at.finalized_block is not None:
        final = await q.known_block(conn, chain.name, min(at.finalized_block, at.block))
        block = await q.known_block(conn, chain.name, at.block, when)
    return ChainAt(
        chain.name,
        chain.decimals,
        chain.first_height,
        at.finalized_block,
        final,
        block,
        None if transfers is None else transfers.from_block,
        controls_from,
        status,
    )


async def supply_at(conn: Conn, chains: Sequence[ChainConfig], when: datetime) -> list[ChainAt]:
    """Every chain at `when` (raises `supply_at.NotFinal` when `when` is not final everywhere)."""
    positions = [await _position(conn, c, when) for c in chains]
    check_final(when, positions)
    out = []
    for c, pos in zip(chains, positions, strict=True):
        if pos.block is None:
            out.append(pos)
            continue
        totals = await q.totals_at(conn, c.name, pos.block.number)
        contracts = [(a, label) for a, label, _ in c.control_contracts()] if pos.circulating_exact else []
        classes = await cq.classes_at(
            conn, c.name, contracts, c.classified(), totals.supply, pos.block.number, head=False
        )
        out.append(replace(pos, classes=classes))
    return out
