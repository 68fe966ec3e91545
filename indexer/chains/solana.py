"""Solana `ChainSource`: slots, commitment levels and SPL token movements of one mint.

Transport: raw JSON-RPC through the project's endpoint pool (`indexer.chains.rpc.RpcPool`:
aiohttp + orjson, retries, failover, metrics) rather than solana-py's `AsyncClient`. AsyncClient
turns every reply into solders objects, which this source would have to turn back into plain data
for the pure parser (`solana_parse`, which also reads the recorded mainnet fixtures), hides the
RPC error codes this source needs (-32004/-32007/-32009) and has no failover. Any object with
`async call(method, params) -> result` raising `RpcError`, plus `labels`, `pinned` and `penalize`
for the cross-checks, works (`JsonRpc`).

Heights are slots. Reads use the `confirmed` commitment (`getBlock`/`getBlocks` do not serve
`processed`); `head()` is the confirmed slot and `finalized()` follows the configured commitment.

Requests: `fetch_range(start, end)` costs 1 `getSlot` + 1 `getBlocks` + 1 `getBlock` per existing
block (about 1 + 2/N requests per block for a range of N blocks; skipped slots cost nothing);
with or without headers the cost is the same, since headers come from the same `getBlock` replies.
`headers(slots)` costs 1 `getBlocks` (one per slot when the slots are sparse) + 1
`getBlock(transactionDetails=none)` per existing slot. Skipped slots are learned from `getBlocks`,
never from error replies; -32004/-32007/-32009 on a listed slot (a fork in between) still map to
None in `headers` and to DataConsistencyError in `fetch_range`.

Supply: Solana cannot read a mint's supply at an arbitrary past slot. `getTokenSupply` answers
for the commitment's current slot, so `total_supply(ref)` returns it only when that slot is
`ref.number` and raises `SupplyNotAtBlock` (carrying the slot and amount it did read) otherwise;
callers compare supply only when the finalized slot equals their ref (`supply_snapshot()` gives
(slot, amount) to compare against the index at that slot).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

import structlog

from indexer.chains.solana_parse import ParsedBlock, block_ref, parent_slot, parse_block_families
from indexer.chains.solana_signatures import SignatureBackfill
from indexer.config import SolanaChainConfig
from indexer.errors import DataConsistencyError, MalformedReply, RpcError
from indexer.finality import solana_finalized_height
from indexer.model import BlockRef, ControlEvent, Family, RangeData, TokenEvent

T = TypeVar("T")

# JSON-RPC error codes of a Solana node that mean "no block at this slot (for this commitment)".
SLOT_SKIPPED = -32007
LONG_TERM_STORAGE_SLOT_SKIPPED = -32009
BLOCK_NOT_AVAILABLE = -32004
NO_BLOCK_CODES = frozenset({SLOT_SKIPPED, LONG_TERM_STORAGE_SLOT_SKIPPED, BLOCK_NOT_AVAILABLE})
MAX_GET_BLOCKS_RANGE = 500_000
INVALID_PARAMS = -32602  # e.g. getTokenAccountBalance of an account that is not a token account
_CODE_RE = re.compile(r"RPC error (-?\d+)")


class JsonRpc(Protocol):
    """The endpoint pool as this source uses it (`RpcPool` is one)."""

    async def call(self, method: str, params: list[Any]) -> Any: ...

    def labels(self) -> list[str]: ...

    def pinned(self, label: str) -> JsonRpc: ...

    def penalize(self, label: str, reason: str) -> None: ...

    def throttled(self) -> bool: ...


MAX_MULTIPLE_ACCOUNTS = 100  # getMultipleAccounts' limit


def _account_data(value: Any, key: str) -> bytes:
    """The data of one `getMultipleAccounts` / `getAccountInfo` value (base64 encoding)."""
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, list) or len(data) != 2 or data[1] != "base64" or not isinstance(data[0], str):
        raise MalformedReply(f"account {key}: data is not [base64, 'base64']: {data!r:.80}")
    try:
        return base64.b64decode(data[0], validate=True)
    except ValueError:
        raise MalformedReply(f"account {key}: data is not valid base64") from None


class SupplySlotMismatch(RpcError):
    """`getTokenSupply` answered for a slot other than the one asked about."""

    def __init__(self, wanted: int, slot: int, amount: int) -> None:
        self.wanted = wanted
        self.slot = slot
        self.amount = amount
        super().__init__(
            f"token supply read at slot {slot}, not {wanted}: Solana serves supply only at the "
            "commitment's current slot",
            retryable=True,
        )


def rpc_error_code(exc: RpcError) -> int | None:
    """The JSON-RPC error code of an error reply (attribute `code` when the pool provides it)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    m = _CODE_RE.search(str(exc))
    return int(m.group(1)) if m else None


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedReply(f"{what} is not a non-negative integer: {value!r:.80}")
    return value


