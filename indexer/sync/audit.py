"""The background audits of one chain, at the index's finalized block, within a request budget.

Supply reconciliation cannot see a transfer lost between two holders. Two audits can:

- Balance audit: every `audit.interval`, a sample of accounts — those found wrong before, then
  the largest holders (rotating through the `audit.top_holders` largest) and random ones, half and
  half — is read from the chain (`balance_snapshot`: EVM `balanceOf` at the finalized anchor block,
  by hash; Solana `getTokenAccountBalance` at the commitment's slot, compared once the index has
  finalized that slot) and compared with the index two ways: summed from stored events (what the
  API serves) and from the folded `balances` row. At most `audit.accounts_per_hour` reads in any
  hour (`HourlyBudget`), spread over the rounds.
- Range audit (two or more endpoints): the most recently finalized range not audited yet
  (`audit.range_blocks` heights) is re-read from every endpoint (`via(label)`) and compared with
  the stored events by count and digest. A range served by an endpoint that dropped or forged a
  log shows up as a mismatch of that endpoint (or of every other endpoint, when the dropped log is
  what the store holds). At most `audit.ranges_per_hour` endpoint re-reads per hour.

Findings: `usd1_balance_audit_accounts_total`, `usd1_balance_mismatch_accounts` (accounts wrong at
their last check), `usd1_range_audit_ranges_total`, `usd1_range_audit_mismatch_total`; the last
audits in `ChainStatus` (`/api/v1/status`); a mismatch is logged once when found and once when
cleared. Nothing is repaired: finalized rows never change; an operator decides (runbooks).

The audit runs only while its chain is live in this process (not in backfill, not as a standby),
in its own task: it never holds back indexing, and its failures (an endpoint that cannot answer,
the database away) are logged once and retried next round.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from indexer.audit import (
    EventKey,
    HourlyBudget,
    event_key,
    events_digest,
    next_offset,
    plan_sample,
    random_key,
    round_size,
)
from indexer.chains.base import ChainSource
from indexer.config import AuditConfig
from indexer.errors import RpcError
from indexer.metrics import Metrics
from indexer.model import BlockRef
from indexer.store import audit_queries as aq
from indexer.store.store import Store
from indexer.sync.follower import TRANSIENT_ERRORS
from indexer.sync.status import ChainStatus, State

log = structlog.get_logger(__name__)

MAX_LISTED = 20  # mismatched addresses (and range differences) listed in the status and logs


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    address: str
    block: int
    onchain: int
    from_events: int
    from_balances: int

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "block": self.block,
            "onchain": str(self.onchain),
            "indexed": str(self.from_events),
            "indexed_balances_table": str(self.from_balances),
        }


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Auditor:
    def __init__(
        self,
        source: ChainSource,
        store: Store,
        metrics: Metrics,
        status: ChainStatus,
        cfg: AuditConfig,
        *,
        start: int = 0,
        range_blocks: int = 500,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        final_wait: float = 10.0,
    ) -> None:
        self.src = source
        self.store = store
        self.metrics = metrics
        self.status = status
        self.cfg = cfg
        self.chain = source.name
        self.start = start
        self.range_blocks = cfg.range_blocks or range_blocks
        self.rng = rng or random.Random()
        self.clock = clock
        self.final_wait = final_wait
        self.per_round = round_size(cfg.accounts_per_hour, cfg.interval)
        self.accounts = HourlyBudget(cfg.accounts_per_hour, self.per_round)
        endpoints = len(source.endpoints())
        self.ranges = HourlyBudget(
            cfg.ranges_per_hour, max(endpoints, round_size(cfg.ranges_per_hour, cfg.interval))
        )
        self.mismatched: dict[str, BalanceMismatch] = {}
        self.top_offset = 0
        self.range_done: int | None = None  # the end of the last audited range
        self.requests = 0  # balance reads made (the budget's unit)
        self.range_reads = 0  # endpoint re-reads of ranges made
        self._failing = False
        self._balances_unsupported = False
        self._log = log.bind(chain=self.chain)

    @property
    def kind(self) -> str:
        return self.status.kind

    async def run(self, stop: asyncio.Event) -> None:
        if not self.cfg.enabled:
            return
        while not stop.is_set():
            if self.status.state() == State.LIVE:
                await self.round()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.cfg.interval)
            except TimeoutError:
                pass

    async def round(self) -> None:
        """One balance audit and one range audit; a failure is logged once, its recovery once."""
        try:
            await self.audit_balances()
            await self.audit_range()
        except TRANSIENT_ERRORS as exc:
            if not self._failing:
                self._log.warning("audit_failed", error=str(exc), kind=type(exc).__name__)
                self._failing = True
            return
        if self._failing:
            self._log.info("audit_recovered")
            self._failing = False

    # ---- balances ----------------------------------------------------------------------------

    async def audit_balances(self) -> None:
        if getattr(self.src, "latest_only", False):
            # Tron: balanceOf runs at `latest` only, never at the finalized anchor. Not audited
            # (README "Tron"); said once. The range audit still runs.
            if not self._balances_unsupported:
                self._log.warning("balance_audit_unsupported", reason="the node reads state at latest only")
                self._balances_unsupported = True
            return
        anchor = await self.store.read(aq.final_anchor, self.chain)
        want = min(self.per_round, self.accounts.per_hour - self.accounts.used(self.clock()))
        if anchor is None or want <= 0:
            return
        recheck = sorted(self.mismatched)
        share = (want - min(len(recheck), want) + 1) // 2
        top = await self.store.read(aq.largest_holders, self.chain, share, self.top_offset)
        randoms = await self.store.read(aq.holders_from, self.chain, random_key(self.kind, self.rng), want)
        sample = plan_sample(recheck, top, randoms, want)
        sample = sample[: self.accounts.take(self.clock(), len(sample))]
        if not sample:
            return
        tops = set(top)
        used_top = sum(1 for a in sample if a in tops and a not in self.mismatched)
        # Fewer than asked: the list of holders ran out, the rotation starts over.
        available = self.top_offset + len(top) if len(top) < share else self.cfg.top_holders
        self.top_offset = next_offset(self.top_offset, used_top, available, self.cfg.top_holders)
        self.requests += len(sample)
        snaps = await asyncio.gather(*(self._snapshot(a, anchor) for a in sample))
        read = {a: s for a, s in zip(sample, snaps, strict=True) if s is not None}
        await self._wait_final(max((h for h, _ in read.values()), default=-1))
        fin = await self.store.read(aq.finalized_height, self.chain)
        by_height: dict[int, list[str]] = {}
        for a, (height, _) in read.items():
            if height <= fin:  # Solana: a slot the index has not finalized yet is compared next time
                by_height.setdefault(height, []).append(a)
        found: list[BalanceMismatch] = []
        checked = 0
        for height, addrs in sorted(by_height.items()):
            indexed = await self.store.read(aq.indexed_balances, self.chain, addrs, height)
            for a in addrs:
                checked += 1
                onchain = read[a][1]
                ib = indexed[a]
                if ib.from_events == onchain == ib.from_balances:
                    self._cleared(a, height, onchain)
                else:
                    found.append(
                        self._mismatch(BalanceMismatch(a, height, onchain, ib.from_events, ib.from_balances))
                    )
        self.metrics.balance_audit_accounts.labels(self.chain).inc(checked)
        self.metrics.balance_mismatch_accounts.labels(self.chain).set(len(self.mismatched))
        self.status.audit = {
            "time": _now_iso(),
            "block": max(by_height, default=anchor.number),
            "accounts_checked": checked,
            "mismatches": [m.to_json() for m in found[:MAX_LISTED]],
            "mismatched_accounts": len(self.mismatched),
            "mismatched": [m.to_json() for m in list(self.mismatched.values())[:MAX_LISTED]],
        }

    async def _snapshot(self, address: str, anchor: BlockRef) -> tuple[int, int] | None:
        try:
            return await self.src.balance_snapshot(address, anchor)
        except RpcError as exc:
            self._log.debug("balance_audit_read_failed", address=address, error=str(exc))
            return None

    async def _wait_final(self, height: int) -> None:
        """Solana reads at the commitment's current slot: give the index a moment to finalize it."""
        deadline = self.clock() + self.final_wait
        while self.clock() < deadline:
            if await self.store.read(aq.finalized_height, self.chain) >= height:
                return
            await asyncio.sleep(0.2)

    def _mismatch(self, m: BalanceMismatch) -> BalanceMismatch:
        if m.address not in self.mismatched:
            self._log.error(
                "balance_mismatch",
                address=m.address,
                block=m.block,
                onchain=str(m.onchain),
                indexed=str(m.from_events),
                indexed_balances_table=str(m.from_balances),
            )
        self.mismatched[m.address] = m
        return m

    def _cleared(self, address: str, block: int, onchain: int) -> None:
        if self.mismatched.pop(address, None) is not None:
            self._log.info("balance_mismatch_cleared", address=address, block=block, balance=str(onchain))

    # ---- ranges ------------------------------------------------------------------------------

    async def audit_range(self) -> None:
        labels = self.src.endpoints()
        if len(labels) < 2 or self.ranges.per_hour <= 0:
            return
        fin = await self.store.read(aq.finalized_height, self.chain)
        lo = max(self.start, fin - self.range_blocks + 1)
        if self.range_done is not None:
            lo = max(lo, self.range_done + 1)
        if lo > fin:
            return  # nothing finalized since the last range
        hi = min(fin, lo + self.range_blocks - 1)
        if self.ranges.per_hour - self.ranges.used(self.clock()) < len(labels):
            return
        self.ranges.take(self.clock(), len(labels))
        stored = await self.store.read(aq.range_event_keys, self.chain, lo, hi)
        stored_digest = events_digest(stored)
        per_endpoint: dict[str, dict[str, Any]] = {}
        mismatches = 0
        for label in labels:
            self.range_reads += 1
            try:
                data = await self.src.via(label).fetch_range(lo, hi, with_headers=False)
            except RpcError as exc:
                # Not compared. (A reply that fails the source's own checks, such as a log outside
                # its block's bloom, is already counted against the endpoint as a contradiction.)
                per_endpoint[label] = {"error": str(exc)[:300], "match": None}
                continue
            got = [
                event_key(
                    e.block_number,
                    e.block_hash,
                    e.tx_hash,
                    e.log_index,
                    e.kind,
                    e.from_addr,
                    e.to_addr,
                    e.amount,
                )
                for e in data.events
            ]
            digest = events_digest(got)
            ok = len(got) == len(stored) and digest == stored_digest
            per_endpoint[label] = {"events": len(got), "digest": digest, "match": ok}
            if not ok:
                mismatches += self._range_mismatch(lo, hi, label, stored, got)
        self.range_done = hi
        self.metrics.range_audit_ranges.labels(self.chain).inc()
        self.status.range_audit = {
            "time": _now_iso(),
            "start": lo,
            "end": hi,
            "stored_events": len(stored),
            "stored_digest": stored_digest,
            "endpoints": per_endpoint,
            "mismatches": mismatches,
        }

    def _range_mismatch(
        self, lo: int, hi: int, label: str, stored: list[EventKey], got: list[EventKey]
    ) -> int:
        self.metrics.range_audit_mismatch.labels(self.chain).inc()
        mine, theirs = set(stored), set(got)
        self._log.error(
            "range_audit_mismatch",
            start=lo,
            end=hi,
            endpoint=label,
            stored_events=len(stored),
            endpoint_events=len(got),
            only_in_store=[_key_text(k) for k in sorted(mine - theirs)[:MAX_LISTED]],
            only_at_endpoint=[_key_text(k) for k in sorted(theirs - mine)[:MAX_LISTED]],
        )
        return 1


def _key_text(k: EventKey) -> str:
    return f"{k[0]}:{k[2]}#{k[3]} {k[4]} {k[7]}"
