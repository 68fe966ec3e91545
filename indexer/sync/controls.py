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
from collections.abc import Callable, Iterable
from typing import Any, assert_never

import sha3
import structlog

from indexer import latest
from indexer.chains.evm import EvmSource
from indexer.chains.evm_families import ControlFamily
from indexer.chains.solana import SolanaSource
from indexer.config import EvmChainConfig, SolanaChainConfig
from indexer.controls import (
    FREEZE_GETTERS,
    NO_AUTHORITY,
    PAUSE_FAMILIES,
    ZERO,
    ContractState,
    Field,
    MintAccount,
    Probe,
    compare,
    decode_mint_account,
    fold,
    plan,
    solana_plan,
    token_account_frozen,
)
from indexer.errors import RpcError
from indexer.metrics import Metrics
from indexer.model import BlockRef, ControlKind, Family
from indexer.store import control_queries as cq
from indexer.store import queries
from indexer.store.store import LATEST, Store
from indexer.sync.status import ChainStatus
from indexer.units import to_float

log = structlog.get_logger(__name__)


# The index's block hash at a height, None when its window does not hold it.
Held = Callable[[int], str | None]


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
    """What every chain kind's control monitor shares: head and finalized metrics from the store,
    the mismatch gauges and their start/end logs, counted skips. A kind adds its `check`."""

    def __init__(
        self,
        *,
        chain: str,
        decimals: int,
        start: int,
        interval: float,
        sample: int,
        store: Store,
        metrics: Metrics,
        status: ChainStatus,
        contracts: list[tuple[str, str]],
        kinds: Iterable[ControlKind],
        fields: list[Field],
    ) -> None:
        self.chain = chain
        self.decimals = decimals
        self.start = start
        self.interval = interval
        self.sample = sample
        self.store = store
        self.metrics = metrics
        self.status = status
        self.contracts = contracts
        self.kinds = tuple(kinds)
        self.fields = fields
        self._final_counts: dict[str, int] = {}
        self._info: tuple[str, str, str] | None = None
        self._mismatch: set[Field] = set()
        self._skipping: set[tuple[str, str, str]] = set()
        self._last_check = 0.0
        self._offset = 0
        self._stale = False
        self._log = log.bind(chain=self.chain)
        metrics.init_controls(self.chain, [k.value for k in self.kinds], [f.value for f in self.fields])

    async def check(self, anchor: BlockRef | None, finalized: int, held: Held | None = None) -> None:
        """One round, when due. `held(n)`: the index's block hash at height n while its
        unfinalized window holds it (for checks read at `latest`, indexer.latest)."""
        raise NotImplementedError

    def info(self, token: ContractState) -> tuple[str, str, str]:
        """The usd1_control_info labels (owner, admin, implementation)."""
        return (token.owner or ZERO, token.admin or ZERO, token.implementation or ZERO)

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
        m.frozen_tokens.labels(c).set(to_float(head.frozen_raw, self.decimals))
        info = self.info(token)
        if info != self._info:
            if self._info is not None:
                m.control_info.remove(c, *self._info)
            m.control_info.labels(c, *info).set(1)
            self._info = info

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_check < self.interval:
            return False
        self._last_check = now
        return True

    async def _complete(self) -> bool:
        """Whether the controls coverage starts at the chain's start (else the check is skipped)."""
        async with self.store.snapshot() as conn:
            cov = (await queries.coverage(conn, self.chain)).get(Family.CONTROLS)
        if cov is None or cov.from_block > self.start:
            self._skip(
                "all", self.chain, "partial_coverage", f"controls coverage starts at {cov and cov.from_block}"
            )
            return False
        self._skipping.discard(("all", self.chain, "partial_coverage"))
        return True

    def _report(
        self, block: int, read: list[tuple[Probe, str | bool]], probes: int, diffs: dict[Field, list[str]]
    ) -> None:
        for f in self.fields:
            if f not in diffs:
                continue  # not read this round: keeps its value
            bad = bool(diffs[f])
            self.metrics.control_mismatch.labels(self.chain, f.value).set(1 if bad else 0)
            if bad and f not in self._mismatch:
                self._mismatch.add(f)
                self._log.error("control_mismatch", field=f.value, block=block, detail=diffs[f][:5])
            elif not bad and f in self._mismatch:
                self._mismatch.discard(f)
                self._log.info("control_mismatch_resolved", field=f.value, block=block)
        self.metrics.control_check_block.labels(self.chain).set(block)
        self.status.control_check = {
            "block": block,
            "checked_at": time.time(),
            "checked": sorted({p.field.value for p, _ in read}),
            "mismatches": {f.value: d for f, d in diffs.items() if d},
            "skipped": probes - len(read),
        }

    def _skip(self, field: str, address: str, reason: str, detail: str) -> None:
        self.metrics.control_check_skipped.labels(self.chain, field, reason).inc()
        key = (field, address, reason)
        if key not in self._skipping:
            self._skipping.add(key)
            self._log.warning(
                "control_check_skipped", field=field, address=address, reason=reason, detail=detail[:300]
            )


