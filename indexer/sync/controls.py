"""A chain's control metrics and its contract-state check (the I/O around `indexer.controls`).

- Head gauges (`usd1_control_head_events`, `usd1_last_control_event_timestamp_seconds`,
  `usd1_paused`, `usd1_frozen_accounts`, `usd1_frozen_tokens`, `usd1_control_info`) are recomputed
  from the store after every live commit that adds or rolls back control events, and at each
  check (so a fill by another process shows too): a reorg that orphans an event takes it out. A
  backfill recomputes them when it ends, not per batch (each refresh folds every stored event).
- `usd1_control_events_total` counts finalized control events, continuous across restarts (the
  store's count at the finalized height, as `usd1_events_total`).
- The check, every `control_check_interval`: the state folded at the window's anchor (a finalized
  block) against the chain at that block by hash: owner (and pending owner), EIP-1967 (or
  ZeppelinOS) implementation and admin slots, paused, the freeze getter for a rotating sample of
  frozen accounts, the owner of each watched Ownable contract. A disagreement sets
  `usd1_control_mismatch{field}` and is logged when it starts and when it ends. A read that cannot
  be made (a getter that reverts, a watched address without code, a dialect without past state,
  an RPC failure) is skipped: counted in `usd1_control_check_skipped_total`, logged once. The
  check runs only when the controls coverage is complete (from the chain's start block).
"""

from __future__ import annotations

import asyncio
import time

import sha3
import structlog

from indexer.chains.evm import EvmSource
from indexer.chains.evm_families import ControlFamily
from indexer.config import EvmChainConfig
from indexer.controls import FREEZE_GETTERS, PAUSE_FAMILIES, ZERO, Field, Probe, compare, fold, plan
from indexer.errors import RpcError
from indexer.metrics import Metrics
from indexer.model import BlockRef, Family
from indexer.store import control_queries as cq
from indexer.store import queries
from indexer.store.store import LATEST, Store
from indexer.sync.status import ChainStatus
from indexer.units import to_float

log = structlog.get_logger(__name__)


