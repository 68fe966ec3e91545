"""The store reads of the attestation package (`indexer.supply_at`): in one snapshot, per chain the
block at or before TIME and the last final block the store knows, the refusal check, then the
supply and its classes at each chain's block (the same `control_queries.classes_at` as
`/api/v1/supply`, folded at that block). `circulating_at` / `circulating_now` are the reserves'
figures (`indexer.backing`): the global circulating supply at an attestation's as_of and at the
finalized blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from indexer import bridges
from indexer.backing import AtAsOf, TotalSupply, at_as_of, unavailable
from indexer.config import ChainConfig
from indexer.model import Family
from indexer.store import control_queries as cq
from indexer.store import queries as q
from indexer.store.db import Conn
from indexer.supply_at import ChainAt, NotFinal, check_final, frozen_status


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


async def circulating_at(conn: Conn, chains: Sequence[ChainConfig], as_of: datetime) -> AtAsOf:
    """The global circulating supply at `as_of` (unavailable, with the reason, when `as_of` is
    not final on every chain or before a chain's index)."""
    try:
        positions = await supply_at(conn, chains, as_of)
    except NotFinal as exc:
        return unavailable(as_of, str(exc))
    return at_as_of(as_of, positions)


async def circulating_now(conn: Conn, chains: Sequence[ChainConfig]) -> TotalSupply | None:
    """The global circulating supply at each chain's finalized block (the figure of
    `usd1_supply_circulating_total{finality="finalized"}`); None until every chain is indexed."""
    positions = []
    for c in chains:
        at = await q.as_of(conn, c.name)
        if at.block is None or at.finalized_block is None:
            return None
        totals = await q.totals_at(conn, c.name, at.finalized_block)
        contracts = [(a, label) for a, label, _ in c.control_contracts()]
        classes = await cq.classes_at(
            conn, c.name, contracts, c.classified(), totals.supply, at.finalized_block, head=False
        )
        positions.append(bridges.Position(c.name, c.decimals, classes))
    circulating = bridges.global_circulating(positions)
    return None if circulating is None else TotalSupply(circulating, bridges.precision(positions))