def _token_amount(reply: Any, method: str) -> tuple[int, int, int]:
    """(context slot, amount, decimals) of a `getTokenSupply` / `getTokenAccountBalance` result."""
    if not isinstance(reply, dict):
        raise MalformedReply(f"{method} result is not an object: {reply!r:.80}")
    ctx, value = reply.get("context"), reply.get("value")
    if not isinstance(ctx, dict) or not isinstance(value, dict):
        raise MalformedReply(f"{method} result lacks context/value: {reply!r:.120}")
    slot = _int(ctx.get("slot"), f"{method} context.slot")
    amount = value.get("amount")
    if not isinstance(amount, str) or not amount.isdigit():
        raise MalformedReply(f"{method} amount is not a decimal integer string: {amount!r:.40}")
    return slot, int(amount), _int(value.get("decimals"), f"{method} decimals")


class SolanaSource:
    """`ChainSource` for one SPL mint (Token or Token-2022)."""

    def __init__(
        self,
        config: SolanaChainConfig,
        rpc: JsonRpc,
        *,
        encoding: Literal["json", "jsonParsed"] = "json",
        logger: Any = None,
        close: Callable[[], Awaitable[None]] | None = None,
        signatures: bool | None = None,
    ) -> None:
        self.name = config.name
        self.decimals = config.decimals
        self.mint = config.mint
        self.config = config
        self.encoding = encoding
        self._rpc = rpc
        self._log = logger if logger is not None else structlog.get_logger(__name__).bind(chain=config.name)
        self._sem = asyncio.Semaphore(config.max_concurrency)
        self._close = close
        self._via: dict[str, SolanaSource] = {}
        self.requests: Counter[str] = Counter()  # per RPC method, for measurement and tests
        # Backfill reads (with_headers=False) at or below the finalized slot through the signature
        # lists when the chain's `backfill_source` says so (`signatures` overrides it).
        use = config.backfill_source == "signatures" if signatures is None else signatures
        self._signatures = SignatureBackfill(self) if use else None

    @classmethod
    def from_config(
        cls,
        config: SolanaChainConfig,
        *,
        metrics: Any,
        session: Any = None,
        encoding: Literal["json", "jsonParsed"] = "json",
        logger: Any = None,
        attempts: int = 5,
    ) -> SolanaSource:
        """A source over `RpcPool` with the config's endpoints, timeout and concurrency. Owns the
        aiohttp session when none is given (closed by `close()`)."""
        import aiohttp

        from indexer.chains.rpc import RpcPool

        owned = session is None
        sess = aiohttp.ClientSession() if owned else session
        pool = RpcPool(
            chain=config.name,
            urls=list(config.rpc),
            session=sess,
            metrics=metrics,
            timeout=config.request_timeout,
            attempts=attempts,
            max_in_flight=config.max_concurrency,
            max_rps=config.max_requests_per_second,
        )
        return cls(config, pool, encoding=encoding, logger=logger, close=sess.close if owned else None)

    async def close(self) -> None:
        if self._close is not None:
            await self._close()
            self._close = None

    def endpoints(self) -> list[str]:
        return self._rpc.labels()

    def throttled(self) -> bool:
        return self._rpc.throttled()

    def via(self, label: str) -> SolanaSource:
        """This source reading through endpoint `label` only: cross-checks and audits."""
        src = self._via.get(label)
        if src is None:
            src = self._via[label] = SolanaSource(
                self.config,
                self._rpc.pinned(label),
                encoding=self.encoding,
                logger=self._log,
                signatures=False,  # audits re-read a range block by block
            )
        return src

    def penalize(self, label: str, reason: str) -> None:
        self._rpc.penalize(label, reason)

    # ---- RPC helpers ----

    async def _call(self, method: str, params: list[Any]) -> Any:
        self.requests[method] += 1
        async with self._sem:
            return await self._rpc.call(method, params)

    async def _slot(self, commitment: str) -> int:
        return _int(await self._call("getSlot", [{"commitment": commitment}]), f"getSlot({commitment})")

    async def _blocks(self, start: int, end: int) -> list[int]:
        """Existing (confirmed) slots in [start, end], split into ranges the node accepts."""
        out: list[int] = []
        lo = start
        while lo <= end:
            hi = min(end, lo + MAX_GET_BLOCKS_RANGE - 1)
            reply = await self._call("getBlocks", [lo, hi, {"commitment": "confirmed"}])
            if not isinstance(reply, list):
                raise MalformedReply(f"getBlocks({lo}, {hi}) result is not a list: {reply!r:.80}")
            prev = lo - 1
            for s in reply:
                if not isinstance(s, int) or isinstance(s, bool) or not prev < s <= hi:
                    raise MalformedReply(
                        f"getBlocks({lo}, {hi}) returned {s!r}, not ascending within the range"
                    )
                prev = s
            out.extend(reply)
            lo = hi + 1
        return out

    async def _get_block(self, slot: int, *, full: bool) -> Any:
        cfg: dict[str, Any] = {
            "commitment": "confirmed",
            "encoding": self.encoding if full else "json",
            "transactionDetails": "full" if full else "none",
            "rewards": False,
            "maxSupportedTransactionVersion": 0,
        }
        reply = await self._call("getBlock", [slot, cfg])
        if reply is None:
            raise MalformedReply(f"getBlock({slot}) returned null")
        return reply

    async def _gather(self, coros: Sequence[Awaitable[T]]) -> list[T]:
        """Run all (concurrency bounded by `_call`'s semaphore); cancel the rest on the first error."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # ---- ChainSource ----

    async def head(self) -> int:
        return await self._slot("confirmed")

    async def finalized(self, head: int) -> int:
        rule = self.config.finality
        fin = head if rule.commitment == "confirmed" else await self._slot("finalized")
        return min(head, solana_finalized_height(rule, head, fin))

    async def tips(self) -> tuple[int, int]:
        rule = self.config.finality
        if rule.commitment == "confirmed":
            head = await self.head()
            return head, await self.finalized(head)  # no second slot to read
        # Both slots at once: the finalized one is capped at the confirmed one whichever came first.
        head, fin = await self._gather([self.head(), self._slot("finalized")])
        return head, solana_finalized_height(rule, head, fin)

    async def headers(self, numbers: Sequence[int]) -> list[BlockRef | None]:
        if not numbers:
            return []
        # Ask getBlocks which slots hold blocks first, so skipped slots cost no getBlock and raise
        # no error replies (which the pool would retry): one call over a dense span, else one
        # single-slot call per requested slot.
        lo, hi = min(numbers), max(numbers)
        if hi - lo <= max(1000, 4 * len(numbers)):
            existing = set(await self._blocks(lo, hi))
        else:
            wanted = sorted(set(numbers))
            found = await self._gather([self._blocks(n, n) for n in wanted])
            existing = {n for n, f in zip(wanted, found, strict=True) if f}

        async def one(slot: int) -> BlockRef | None:
            if slot not in existing:
                return None
            try:
                reply = await self._get_block(slot, full=False)
            except MalformedReply:
                raise
            except RpcError as exc:
                if rpc_error_code(exc) in NO_BLOCK_CODES:  # listed, then gone: the chain moved
                    return None
                raise
            return block_ref(slot, reply)

        return await self._gather([one(s) for s in numbers])

    async def header_at_or_below(self, slot: int) -> BlockRef:
        """The newest existing (confirmed) block at or below `slot`."""
        hi = slot
        span = 64
        while hi >= 0:
            lo = max(0, hi - span + 1)
            found = await self._blocks(lo, hi)
            if found:
                ref = (await self.headers([found[-1]]))[0]
                if ref is None:
                    raise DataConsistencyError(
                        f"slot {found[-1]} listed by getBlocks has no block (chain moved)"
                    )
                return ref
            hi = lo - 1
            span = min(span * 4, MAX_GET_BLOCKS_RANGE)
        raise RpcError(f"{self.name}: no block at or below slot {slot}")

    def families(self) -> frozenset[Family]:
        """The families this chain decodes (transfers always; controls unless turned off)."""
        return frozenset({Family.TRANSFERS, Family.CONTROLS} if self.config.controls else {Family.TRANSFERS})

    def _wanted(self, families: Iterable[Family] | None) -> tuple[bool, bool]:
        have = self.families()
        want = have if families is None else frozenset(families)
        if not want or not want <= have:
            raise ValueError(f"{self.name}: Solana decodes families {sorted(have)}, not {sorted(want)}")
        return Family.TRANSFERS in want, Family.CONTROLS in want

    async def fetch_range(
        self, start: int, end: int, *, with_headers: bool, families: Iterable[Family] | None = None
    ) -> RangeData:
        """Events of [start, end] (clamped to the confirmed slot; `RangeData.end` says how far the
        range was read). `end_ref` is the last existing block read, or the newest block below the
        range when it has none; the cursor belongs there, never past a slot not read. `families`
        (default: every family the chain decodes) says which records to return."""
        transfers, controls = self._wanted(families)
        if end < start:
            raise ValueError(f"empty range [{start}, {end}]")
        if self._signatures is not None and not with_headers and end <= await self._slot("finalized"):
            return await self._signatures.fetch(start, end, transfers=transfers, controls=controls)
        tip = await self.head()
        eff_end = min(end, tip)
        slots = await self._blocks(start, eff_end) if start <= eff_end else []
        replies = await self._gather([self._full_block(s, transfers, controls) for s in slots])
        refs: list[BlockRef] = []
        events: list[TokenEvent] = []
        control_events: list[ControlEvent] = []
        unattributed = 0
        for s, (parsed, parent) in zip(slots, replies, strict=True):
            ref = parsed.ref
            if refs:
                prev = refs[-1]
                if parent != prev.number or ref.parent_hash != prev.hash:
                    raise DataConsistencyError(
                        f"{self.name}: block {s} (parent {parent}, {ref.parent_hash}) does not follow "
                        f"block {prev.number} ({prev.hash}): the chain moved while the range was read"
                    )
            elif start <= parent < s:
                raise DataConsistencyError(
                    f"{self.name}: block {s} has parent slot {parent} inside the range but getBlocks did not list it"
                )
            refs.append(ref)
            events.extend(parsed.events)
            control_events.extend(parsed.controls)
            unattributed += parsed.unattributed
        if unattributed:
            self._log.warning("solana_unattributed_transfers", count=unattributed, start=start, end=eff_end)
        end_ref = refs[-1] if refs else await self.header_at_or_below(min(eff_end, start - 1))
        # What the range continues: its first block's parent slot and blockhash, or (no block in
        # the range) the newest block below it.
        follows = (replies[0][1], refs[0].parent_hash) if refs else (end_ref.number, end_ref.hash)
        return RangeData(
            start=start,
            end=eff_end,
            events=tuple(events),
            headers=tuple(refs) if with_headers else (),
            end_ref=end_ref,
            controls=tuple(control_events),
            follows=follows,
        )

    async def _full_block(self, slot: int, transfers: bool, controls: bool) -> tuple[ParsedBlock, int]:
        try:
            reply = await self._get_block(slot, full=True)
        except MalformedReply:
            raise
        except RpcError as exc:
            if rpc_error_code(exc) in NO_BLOCK_CODES:
                raise DataConsistencyError(
                    f"{self.name}: slot {slot} listed by getBlocks has no block now (chain moved): {exc}"
                ) from None
            raise
        parsed = parse_block_families(
            self.name, self.mint, slot, reply, transfers=transfers, controls=controls
        )
        return parsed, parent_slot(slot, reply)

    async def supply_snapshot(self) -> tuple[int, int]:
        """(slot, supply in base units) at the configured commitment."""
        commitment = self.config.finality.commitment
        reply = await self._call("getTokenSupply", [self.mint, {"commitment": commitment}])
        slot, amount, decimals = _token_amount(reply, "getTokenSupply")
        if decimals != self.decimals:
            raise DataConsistencyError(
                f"{self.name}: mint {self.mint} has {decimals} decimals, the config says {self.decimals}"
            )
        return slot, amount

    async def balance_snapshot(self, address: str, block: BlockRef) -> tuple[int, int] | None:
        """(slot, amount) of token account `address` at the configured commitment's current
        slot (`getTokenAccountBalance`). Solana has no historical reads: `block` is not used and
        callers compare at the returned slot. None when the node says it is not a token account
        (closed, or not yet at that commitment)."""
        commitment = self.config.finality.commitment
        try:
            reply = await self._call("getTokenAccountBalance", [address, {"commitment": commitment}])
        except RpcError as exc:
            if rpc_error_code(exc) == INVALID_PARAMS:
                return None
            raise
        slot, amount, _ = _token_amount(reply, "getTokenAccountBalance")
        return slot, amount

    async def accounts(self, keys: Sequence[str]) -> tuple[int, list[bytes | None]]:
        """(slot, data of each account or None when it does not exist) at the configured
        commitment: one `getMultipleAccounts` (base64) per 100 keys, all at one slot (a node that
        answers the parts at different slots raises, to be retried at the next check)."""
        commitment = self.config.finality.commitment
        slot: int | None = None
        out: list[bytes | None] = []
        for i in range(0, len(keys), MAX_MULTIPLE_ACCOUNTS):
            part = list(keys[i : i + MAX_MULTIPLE_ACCOUNTS])
            reply = await self._call(
                "getMultipleAccounts", [part, {"commitment": commitment, "encoding": "base64"}]
            )
            if not isinstance(reply, dict) or not isinstance(reply.get("context"), dict):
                raise MalformedReply(f"getMultipleAccounts result lacks context: {reply!r:.120}")
            at = _int(reply["context"].get("slot"), "getMultipleAccounts context.slot")
            if slot is not None and at != slot:
                raise RpcError(f"getMultipleAccounts answered at slots {slot} and {at}", retryable=True)
            slot = at
            values = reply.get("value")
            if not isinstance(values, list) or len(values) != len(part):
                raise MalformedReply(f"getMultipleAccounts returned {values!r:.80} for {len(part)} keys")
            for key, v in zip(part, values, strict=True):
                out.append(None if v is None else _account_data(v, key))
        if slot is None:
            raise ValueError("accounts() needs at least one key")
        return slot, out

    async def total_supply(self, block: BlockRef) -> int:
        slot, amount = await self.supply_snapshot()
        if slot != block.number:
            raise SupplySlotMismatch(block.number, slot, amount)
        return amount
