"""Fill one event family in below its coverage (`usd1-indexer backfill --family NAME`).

A family enabled on an already indexed chain is covered from the cursor + 1 (see
`Store.register_chain`). The fill reads only that family's logs (the source's dispatch restricted
to it), downward from the coverage's start to the chain's start height, one range per store
transaction (`Store.fill_family`), and moves the coverage down with each: transfers are not
re-indexed and the cursor does not move. Only final heights are filled: at or below the chain's
finalized height, and either at or below the index's finalized height or at a block the index
holds (checked by hash in the fill's transaction); until then the fill waits for finality,
logging so once. It may run beside a daemon that follows the chain.
"""

from __future__ import annotations

import asyncio

import structlog

from indexer.chains.base import ChainSource
from indexer.errors import DataConsistencyError
from indexer.model import Family
from indexer.store.queries import Coverage
from indexer.store.store import NotFinalYet, Store

log = structlog.get_logger(__name__)


class FamilyFill:
    def __init__(
        self,
        source: ChainSource,
        store: Store,
        family: Family,
        fingerprint: str,
        start: int,
        chunk: int,
        poll_interval: float,
    ) -> None:
        self.src = source
        self.store = store
        self.family = family
        self.fingerprint = fingerprint
        self.start = start
        self.chunk = max(1, chunk)
        self.poll = poll_interval
        self.chain = source.name
        self._log = log.bind(chain=self.chain, family=family.value)

    async def coverage(self) -> Coverage:
        cov = (await self.store.coverage(self.chain)).get(self.family)
        if cov is None:
            raise DataConsistencyError(f"{self.chain}: the {self.family} family is not configured")
        if cov.fingerprint != self.fingerprint:
            raise DataConsistencyError(f"{self.chain}: the {self.family} family's configuration changed")
        return cov

    async def run(self, stop: asyncio.Event) -> Coverage:
        """Fill until the coverage starts at the chain's start height (or `stop`); returns it."""
        cov = await self.coverage()
        if cov.from_block <= self.start:
            return cov
        self._log.info("family_fill_started", covered_from=cov.from_block, to=self.start)
        waiting = False
        filled = 0
        while not stop.is_set() and cov.from_block > self.start:
            hi = cov.from_block - 1
            _, final = await self.src.tips()
            if hi > final:
                if not waiting:
                    self._log.info("family_fill_waiting_for_finality", block=hi, finalized=final)
                    waiting = True
                await _sleep(stop, self.poll)
                continue
            lo = max(self.start, hi - self.chunk + 1)
            data = await self.src.fetch_range(lo, hi, with_headers=False, families={self.family})
            if data.end != hi or data.end_ref.number != hi:
                raise DataConsistencyError(
                    f"{self.chain}: asked for heights up to {hi}, read up to {data.end}"
                )
            try:
                cov = await self.store.fill_family(
                    self.chain, self.family, self.fingerprint, lo, hi, data.controls, data.end_ref
                )
            except NotFinalYet as exc:
                # Final on the chain but not yet in the index, and not a block the index holds:
                # the index's own finality catches up first.
                if not waiting:
                    self._log.info("family_fill_waiting_for_finality", block=hi, reason=str(exc))
                    waiting = True
                await _sleep(stop, self.poll)
                continue
            waiting = False
            filled += len(data.controls)
            self._log.debug("family_fill_step", low=lo, high=hi, records=len(data.controls))
        self._log.info("family_fill_done", covered_from=cov.from_block, records=filled)
        return cov


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