class EvmControls(ControlsMonitor):
    """The EVM check: getters and storage slots at the window's anchor, by block hash."""

    def __init__(
        self, cfg: EvmChainConfig, source: EvmSource, store: Store, metrics: Metrics, status: ChainStatus
    ) -> None:
        d = source.dispatch
        self.cfg = cfg
        self.src = source
        self.families = {c.address: c.families for c in d.contracts}
        super().__init__(
            chain=cfg.name,
            decimals=cfg.decimals,
            start=cfg.start_block,
            interval=cfg.control_check_interval,
            sample=cfg.control_check_sample,
            store=store,
            metrics=metrics,
            status=status,
            contracts=[(c.address, c.label) for c in d.contracts],
            kinds=d.control_kinds(),
            fields=fields_of(self.families, d.token),
        )

    def info(self, token: ContractState) -> tuple[str, str, str]:
        """The usd1_control_info labels, in the chain's shown address form (Tron: base58)."""
        owner, admin, implementation = super().info(token)
        show = self.cfg.show_address
        return (show(owner), show(admin), show(implementation))

    # ---- the check against the chain ---------------------------------------------------------
    async def check(self, anchor: BlockRef | None, finalized: int, held: Held | None = None) -> None:
        if not self._due():
            return
        await self.refresh_head()
        if self.src.latest_only:
            if held is not None:
                await self._check_latest(held)
            return
        if anchor is None or anchor.number > finalized:
            return
        if not await self._complete():
            return
        async with self.store.snapshot() as conn:
            events = await cq.events_upto(conn, self.chain, anchor.number)
        state = fold(events, self.contracts)
        probes = plan(state, self.families, sample=self.sample, offset=self._offset)
        self._offset += max(1, self.sample)
        no_code = await self._without_code(anchor)
        results = await asyncio.gather(*(self._read(p, anchor, no_code) for p in probes))
        read = [(p, v) for p, v in zip(probes, results, strict=True) if v is not None]
        diffs = compare(state, read)
        self._report(anchor.number, read, len(probes), diffs)

    async def _check_latest(self, held: Held) -> None:
        """Tron: every read at `latest` in one batch between two latest headers; compared with the
        state folded at that block when the index holds it, else the round is skipped
        (indexer.latest). A batch fails whole, so one reverting getter skips the round."""
        if not await self._complete():
            return
        async with self.store.snapshot() as conn:
            head_state = fold(await cq.events_upto(conn, self.chain, LATEST), self.contracts)
        probes = plan(head_state, self.families, sample=self.sample, offset=self._offset)
        self._offset += max(1, self.sample)
        watched = [a for a, _ in self.contracts[1:]]
        reads = [("eth_getCode", [a]) for a in watched] + [_request(p) for p in probes]
        try:
            got = await self.src.latest_reads(reads)
        except RpcError as exc:
            self._skip("all", self.chain, "reverted" if exc.code == 3 else "rpc_error", str(exc))
            return
        self._skipping.discard(("all", self.chain, "rpc_error"))
        self._skipping.discard(("all", self.chain, "reverted"))
        decision = latest.decide(
            got.before, got.after, None if got.before is None else held(got.before.number)
        )
        match decision:
            case latest.Skip(reason, detail):
                self._skip("all", self.chain, reason, detail)
                return
            case latest.Compare(block):
                pass
            case _:
                assert_never(decision)
        for reason in latest.SKIP_REASONS:
            self._skipping.discard(("all", self.chain, reason))
        codes, values = got.results[: len(watched)], got.results[len(watched) :]
        no_code = {a for a, code in zip(watched, codes, strict=True) if code in ("0x", None)}
        for a in no_code:
            self._skip("all", a, "no_code", f"watched address {a} has no code")
        read: list[tuple[Probe, str | bool]] = []
        for p, raw in zip(probes, values, strict=True):
            if p.address in no_code:
                continue
            try:
                read.append((p, _interpret(p, raw)))
            except Skip as exc:
                self._skip(p.field.value, p.address, exc.reason, str(exc))
        async with self.store.snapshot() as conn:
            state = fold(await cq.events_upto(conn, self.chain, block.number), self.contracts)
        self._report(block.number, read, len(probes), compare(state, read))

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


def _request(p: Probe) -> tuple[str, list[Any]]:
    """The JSON-RPC read of a probe, without its block parameter."""
    if p.slot is not None:
        return "eth_getStorageAt", [p.address, p.slot]
    assert p.call is not None
    data = _selector(p.call) + ("" if p.account is None else p.account[2:].rjust(64, "0"))
    return "eth_call", [{"to": p.address, "data": data}]


def _interpret(p: Probe, raw: Any) -> str | bool:
    """A probe's raw read (a 32-byte word as hex) -> the value `compare` takes; Skip otherwise."""
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise Skip("malformed", f"{p.call or p.slot} returned {raw!r:.80}")
    if p.slot is None and len(raw) != 66:
        raise Skip("no_code" if raw == "0x" else "reverted", f"{p.call} returned {raw[:80]}")
    try:
        word = int(raw, 16) if len(raw) > 2 else 0
    except ValueError:
        raise Skip("malformed", f"{p.call or p.slot} returned {raw[:80]}") from None
    if p.kind == "bool":
        return word != 0
    return "0x" + format(word & (2**160 - 1), "040x")


