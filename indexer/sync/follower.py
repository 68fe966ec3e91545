"""One chain's follower: backfill below finality with a bounded window of concurrent range
fetches, then follow the head block by block through the pure reorg core.

Every step commits one store transaction (rollback, events, refs, cursor), so a crash at any
instant resumes from the stored cursor with nothing lost or doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never

import asyncpg
import structlog

from indexer import latest, reorg
from indexer.chains.base import ChainSource
from indexer.chains.heads import HeadWatcher
from indexer.chains.ranges import ChunkSizer
from indexer.chains.witness import attest, votes_text
from indexer.errors import DatabaseUnavailable, DataConsistencyError, FinalityViolation, RpcError
from indexer.large_events import large_counts
from indexer.metrics import Metrics
from indexer.model import BlockRef, RangeData, TokenEvent
from indexer.quorum import Overturned, Undecided, Upheld
from indexer.store.keeper import DatabaseKeeper
from indexer.store.queries import Totals
from indexer.store.store import Batch, Store
from indexer.sync.lease import ChainLease
from indexer.sync.status import STATES, ChainStatus, State
from indexer.units import to_float
from indexer.watchlists import Recent, tally

if TYPE_CHECKING:
    from indexer.sync.controls import ControlsMonitor
    from indexer.watchlists import Matcher

log = structlog.get_logger(__name__)

DB_ERRORS = (DatabaseUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
TRANSIENT_ERRORS = (RpcError, DataConsistencyError, OSError, TimeoutError, *DB_ERRORS)


@dataclass(frozen=True)
class FollowerSettings:
    start: int  # first height to index
    poll_interval: float
    backfill_chunk: int  # heights per backfill fetch (the ceiling, when target_results is set)
    live_batch: int  # max heights per live step
    concurrency: int  # backfill fetches in flight
    fold_balances_every: int = 250_000  # backfill folds balances in after this many events
    defer_indexes: bool = True  # a long backfill builds the secondary event indexes at its end
    supply_check_interval: float = 5.0
    error_backoff_max: float = 30.0
    standby_poll: float = 1.0
    large_event_raw: int | None = None  # usd1_large_events_total threshold (base units); None: off
    # Size backfill fetches to return about this many events (indexer/chains/ranges.ChunkSizer);
    # None: every fetch is `backfill_chunk` heights.
    target_results: int | None = None


class Follower:
    def __init__(
        self,
        source: ChainSource,
        store: Store,
        metrics: Metrics,
        status: ChainStatus,
        settings: FollowerSettings,
        on_update: Callable[[], None] | None = None,
        lease: ChainLease | None = None,
        heads: HeadWatcher | None = None,
        controls: ControlsMonitor | None = None,
        db: DatabaseKeeper | None = None,
        watchlists: Callable[[], Matcher] | None = None,
    ) -> None:
        self.watchlists = watchlists
        self._watch_counted = Recent()
        self.lease = lease
        self.controls = controls
        self.db = db
        self.heads = heads
        self.src = source
        self.store = store
        self.metrics = metrics
        self.status = status
        self.s = settings
        self.chain = source.name
        self.window = reorg.Window()
        self.cursor: BlockRef | None = None
        self._final_point: Totals | None = None
        self._last_supply_check = 0.0
        self._supply_check_failing = False
        self._supply_skipping: str | None = None  # the reason latest-only supply checks are being skipped
        self._on_update = on_update or (lambda: None)
        self._log = log.bind(chain=self.chain)
        self._sizer = (
            None
            if settings.target_results is None
            else ChunkSizer(settings.target_results, settings.backfill_chunk)
        )

    # ---- lifecycle ---------------------------------------------------------------------------
    async def load(self) -> None:
        cp = await self.store.load_checkpoint(self.chain)
        self.cursor = cp.cursor
        self.window = reorg.Window(cp.window, cp.finalized)
        self.status.indexed = cp.cursor.number if cp.cursor else self.s.start - 1
        # Counters carry absolute finalized totals, continuous across restarts of the follower.
        await self._advance_finalized(cp.finalized)
        self.status.supply_head = (await self.store.supply_at(self.chain)).supply
        self.status.indexes_deferred = await self.store.missing_event_indexes(self.chain) > 0
        if self.controls is not None:
            await self.controls.refresh_head()
        self.export()

    async def run(
        self,
        stop: asyncio.Event,
        to_block: int | None = None,
        lease: ChainLease | None = None,
        tips: tuple[int, int] | None = None,
    ) -> None:
        """Index until `stop` is set, or (with `to_block`) until that height is indexed.

        `tips`: the chain's (head, finalized) the caller has just read from this source; the
        first step uses them instead of asking again (on a rate-limited provider, two requests).

        With a `lease`, index only while holding the chain's lock; otherwise wait as a standby.
        Any transient fault (RPC, database, inconsistent reads) backs off and reloads the cursor
        and window from the store before the next step: a commit whose acknowledgement was lost
        may have landed, and the store, not memory, is the truth. A database outage (with `db`)
        waits for the keeper to bring the database back, then retakes the lease and reloads.
        """
        lease = lease if lease is not None else self.lease
        failures = 0
        loaded = False
        try:
            while not stop.is_set():
                try:
                    if lease is not None and not await lease.still_held():
                        loaded = False
                        if not await lease.try_acquire():
                            self.status.phase = State.STANDBY
                            self.export()
                            await _sleep(stop, self.s.standby_poll)
                            continue
                    if not loaded:
                        await self.load()
                        loaded = True
                    known, tips = tips, None
                    done = await self.step(stop, to_block, known)
                    if done:
                        return
                except FinalityViolation as exc:
                    self._halt(exc)
                    raise
                except TRANSIENT_ERRORS as exc:
                    loaded = False
                    self.status.last_error = f"{type(exc).__name__}: {exc}"
                    if self.db is not None and isinstance(exc, DatabaseUnavailable):
                        # The keeper logs the outage once and restarts / reconnects; wait for it.
                        self.export()
                        if await self.db.outage(exc, stop):
                            if lease is not None:  # its session died with the server
                                await lease.release()
                            continue
                    failures += 1
                    delay = min(self.s.error_backoff_max, self.s.poll_interval * 2 ** min(failures, 6))
                    if failures == 1 or failures % 20 == 0:
                        self._log.warning(
                            "sync_step_failed",
                            error=str(exc),
                            kind=type(exc).__name__,
                            failures=failures,
                            retry_in=round(delay, 3),
                        )
                    self.export()
                    await _sleep(stop, delay)
                    continue
                if failures:
                    self._log.info("sync_recovered", after_failures=failures)
                    failures = 0
                    self.status.last_error = None
        finally:
            if lease is not None:
                await lease.release()

    async def step(
        self, stop: asyncio.Event, to_block: int | None, tips: tuple[int, int] | None = None
    ) -> bool:
        if tips is None:
            head, fin = await self.src.tips()
        else:
            head, fin = tips
        self.status.head = head
        self.status.finalized = fin
        indexed = self.cursor.number if self.cursor else self.s.start - 1
        target = fin if to_block is None else min(fin, to_block)
        # Backfill trusts heights below finality, so it may only start from a cursor that was
        # itself final when committed. An unfinalized tip is first reconciled by a live step (the
        # chain may have reorged it before finalizing).
        tip = self.window.tip
        cursor_final = tip is None or tip.number <= self.window.finalized
        if indexed < target and cursor_final:
            self.status.phase = State.BACKFILL
            await self._backfill(stop, target, fin)
            if self.controls is not None:
                await self.controls.refresh_if_stale()
            self._mark_success(head)
            return to_block is not None and self._indexed() >= to_block
        if self.status.indexes_deferred:  # nothing left to backfill: queries get their indexes back
            await self._build_indexes()
        if to_block is not None and indexed >= to_block:
            self._mark_success(head)
            return True
        self.status.phase = State.LIVE
        moved = await self._live_step(head if to_block is None else min(head, to_block), fin)
        self._mark_success(head)
        await self._check_supply()
        if self.controls is not None:
            await self.controls.check(self.window.bottom, self.window.finalized, held=self._held)
        if not moved:
            await self._idle(stop)
        return False

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next head: a ws newHeads notification when subscribed (data is still read
        over HTTP), else (or while the socket is down) the poll interval."""
        if self.heads is None or not self.heads.connected:
            await _sleep(stop, self.s.poll_interval)
            return
        head = asyncio.create_task(self.heads.wait(max(self.s.poll_interval, 15.0)))
        stopped = asyncio.create_task(stop.wait())
        _, pending = await asyncio.wait({head, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # ---- backfill ----------------------------------------------------------------------------
    async def _backfill(self, stop: asyncio.Event, target: int, fin: int) -> None:
        await self._plan_indexes(target)
        nxt = self._indexed() + 1
        unfolded = 0
        pending: deque[tuple[int, asyncio.Task[RangeData]]] = deque()
        try:
            while (nxt <= target or pending) and not stop.is_set():
                while len(pending) < self._fetches_in_flight() and nxt <= target:
                    step = (
                        self.s.backfill_chunk
                        if self._sizer is None
                        else self._sizer.next(scarce=self.src.throttled())
                    )
                    end = min(target, nxt + step - 1)
                    task = asyncio.create_task(self.src.fetch_range(nxt, end, with_headers=False))
                    pending.append((end, task))
                    nxt = end + 1
                asked, task = pending.popleft()
                data = await task
                if self._sizer is not None:
                    self._sizer.observe(data.end - data.start + 1, len(data.events) + len(data.controls))
                if data.end != asked or data.end_ref.number > asked:
                    # A short read would leave a gap behind the cursor: never move past unread heights.
                    raise DataConsistencyError(
                        f"{self.chain}: asked for heights up to {asked}, the source read up to {data.end}"
                    )
                await self._check_link(data)
                unfolded += len(data.events)
                # Without the sender/receiver indexes, account reads scan the chain's events
                # anyway: a deferred backfill folds balances once, at its end.
                fold = not self.status.indexes_deferred and (
                    asked == target or unfolded >= self.s.fold_balances_every
                )
                if fold:
                    unfolded = 0
                await self._commit(
                    Batch(
                        self.chain,
                        expected=self.cursor,
                        cursor=data.end_ref,
                        finalized=fin,
                        events=data.events,
                        copy_rows=data.copy_rows,
                        refs=(data.end_ref,),
                        fold_balances=fold,
                        controls=data.controls,
                    ),
                    new_window=reorg.Window((data.end_ref,), max(self.window.finalized, fin)),
                )
        finally:
            for _, t in pending:
                t.cancel()
            await asyncio.gather(*(t for _, t in pending), return_exceptions=True)
        if self._indexed() >= target and self.status.indexes_deferred:
            await self._build_indexes()

    def _fetches_in_flight(self) -> int:
        """Backfill fetches at once: the configured concurrency, but while a rate-limited
        provider is probed, one (the others then are sized by the probe's density instead of
        each spending requests on a probe of its own)."""
        if self._sizer is not None and self._sizer.probing and self.src.throttled():
            return 1
        return self.s.concurrency

    async def _plan_indexes(self, target: int) -> None:
        """Maintain the secondary event indexes row by row during this backfill, or build them
        once at its end (`should_defer_indexes`): the build then sorts at most about twice the
        new rows, several times cheaper than inserting into three random-order indexes."""
        indexed = self._indexed()
        span, gap = indexed - self.s.start + 1, target - indexed
        if should_defer_indexes(self.s.defer_indexes, self.status.indexes_deferred, span, gap):
            if not self.status.indexes_deferred:
                dropped = await self.store.drop_event_indexes(self.chain)
                self.status.indexes_deferred = True
                self._log.info(
                    "event_indexes_deferred", dropped=dropped, backfill_blocks=gap, indexed_blocks=span
                )
        elif self.status.indexes_deferred:
            await self._build_indexes()

    async def _build_indexes(self) -> None:
        """End a deferral: build the indexes and fold the backfill into balances, concurrently
        (two connections: the build sorts while the fold aggregates)."""
        t0 = time.perf_counter()
        self._log.info("event_indexes_building")
        built, folded = await asyncio.gather(
            self.store.build_event_indexes(self.chain), self.store.fold_balances(self.chain)
        )
        self.status.indexes_deferred = False
        self._log.info(
            "event_indexes_built",
            built=built,
            balances_folded_blocks=folded,
            seconds=round(time.perf_counter() - t0, 3),
        )
        self.export()

    # ---- live --------------------------------------------------------------------------------
    async def _live_step(self, head: int, fin: int) -> bool:
        tip = self.window.tip
        first = tip.number + 1 if tip is not None else self.s.start
        hi = min(head, first - 1 + self.s.live_batch)
        data: RangeData | None = None
        if hi >= first:
            data = await self.src.fetch_range(first, hi, with_headers=True)
            cands = list(data.headers)
        elif tip is None:
            return False  # nothing at or above the start height yet
        else:
            cands = await self._canonical_at_or_below(min(tip.number, head))
        decision = await self._resolve(cands)
        self._log.debug(
            "live_step",
            head=head,
            tip=tip.number if tip else None,
            decision=type(decision).__name__,
            new=[r.number for r in decision.new],
        )
        if isinstance(decision, reorg.Advance) and not decision.new:
            if tip is not None and self.window.finalized < min(fin, tip.number):
                await self._commit_finality(fin)
            return False
        new = decision.new
        events = list(data.events) if data else []
        controls = list(data.controls) if data else []
        if new and (data is None or new[0].number < data.start):
            # A reorg replaced blocks below what we fetched: read the replacements' events too.
            upto = data.start - 1 if data else new[-1].number
            extra = await self.src.fetch_range(new[0].number, upto, with_headers=True)
            want = {r.number: r.hash for r in new if r.number <= upto}
            got = {r.number: r.hash for r in extra.headers}
            if want != got:
                raise DataConsistencyError(f"{self.chain}: the chain moved while reading a reorg's blocks")
            events = list(extra.events) + events
            controls = list(extra.controls) + controls
        keep = {r.hash for r in new}
        events = [e for e in events if e.block_hash in keep]
        controls = [c for c in controls if c.block_hash in keep]
        rollback_to: BlockRef | None = None
        orphaned_refs: tuple[BlockRef, ...] = ()
        match decision:
            case reorg.Reorg(ancestor=ancestor, orphaned=orphaned):
                cursor = new[-1] if new else ancestor
                rollback_to, orphaned_refs = ancestor, tuple(orphaned)
                self._log.warning(
                    "reorg",
                    depth=len(orphaned),
                    ancestor=ancestor.number,
                    old_tip=orphaned[-1].number,
                    new_tip=cursor.number,
                )
                self.metrics.reorgs.labels(self.chain).inc()
                self.metrics.reorg_depth.labels(self.chain).observe(len(orphaned))
            case reorg.Advance():
                cursor = new[-1]
        batch = Batch(
            self.chain,
            expected=tip,
            cursor=cursor,
            finalized=fin,
            events=events,
            refs=new,
            rollback_to=rollback_to,
            orphaned=orphaned_refs,
            controls=controls,
        )
        new_window = reorg.apply(self.window, decision).finalize(min(fin, cursor.number))
        await self._commit(batch, new_window=new_window)
        self._count_large(events)
        self._count_watchlisted(events)
        return bool(new)

    def _count_watchlisted(self, events: list[TokenEvent]) -> None:
        """Count the head's transfers (mints and burns too) from or to a listed address, once per
        list, after their commit landed: the same once-only rule as `_count_large`, and a transfer
        that a reorg's replacement block re-includes is not counted again (`watchlists.Recent`)."""
        if self.watchlists is None or not events:
            return
        matcher = self.watchlists()
        if not matcher.lists:
            return
        for name, (n, raw) in tally(events, matcher, self._watch_counted).items():
            self.metrics.watchlist_transfers.labels(self.chain, name).inc(n)
            self.metrics.watchlist_tokens.labels(self.chain, name).inc(to_float(raw, self.status.decimals))
            self._log.info("watchlist_transfers", list=name, transfers=n, raw=str(raw))

    def _count_large(self, events: list[TokenEvent]) -> None:
        """Count the head's large mints and burns once, after their commit landed: each live step
        commits only blocks above the stored tip, so no event is seen twice (becoming final later
        does not count again; a reorg's replacement blocks are new events; backfill is history)."""
        if self.s.large_event_raw is None or not events:
            return
        for kind, n in large_counts(events, self.s.large_event_raw).items():
            self.metrics.large_events.labels(self.chain, kind.value).inc(n)

    async def _resolve(self, cands: list[BlockRef]) -> reorg.Advance | reorg.Reorg:
        for _ in range(10_000):
            decision = reorg.reconcile(self.window, cands)
            match decision:
                case reorg.Advance() | reorg.Reorg():
                    return decision
                case reorg.NeedParent(number=number):
                    parent = await self._canonical_at_or_below(number)
                    if not parent:
                        raise DataConsistencyError(f"{self.chain}: no canonical block at or below {number}")
                    cands = parent + cands
                case reorg.Inconsistent(reason=reason):
                    raise DataConsistencyError(f"{self.chain}: {reason}")
                case reorg.Violation() as violation:
                    await self._confirm_break(violation)
        raise DataConsistencyError(f"{self.chain}: reorg resolution did not converge")

    async def _check_link(self, data: RangeData) -> None:
        """A range fetched without every header must continue the cursor (parent height and
        hash): in backfill, every range links to the previous range's end or to the cursor
        loaded after a restart."""
        if self.cursor is None:
            return  # nothing stored yet: nothing to link to
        if data.follows is None:
            raise DataConsistencyError(
                f"{self.chain}: the source did not say what range {data.start} follows"
            )
        match reorg.check_link(self.cursor, data.follows, self.window.finalized):
            case None:
                return
            case reorg.Inconsistent(reason=reason):
                raise DataConsistencyError(f"{self.chain}: {reason}")
            case reorg.Violation() as violation:
                await self._confirm_break(violation)

    async def _confirm_break(self, v: reorg.Violation) -> None:
        """The chain read disagrees with the stored final chain at `v.height`: ask every endpoint
        (`indexer.quorum`). A quorum upholding the stored block makes it the fault of the
        endpoints that said otherwise (penalized; retried). Otherwise it is a finality violation:
        halt, naming what each endpoint said. Never returns."""
        att = await attest(self.src, v.height, v.stored)
        said = att.describe()
        match att.verdict:
            case Upheld(liars=liars):
                blamed = ", ".join(sorted(liars)) or "none (a torn read)"
                raise DataConsistencyError(
                    f"{self.chain}: a read broke the final chain at block {v.height} ({v.detail}); a quorum"
                    f" of endpoints upholds the stored block ({said}); blamed: {blamed}"
                )
            case Undecided(reason=reason):
                raise DataConsistencyError(
                    f"{self.chain}: final block {v.height} may have changed ({v.detail}): {said}; {reason}"
                )
            case Overturned(new=new):
                raise FinalityViolation(
                    self.chain,
                    v.finalized,
                    v.fork_point,
                    f"{v.detail}; endpoints say: {said}",
                    block=v.height,
                    stored=v.stored,
                    new=new,
                    votes=att.votes,
                )

    async def _canonical_at_or_below(self, number: int) -> list[BlockRef]:
        """The canonical header at `number`, or the nearest existing one below it (skipped
        Solana slots), not below the window's bottom."""
        floor = self.window.bottom.number if self.window.bottom else 0
        at_or_below = getattr(self.src, "header_at_or_below", None)
        if at_or_below is not None:  # sources with skipped heights know how to find it cheaply
            # Even below the window's bottom: the reorg core then sees that no common ancestor
            # is left above the final anchor (a violation), instead of this walk giving up.
            ref = await at_or_below(number)
            return [ref] if ref is not None else []
        n = number
        while n >= floor:
            lo = max(floor, n - 31)
            got = await self.src.headers(list(range(lo, n + 1)))
            for ref in reversed(got):
                if ref is not None:
                    return [ref]
            n = lo - 1
        return []

    async def _commit_finality(self, fin: int) -> None:
        """Record a finality advance when no new block arrived."""
        tip = self.window.tip
        assert tip is not None
        new_window = self.window.finalize(min(fin, tip.number))
        await self._commit(Batch(self.chain, expected=tip, cursor=tip, finalized=fin), new_window=new_window)
        self.export()

    # ---- shared ------------------------------------------------------------------------------
    async def _commit(self, batch: Batch, new_window: reorg.Window) -> None:
        result = await self.store.commit(batch)
        self.cursor = batch.cursor
        self.window = new_window
        self.status.indexed = batch.cursor.number
        self.status.supply_head = result.head.supply
        self.export()  # the head's figures at once: what follows may take round trips
        if self.controls is not None and result.controls_changed:
            await self.controls.changed(live=self.status.phase is State.LIVE)
        fin = min(batch.finalized, batch.cursor.number)
        if fin > self.status.indexed_finalized:
            await self._advance_finalized(fin)
            self.export()

    async def _advance_finalized(self, fin: int) -> None:
        point = await self.store.supply_at(self.chain, fin)
        prev = self._final_point or Totals()
        m, c, d = self.metrics, self.chain, self.src.decimals
        if point.mints > prev.mints:
            m.events.labels(c, "mint").inc(point.mints - prev.mints)
        if point.burns > prev.burns:
            m.events.labels(c, "burn").inc(point.burns - prev.burns)
        if point.transfers > prev.transfers:
            m.events.labels(c, "transfer").inc(point.transfers - prev.transfers)
        if point.minted > prev.minted:
            m.minted.labels(c).inc(to_float(point.minted - prev.minted, d))
        if point.burned > prev.burned:
            m.burned.labels(c).inc(to_float(point.burned - prev.burned, d))
        self._final_point = point
        self.status.indexed_finalized = fin
        self.status.supply_finalized = point.supply
        if self.controls is not None:
            await self.controls.advance_finalized(fin)

    async def _check_supply(self) -> None:
        """Reconcile indexed finalized supply with the chain's own total supply at that block.

        EVM: `totalSupply()` at the window's anchor (a finalized block, read by hash). Sources that
        can only read the current supply (Solana `getTokenSupply`) offer `supply_snapshot()`
        -> (slot, amount), compared once the index has reached that slot."""
        now = time.monotonic()
        if now - self._last_supply_check < self.s.supply_check_interval:
            return
        snapshot = getattr(self.src, "supply_snapshot", None)
        at_latest = (
            getattr(self.src, "latest_supply", None) if getattr(self.src, "latest_only", False) else None
        )
        try:
            if at_latest is not None:
                # Tron: no past state. totalSupply() at `latest` between two headers, compared
                # with the indexed supply at that block when the index holds it (indexer.latest).
                self._last_supply_check = now
                reads, onchain = await at_latest()
                decision = latest.decide(reads.before, reads.after, self._stored_hash(reads.before))
                match decision:
                    case latest.Skip(reason, detail):
                        self._skip_supply_check(reason, detail)
                        return
                    case latest.Compare(ref):
                        block = ref.number
                    case _:
                        assert_never(decision)
            elif snapshot is not None:
                self._last_supply_check = now
                block, onchain = await snapshot()
                if block > self._indexed() or block == self.status.mismatch_block:
                    return
            else:
                anchor = self.window.bottom
                if (
                    anchor is None
                    or anchor.number > self.window.finalized
                    or anchor.number == self.status.mismatch_block
                ):
                    return
                self._last_supply_check = now
                block, onchain = anchor.number, await self.src.total_supply(anchor)
        except RpcError as exc:
            # Reconciliation is a check, not indexing: a node that cannot answer it (e.g. no state
            # at that block on a pruned node) must not hold the follower back. The mismatch metric
            # keeps its last value and usd1_supply_check_block shows how old it is.
            if not self._supply_check_failing:
                self._log.warning("supply_check_failed", error=str(exc))
                self._supply_check_failing = True
            return
        if self._supply_check_failing:
            self._log.info("supply_check_recovered", block=block)
            self._supply_check_failing = False
        if self._supply_skipping is not None:
            self._log.info("supply_check_resumed", block=block, after=self._supply_skipping)
            self._supply_skipping = None
        indexed = (await self.store.supply_at(self.chain, block)).supply
        self.status.mismatch = indexed - onchain
        self.status.mismatch_block = block
        self.metrics.supply_mismatch.labels(self.chain).set(to_float(indexed - onchain, self.src.decimals))
        self.metrics.supply_check_block.labels(self.chain).set(block)
        if indexed != onchain:
            self._log.error("supply_mismatch", block=block, indexed=str(indexed), onchain=str(onchain))

    def _held(self, number: int) -> str | None:
        """The index's block hash at `number`, when its unfinalized window holds that height."""
        ref = self.window.at(number)
        return None if ref is None else ref.hash

    def _stored_hash(self, ref: BlockRef | None) -> str | None:
        return None if ref is None else self._held(ref.number)

    def _skip_supply_check(self, reason: str, detail: str) -> None:
        """A round of the latest-only supply check that compared nothing: counted; logged when
        skipping starts (and `supply_check_resumed` when a round compares again)."""
        self.metrics.supply_check_skipped.labels(self.chain, reason).inc()
        if self._supply_skipping is None:
            self._log.info("supply_check_skipped", reason=reason, detail=detail[:300])
            self._supply_skipping = reason

    def _indexed(self) -> int:
        return self.cursor.number if self.cursor else self.s.start - 1

    def _mark_success(self, head: int) -> None:
        now = time.time()
        self.status.last_success = now
        if self._indexed() >= head:
            self.status.caught_up_at = now
        self.metrics.last_success.labels(self.chain).set(now)
        self.export()

    def _halt(self, exc: FinalityViolation) -> None:
        self.status.phase = State.HALTED
        self.status.halted_reason = str(exc)
        self.metrics.finality_violation.labels(self.chain).set(1)
        self._log.critical(
            "finality_violation_chain_halted",
            block=exc.block,
            stored_hash=exc.stored or "none",
            new_hash=exc.new or "none",
            finalized=exc.finalized,
            endpoints=votes_text(exc.votes),
            error=str(exc),
        )
        self.export()

    def export(self) -> None:
        st, m, c = self.status, self.metrics, self.chain
        m.block_number.labels(c, "head").set(st.head)
        m.block_number.labels(c, "indexed").set(st.indexed)
        m.block_number.labels(c, "finalized").set(st.finalized)
        m.supply.labels(c, "head").set(to_float(st.supply_head, self.src.decimals))
        m.supply.labels(c, "finalized").set(to_float(st.supply_finalized, self.src.decimals))
        m.lag_seconds.labels(c).set(st.lag_seconds())
        m.indexes_deferred.labels(c).set(1 if st.indexes_deferred else 0)
        state = st.state()
        for s in STATES:
            m.chain_state.labels(c, s).set(1 if s == state else 0)
        if st.phase != State.HALTED:
            m.finality_violation.labels(c).set(0)
        self._on_update()


def should_defer_indexes(enabled: bool, deferred: bool, indexed_blocks: int, backfill_blocks: int) -> bool:
    """PURE: whether a backfill of `backfill_blocks` heights over `indexed_blocks` already
    indexed runs without the secondary event indexes. Deferring pays when the backfill more than
    doubles the indexed range; once deferred they stay so until a backfill reaches its target."""
    return enabled and (deferred or backfill_blocks > indexed_blocks)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