class Skip(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(detail or reason)


def _selector(signature: str) -> str:
    return "0x" + sha3.keccak_256(signature.encode()).hexdigest()[:8]


def fields_of(families: dict[str, tuple[ControlFamily, ...]], token: str) -> list[Field]:
    """The mismatch fields a chain's control families can report."""
    out: list[Field] = []
    for address, fams in families.items():
        if ControlFamily.OWNABLE in fams:
            out += [Field.OWNER, Field.PENDING_OWNER]
        if ControlFamily.PROXY in fams and address == token:
            out += [Field.IMPLEMENTATION, Field.ADMIN]
        if any(f in fams for f in PAUSE_FAMILIES):
            out.append(Field.PAUSED)
        if any(f in fams for f in FREEZE_GETTERS):
            out.append(Field.FROZEN)
    return [f for f in Field if f in out]


class ControlsMonitor:
    def __init__(
        self, cfg: EvmChainConfig, source: EvmSource, store: Store, metrics: Metrics, status: ChainStatus
    ) -> None:
        d = source.dispatch
        self.cfg = cfg
        self.chain = cfg.name
        self.src = source
        self.store = store
        self.metrics = metrics
        self.status = status
        self.contracts = [(c.address, c.label) for c in d.contracts]
        self.families = {c.address: c.families for c in d.contracts}
        self.kinds = d.control_kinds()
        self.fields = fields_of(self.families, d.token)
        self._final_counts: dict[str, int] = {}
        self._info: tuple[str, str, str] | None = None
        self._mismatch: set[Field] = set()
        self._skipping: set[tuple[str, str, str]] = set()
        self._last_check = 0.0
        self._offset = 0
        self._stale = False
        self._log = log.bind(chain=self.chain)
        metrics.init_controls(self.chain, [k.value for k in self.kinds], [f.value for f in self.fields])

    # ---- metrics from the store --------------------------------------------------------------
    async def advance_finalized(self, fin: int) -> None:
        async with self.store.snapshot() as conn:
            stats = await cq.kind_stats(conn, self.chain, fin)
        for kind, (n, _) in stats.items():
            prev = self._final_counts.get(kind.value, 0)
            if n > prev:
                self.metrics.control_events.labels(self.chain, kind.value).inc(n - prev)
                self._final_counts[kind.value] = n

    async def changed(self, *, live: bool) -> None:
        """A commit added or rolled back control events: the head gauges follow at once when
        following the head; a backfill (below finality, where every batch may hold some) has them
        recomputed once it ends (`refresh_if_stale`) or at the next check, not per batch."""
        if live:
            await self.refresh_head()
        else:
            self._stale = True

    async def refresh_if_stale(self) -> None:
        if self._stale:
            await self.refresh_head()

    async def refresh_head(self) -> None:
        self._stale = False
        async with self.store.snapshot() as conn:
            stats = await cq.kind_stats(conn, self.chain, LATEST)
            head = await cq.state_at(conn, self.chain, self.contracts, LATEST, head=True)
        m, c = self.metrics, self.chain
        for kind in {*self.kinds, *stats}:
            n, t = stats.get(kind, (0, 0))
            m.control_head_events.labels(c, kind.value).set(n)
            m.last_control_event.labels(c, kind.value).set(t)
        token = head.state.token
        m.paused.labels(c).set(1 if token.paused else 0)
        m.frozen_accounts.labels(c).set(len(token.frozen))
        m.frozen_tokens.labels(c).set(to_float(head.frozen_raw, self.cfg.decimals))
        info = (token.owner or ZERO, token.admin or ZERO, token.implementation or ZERO)
        if info != self._info:
            if self._info is not None:
                m.control_info.remove(c, *self._info)
            m.control_info.labels(c, *info).set(1)
            self._info = info

    # ---- the check against the chain ---------------------------------------------------------
    async def check(self, anchor: BlockRef | None, finalized: int) -> None:
        now = time.monotonic()
        if now - self._last_check < self.cfg.control_check_interval:
            return
        self._last_check = now
        await self.refresh_head()
        if anchor is None or anchor.number > finalized:
            return
        async with self.store.snapshot() as conn:
            cov = (await queries.coverage(conn, self.chain)).get(Family.CONTROLS)
            events = await cq.events_upto(conn, self.chain, anchor.number)
        if cov is None or cov.from_block > self.cfg.start_block:
            self._skip(
                "all", self.chain, "partial_coverage", f"controls coverage starts at {cov and cov.from_block}"
            )
            return
        self._skipping.discard(("all", self.chain, "partial_coverage"))
        state = fold(events, self.contracts)
        probes = plan(state, self.families, sample=self.cfg.control_check_sample, offset=self._offset)
        self._offset += max(1, self.cfg.control_check_sample)
        no_code = await self._without_code(anchor)
        results = await asyncio.gather(*(self._read(p, anchor, no_code) for p in probes))
        read = [(p, v) for p, v in zip(probes, results, strict=True) if v is not None]
        diffs = compare(state, read)
        for f in self.fields:
            if f not in diffs:
                continue  # not read this round: keeps its value
            bad = bool(diffs[f])
            self.metrics.control_mismatch.labels(self.chain, f.value).set(1 if bad else 0)
            if bad and f not in self._mismatch:
                self._mismatch.add(f)
                self._log.error("control_mismatch", field=f.value, block=anchor.number, detail=diffs[f][:5])
            elif not bad and f in self._mismatch:
                self._mismatch.discard(f)
                self._log.info("control_mismatch_resolved", field=f.value, block=anchor.number)
        self.metrics.control_check_block.labels(self.chain).set(anchor.number)
        self.status.control_check = {
            "block": anchor.number,
            "checked_at": time.time(),
            "checked": sorted({p.field.value for p, _ in read}),
            "mismatches": {f.value: d for f, d in diffs.items() if d},
            "skipped": len(probes) - len(read),
        }

    async def _without_code(self, anchor: BlockRef) -> set[str]:
        """Watched addresses that hold no contract at the anchor (their reads are skipped)."""
        out = set()
        for address, label in self.contracts[1:]:
            try:
                size = await self.src.code_size(address, anchor)
            except RpcError:
                continue
            if size == 0:
                out.add(address)
                self._skip("all", address, "no_code", f"watched address {address} ({label}) has no code")
            else:
                self._skipping.discard(("all", address, "no_code"))
        return out

    async def _read(self, p: Probe, anchor: BlockRef, no_code: set[str]) -> str | bool | None:
        try:
            if p.address in no_code:
                raise Skip("no_code")
            value = await self._value(p, anchor)
        except Skip as exc:
            self._skip(p.field.value, p.address, exc.reason, str(exc))
            return None
        except RpcError as exc:
            reason = "reverted" if exc.code == 3 else "rpc_error"
            self._skip(p.field.value, p.address, reason, str(exc))
            return None
        for reason in ("reverted", "rpc_error", "no_code", "no_past_state"):
            self._skipping.discard((p.field.value, p.address, reason))
        return value

    async def _value(self, p: Probe, anchor: BlockRef) -> str | bool:
        if p.slot is not None:
            word = await self.src.storage_at(p.address, p.slot, anchor)
            if word is None:
                raise Skip("no_past_state")
        else:
            assert p.call is not None
            data = _selector(p.call) + ("" if p.account is None else p.account[2:].rjust(64, "0"))
            result = await self.src.call_at(p.address, data, anchor)
            if result is None:
                raise Skip("no_past_state")
            if len(result) != 66:
                raise Skip("no_code" if result == "0x" else "reverted", f"{p.call} returned {result[:80]}")
            word = int(result, 16)
        if p.kind == "bool":
            return word != 0
        return "0x" + format(word & (2**160 - 1), "040x")

    def _skip(self, field: str, address: str, reason: str, detail: str) -> None:
        self.metrics.control_check_skipped.labels(self.chain, field, reason).inc()
        key = (field, address, reason)
        if key not in self._skipping:
            self._skipping.add(key)
            self._log.warning(
                "control_check_skipped", field=field, address=address, reason=reason, detail=detail[:300]
            )