SOLANA_KINDS = (
    ControlKind.MINT_AUTHORITY_CHANGED,
    ControlKind.FREEZE_AUTHORITY_CHANGED,
    ControlKind.AUTHORITY_CHANGED,
    ControlKind.FROZEN,
    ControlKind.UNFROZEN,
    ControlKind.PAUSED,
    ControlKind.UNPAUSED,
)
SOLANA_FIELDS = [Field.PAUSED, Field.FROZEN, Field.MINT_AUTHORITY, Field.FREEZE_AUTHORITY]


class SolanaControls(ControlsMonitor):
    """The Solana check: the mint account and a rotating sample of the frozen token accounts, read
    in one `getMultipleAccounts` at the configured commitment (finalized by default), against the
    state folded from the stored events at the slot the node answered for. Solana serves no past
    state, so a read whose slot the index has not reached yet is skipped (`not_indexed`) and tried
    at the next check."""

    def __init__(
        self,
        cfg: SolanaChainConfig,
        source: SolanaSource,
        store: Store,
        metrics: Metrics,
        status: ChainStatus,
    ) -> None:
        self.cfg = cfg
        self.src = source
        super().__init__(
            chain=cfg.name,
            decimals=cfg.decimals,
            start=cfg.start_slot,
            interval=cfg.control_check_interval,
            sample=cfg.control_check_sample,
            store=store,
            metrics=metrics,
            status=status,
            contracts=[(cfg.mint, "token")],
            kinds=SOLANA_KINDS,
            fields=SOLANA_FIELDS,
        )

    def info(self, token: ContractState) -> tuple[str, str, str]:
        """owner = the mint authority, admin = the freeze authority ("none" when unset); a mint has
        no implementation to upgrade (its program is fixed), so that label is "none"."""
        return (token.mint_authority or NO_AUTHORITY, token.freeze_authority or NO_AUTHORITY, NO_AUTHORITY)

    async def check(self, anchor: BlockRef | None, finalized: int, held: Held | None = None) -> None:
        if not self._due():
            return
        await self.refresh_head()
        if not await self._complete():
            return
        async with self.store.snapshot() as conn:
            at = await queries.as_of(conn, self.chain)
            events = await cq.events_upto(conn, self.chain, finalized)
        if at.block is None:
            return
        probes = solana_plan(fold(events, self.contracts), sample=self.sample, offset=self._offset)
        self._offset += max(1, self.sample)
        accounts = [p.account for p in probes if p.account is not None]
        try:
            slot, datas = await self.src.accounts([self.cfg.mint, *accounts])
        except RpcError as exc:
            self._skip("all", self.cfg.mint, "rpc_error", str(exc))
            return
        self._skipping.discard(("all", self.cfg.mint, "rpc_error"))
        if slot > at.block:
            self._skip("all", self.cfg.mint, "not_indexed", f"node read slot {slot}, index at {at.block}")
            return
        self._skipping.discard(("all", self.cfg.mint, "not_indexed"))
        async with self.store.snapshot() as conn:
            state = fold(await cq.events_upto(conn, self.chain, slot), self.contracts)
        read = self._values(probes, datas[0], dict(zip(accounts, datas[1:], strict=True)))
        self._report(slot, read, len(probes), compare(state, read))

    def _values(
        self, probes: list[Probe], mint_data: bytes | None, token_accounts: dict[str, bytes | None]
    ) -> list[tuple[Probe, str | bool]]:
        out: list[tuple[Probe, str | bool]] = []
        mint: MintAccount | None = None
        try:
            if mint_data is None:
                raise ValueError("the mint account does not exist")
            mint = decode_mint_account(mint_data)
            self._skipping.discard(("all", self.cfg.mint, "malformed"))
        except ValueError as exc:
            self._skip("all", self.cfg.mint, "malformed", str(exc))
        for p in probes:
            match p.field:
                case Field.MINT_AUTHORITY if mint is not None:
                    out.append((p, mint.mint_authority or NO_AUTHORITY))
                case Field.FREEZE_AUTHORITY if mint is not None:
                    out.append((p, mint.freeze_authority or NO_AUTHORITY))
                case Field.PAUSED if mint is not None:
                    out.append((p, bool(mint.paused)))  # no pausable extension: never paused
                case Field.FROZEN:
                    assert p.account is not None
                    data = token_accounts.get(p.account)
                    if data is None:  # closed (a frozen account cannot be closed)
                        out.append((p, False))
                        continue
                    try:
                        out.append((p, token_account_frozen(data, self.cfg.mint)))
                    except ValueError as exc:
                        self._skip(p.field.value, p.account, "malformed", str(exc))
                case _:
                    pass
        return out
