"""The supply-class metrics (`usd1_supply_class_tokens{chain,class,finality}`,
`usd1_supply_circulating_total{finality}`, `usd1_bridge_backing_gap_tokens{bridge}`): every
`interval`, one read-only snapshot computes each chain's classes at head and at the finalized
block with the same code as `/api/v1/supply`
(`control_queries.with_classes`), so the metrics and the API agree. A failed round is logged once,
the gauges keep their last values, and the recovery is logged once."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from indexer import bridges
from indexer.config import Config
from indexer.errors import DatabaseUnavailable
from indexer.metrics import Metrics
from indexer.store import control_queries as cq
from indexer.store import queries as q
from indexer.units import to_float

log = structlog.get_logger(__name__)


class SupplyClassesExporter:
    def __init__(self, cfg: Config, pool: asyncpg.Pool, metrics: Metrics, interval: float = 5.0) -> None:
        self._cfg, self._pool, self._metrics, self._interval = cfg, pool, metrics, interval
        self._failing = False
        # The last global circulating figure per finality: (raw, decimals), exact (the oracle's
        # coverage divides by the finalized one).
        self.circulating: dict[str, tuple[int, int]] = {}

    async def refresh(self) -> bool:
        """One round; False when the database could not answer (gauges unchanged)."""
        try:
            async with q.snapshot(self._pool, timeout_ms=10_000) as conn:
                chains = [
                    await cq.with_classes(
                        conn, await q.chain_supply(conn, c), c.control_contracts(), c.classified()
                    )
                    for c in self._cfg.chains
                ]
        except (DatabaseUnavailable, asyncpg.PostgresError, OSError, TimeoutError) as exc:
            if not self._failing:
                log.warning("supply_classes_failed", error=str(exc))
                self._failing = True
            return False
        if self._failing:
            log.info("supply_classes_recovered")
            self._failing = False
        self.export(chains)
        return True

    def export(self, chains: list[q.ChainSupply]) -> None:
        """Per chain and class at both finalities; the global circulating figure (each token
        once, indexer.bridges) once every chain is indexed; each bridge's backing gap at the
        finalized blocks once its chains are (the figure the alert pages on: a transfer's lock is
        final on the native chain before the bridge mints, so finalized figures never show an
        honest transfer as under-backed, and a head reorg cannot page)."""
        m = self._metrics
        for s in chains:
            for finality, classes in (("finalized", s.finalized_classes), ("head", s.head_classes)):
                if classes is None:
                    continue
                for name, raw in classes.by_class().items():
                    m.supply_class.labels(s.chain, name, finality).set(to_float(raw, s.decimals))
        at = q.positions(chains)
        for finality, ps in at.items():
            circulating = bridges.global_circulating(ps)
            if circulating is not None:
                dp = bridges.precision(ps)
                self.circulating[finality] = (circulating, dp)
                m.supply_circulating_total.labels(finality).set(to_float(circulating, dp))
        for b in bridges.backing(self._cfg.topology(), at["finalized"]):
            if b.gap is not None:
                m.bridge_backing_gap.labels(b.bridge).set(to_float(b.gap, b.decimals))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            try:
                async with asyncio.timeout(self._interval):
                    await stop.wait()
            except TimeoutError:
                pass
