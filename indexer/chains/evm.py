"""EVM chain source: the logs of one ERC-20 and its watched contracts via eth_getLogs with
adaptive ranges (one request per range for every event family: `address: [...]`,
`topics: [[...]]`, see `evm_families`), block headers, finality by tag or confirmations, state
reads at a block (totalSupply, the control getters and proxy slots). The chain's quirks are its
`dialect` (`dialects.py`).

Transport is the endpoint pool in `rpc.py` (aiohttp + orjson, batched requests); logs are decoded
by slicing (`evm_decode`), not per-log ABI objects, large replies in a worker process
(`decode_pool`).

Contradictions are faults of an endpoint, never data (`Contradiction`, the endpoint penalized, the
read retried avoiding it):

- Finalized hashes are sticky: a header at or below the finalized height whose hash differs from
  the one seen before (or, when first seen and several endpoints exist, from another endpoint's)
  is settled by asking every endpoint what it says now (`witness`). A hash a quorum confirmed
  when first seen (or the only endpoint's) that a quorum no longer upholds is a finality
  violation (`indexer.quorum.judge`: one endpoint, or a majority on the new hash, or a tie):
  `FinalityViolation`, naming what each endpoint said. A minority that disagrees is an endpoint
  fault (penalized). A hash first seen from one of several endpoints without a cross-check is
  replaced when a majority says otherwise (its endpoint penalized); without a majority nothing is
  trusted. So one lying endpoint among three or more can neither halt the chain nor slip a block
  in; the follower's own link checks against the stored chain back this up after a restart.
- Logs bloom, positive (live and backfill, when the dialect trusts blooms): every returned log's
  address and topics must be in its block's `logsBloom` (a bloom has no false negatives), and the
  log's block hash must be the header's (always). Headers of every block with logs are fetched in
  both modes for this (batched).
- Logs bloom, negative (live mode, where every header is fetched anyway): a block whose bloom may
  hold a log the filter asks for (any of its addresses and topic0s) but for which no log came back
  is re-read by block hash on another endpoint (bloom false positives are common on busy chains,
  so this is a cross-check, not a verdict); logs there mean the first endpoint dropped them.
- A log the filter did not ask for is the endpoint's fault (blamed, read again elsewhere). Backfill does not fetch headers of
  blocks without events, so it cannot run this check; the supply reconciliation at the finalized
  block (follower) is the backstop for logs omitted below finality.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import operator
import re
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import structlog

from indexer.chains.bloom import (
    bloom_text,
    emitter_in_bloom,
    filter_masks,
    mark_in_bloom,
    may_match_filter,
    parse_bloom,
    transfer_in_bloom_text,
)
from indexer.chains.decode_pool import DecodedLogs, DecodePool, decode_reply
from indexer.chains.evm_families import Decoded, LogDispatch, SupplyClaim, UnaskedLog, decode_logs
from indexer.chains.ranges import HEADER_BATCH, AdaptiveRange
from indexer.chains.receipts import OtherBlock, asked_logs
from indexer.chains.rpc import RpcPool
from indexer.chains.witness import collect_votes
from indexer.config import EvmChainConfig
from indexer.errors import DataConsistencyError, FinalityViolation, MalformedReply, RpcError
from indexer.finality import evm_finalized_height
from indexer.latest import LatestReads
from indexer.model import BlockRef, ControlEvent, Family, RangeData, TokenEvent
from indexer.quorum import Overturned, Undecided, Upheld, describe, judge, quorum

log = structlog.get_logger(__name__)

TOTAL_SUPPLY_SELECTOR = "0x18160ddd"
BALANCE_OF_SELECTOR = "0x70a08231"
OWNER_SELECTOR = "0x8da5cb5b"  # owner()
FINAL_HASH_CACHE = 20_000  # finalized (number -> hash) remembered per chain
_QUANTITY_RE = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_EVENT_TIMESTAMP = operator.attrgetter("timestamp")
_T = TypeVar("_T")


class Contradiction(RpcError):
    """A reply contradicts another endpoint or the chain's own commitments; `blamed` names the
    endpoint(s) at fault (already penalized in the pool). Retryable: read again elsewhere."""

    def __init__(self, message: str, blamed: frozenset[str]) -> None:
        self.blamed = blamed
        super().__init__(message, retryable=True)


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not _QUANTITY_RE.match(value):
        raise MalformedReply(f"block header {what} is not a hex quantity: {value!r:.80}")
    return int(value, 16)


def _hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HASH_RE.match(value):
        raise MalformedReply(f"block header {what} is not a 32-byte hash: {value!r:.80}")
    return value.lower()


def _head_number(value: Any) -> int:
    if not isinstance(value, str) or not _QUANTITY_RE.match(value):
        raise MalformedReply(f"eth_blockNumber returned {value!r:.80}")
    return int(value, 16)


def parse_header(raw: Any) -> BlockRef | None:
    """A `eth_getBlockByNumber` result -> BlockRef (None for a null result)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedReply(f"block header is not an object: {raw!r:.100}")
    return BlockRef(
        number=_quantity(raw.get("number"), "number"),
        hash=_hash(raw.get("hash"), "hash"),
        parent_hash=_hash(raw.get("parentHash"), "parentHash"),
        timestamp=_quantity(raw.get("timestamp"), "timestamp"),
    )


def parse_header_bloom(raw: Any) -> tuple[BlockRef | None, int | None]:
    """`parse_header` plus the block's logs bloom (None when the reply has none)."""
    ref = parse_header(raw)
    if ref is None:
        return None, None
    bloom = raw.get("logsBloom")
    return ref, None if bloom is None else parse_bloom(bloom)


def _controls_with_timestamps(
    controls: list[ControlEvent], by_number: dict[int, _Header]
) -> list[ControlEvent]:
    return [
        c if c.timestamp else dataclasses.replace(c, timestamp=by_number[c.block_number].ref.timestamp)
        for c in controls
    ]


def _hex_word(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise MalformedReply(f"{what} returned {value!r:.80}, expected one 32-byte word")
    try:
        return int(value, 16)
    except ValueError:
        raise MalformedReply(f"{what} returned {value!r:.80}, not hex") from None


@dataclass
class _Header:
    ref: BlockRef
    bloom: int | None
    endpoint: str


@dataclass(frozen=True, slots=True)
class _Final:
    hash: str
    endpoint: str
    verified: bool  # a quorum agreed when first seen (always, with one endpoint)


@dataclass
class EvmSource:
    cfg: EvmChainConfig
    rpc: RpcPool
    ranges: AdaptiveRange = field(init=False)
    contradictions: int = field(init=False, default=0)
    _final: OrderedDict[int, _Final] = field(init=False, default_factory=OrderedDict)
    _fin_seen: int = field(init=False, default=-1)
    _via: dict[str, EvmSource] = field(init=False, default_factory=dict)
    # Parses and decodes large eth_getLogs replies in a worker process (None: in this process).
    decoder: DecodePool | None = None
    dispatch: LogDispatch = field(init=False)  # every family of the chain
    skipped_logs: int = field(init=False, default=0)  # cross-product logs no family decodes
    _dispatches: dict[frozenset[Family], LogDispatch] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.ranges = AdaptiveRange(self.cfg.max_block_range)
        self.dispatch = self.cfg.log_dispatch()
        self.dialect = self.cfg.evm_dialect

    def dispatch_for(self, families: Iterable[Family] | None) -> LogDispatch:
        """The chain's dispatch, or the part of it that records `families`."""
        if families is None:
            return self.dispatch
        key = frozenset(families)
        d = self._dispatches.get(key)
        if d is None:
            d = self._dispatches[key] = self.dispatch.only(key)
        return d

    @property
    def name(self) -> str:
        return self.cfg.name

    def endpoints(self) -> list[str]:
        return self.rpc.labels()

    def throttled(self) -> bool:
        return self.rpc.throttled()

    def via(self, label: str) -> EvmSource:
        """This source reading through endpoint `label` only (no failover, no memory of
        finalized hashes, decoding in-process): cross-checks and audits."""
        src = self._via.get(label)
        if src is None:
            src = self._via[label] = EvmSource(self.cfg, self.rpc.pinned(label))
        return src

    def penalize(self, label: str, reason: str) -> None:
        self.contradictions += 1
        self.rpc.penalize(label, reason)

    @property
    def decimals(self) -> int:
        return self.cfg.decimals

    async def head(self) -> int:
        return _head_number(await self.rpc.call("eth_blockNumber", []))

    async def finalized(self, head: int) -> int:
        return await self._retrying(lambda avoid: self._finalized_once(head, avoid))

    async def tips(self) -> tuple[int, int]:
        """(head, finalized) in one round trip: with a finality tag, one batch asks for both."""
        return await self._retrying(self._tips_once)

    async def _retrying(self, once: Callable[[frozenset[str]], Awaitable[_T]]) -> _T:
        """`once`, retried avoiding the endpoints a contradiction blamed (once per endpoint)."""
        avoid: frozenset[str] = frozenset()
        for _ in range(len(self.rpc.endpoints)):
            try:
                return await once(avoid)
            except Contradiction as exc:
                avoid = avoid | exc.blamed
        return await once(avoid)

    async def _finalized_once(self, head: int, avoid: frozenset[str]) -> int:
        tag = self.cfg.finality.tag
        if tag is None:
            return await self._finality(head, None, "")
        reply = await self.rpc.call_ex("eth_getBlockByNumber", [tag, False], avoid=avoid)
        return await self._finality(head, reply.result, reply.endpoint)

    async def _tips_once(self, avoid: frozenset[str]) -> tuple[int, int]:
        tag = self.cfg.finality.tag
        if tag is None:  # by confirmations: the head is all there is to read
            head = await self.head()
            return head, await self._finalized_once(head, avoid)
        reply = await self.rpc.batch_ex(
            [("eth_blockNumber", []), ("eth_getBlockByNumber", [tag, False])], avoid=avoid
        )
        if not isinstance(reply.result, list) or len(reply.result) != 2:
            raise MalformedReply(f"batch of eth_blockNumber and the {tag} header got {reply.result!r:.80}")
        head = _head_number(reply.result[0])
        return head, await self._finality(head, reply.result[1], reply.endpoint)

    async def _finality(self, head: int, tagged_raw: Any, endpoint: str) -> int:
        """The finalized height under the rule, from `head` and the tag's header as `endpoint`
        returned it (None without a tag, or while the node has no such block)."""
        ref = parse_header(tagged_raw)
        tagged: int | None = None
        if ref is not None:
            tagged = ref.number
            self._fin_seen = max(self._fin_seen, min(ref.number, head))
            await self._check_final([_Header(ref, None, endpoint)], verify=(ref.number,))
        fin = evm_finalized_height(self.cfg.finality, head, tagged)
        self._fin_seen = max(self._fin_seen, fin)
        return fin

    # ---- headers -----------------------------------------------------------------------------

    async def headers(self, numbers: Sequence[int]) -> list[BlockRef | None]:
        avoid: frozenset[str] = frozenset()
        for _ in range(len(self.rpc.endpoints)):
            try:
                got = await self._headers(numbers, avoid=avoid, verify=numbers)
                return [h.ref if h is not None else None for h in got]
            except Contradiction as exc:
                avoid = avoid | exc.blamed
        got = await self._headers(numbers, avoid=avoid, verify=numbers)
        return [h.ref if h is not None else None for h in got]

    async def _headers(
        self,
        numbers: Sequence[int],
        *,
        prefer: str | None = None,
        avoid: frozenset[str] = frozenset(),
        verify: Collection[int] = (),
    ) -> list[_Header | None]:
        out: list[_Header | None] = []
        for i in range(0, len(numbers), HEADER_BATCH):
            chunk = numbers[i : i + HEADER_BATCH]
            reply = await self.rpc.batch_ex(
                [("eth_getBlockByNumber", [hex(n), False]) for n in chunk], prefer=prefer, avoid=avoid
            )
            if not isinstance(reply.result, list) or len(reply.result) != len(chunk):
                raise MalformedReply(f"header batch of {len(chunk)} got {reply.result!r:.80}")
            for n, raw in zip(chunk, reply.result, strict=True):
                try:
                    ref, bloom = parse_header_bloom(raw)
                except MalformedReply as exc:
                    self._blame({reply.endpoint}, f"block {n}: {exc}")
                if ref is not None and ref.number != n:
                    self._blame({reply.endpoint}, f"asked for block {n}, got block {ref.number}")
                if ref is not None and self.dialect.timestamp_ms:
                    ref = dataclasses.replace(ref, timestamp=self.dialect.seconds(ref.timestamp))
                out.append(None if ref is None else _Header(ref, bloom, reply.endpoint))
        await self._check_final([h for h in out if h is not None], verify)
        return out

    def _blame(self, endpoints: set[str] | frozenset[str], reason: str) -> NoReturn:
        """Penalize and raise Contradiction (never returns)."""
        self.contradictions += 1
        for ep in endpoints:
            self.rpc.penalize(ep, reason)
        raise Contradiction(
            f"{self.name}: {reason} (blamed: {', '.join(sorted(endpoints))})", frozenset(endpoints)
        )

    async def _check_final(self, hdrs: Sequence[_Header], verify: Collection[int] = ()) -> None:
        """Finalized hashes are sticky across endpoints; see the module docstring. Heights in
        `verify` are cross-checked with the other endpoints when first seen (the finalized tag,
        a backfill range's end that becomes the cursor, headers the follower asks for); other
        first sightings are remembered and checked against every later reply."""
        limit = self._fin_seen
        single = len(self.rpc.endpoints) == 1
        for h in hdrs:
            n = h.ref.number
            if n > limit:
                continue
            known = self._final.get(n)
            if known is not None and known.hash == h.ref.hash:
                self._final.move_to_end(n)
                continue
            if known is None and (single or n not in verify):
                self._remember(n, _Final(h.ref.hash, h.endpoint, verified=single))
                continue
            await self._settle(n, h, known)

    def _remember(self, n: int, final: _Final) -> None:
        self._final[n] = final
        self._final.move_to_end(n)
        while len(self._final) > FINAL_HASH_CACHE:
            self._final.popitem(last=False)

    async def _settle(self, n: int, h: _Header, known: _Final | None) -> None:
        """Ask every endpoint what block `n` is now and decide (see the module docstring)."""
        votes = await collect_votes(self, n, {h.endpoint: h.ref.hash})
        said = describe(votes)
        endpoints = len(self.rpc.endpoints)
        if known is not None and known.verified:
            match judge(known.hash, votes, endpoints):
                case Upheld(liars=liars):
                    for ep in sorted(liars):
                        self.penalize(
                            ep, f"finalized block {n}: says {votes[ep]}, a quorum says {known.hash} ({said})"
                        )
                    raise Contradiction(
                        f"{self.name}: {h.endpoint} says finalized block {n} is {h.ref.hash}, a quorum"
                        f" of endpoints says {known.hash} ({said})",
                        frozenset(liars),
                    )
                case Overturned(new=new):
                    raise FinalityViolation(
                        self.name,
                        self._fin_seen,
                        n,
                        f"finalized block {n} was {known.hash} (from {known.endpoint}), now: {said}",
                        block=n,
                        stored=known.hash,
                        new=new,
                        votes=votes,
                    )
                case Undecided(reason=reason):
                    raise DataConsistencyError(
                        f"{self.name}: finalized block {n} was {known.hash}, now: {said}; {reason}"
                    )
        # First sighting (or one not cross-checked then): the majority of what endpoints say now.
        ranked = Counter(votes.values()).most_common()
        top, count = ranked[0]
        if top is None or (len(ranked) > 1 and ranked[1][1] == count):
            # No majority and nothing trusted before: nobody can be trusted with this block.
            raise DataConsistencyError(
                f"{self.name}: endpoints disagree on finalized block {n} and no majority exists: {said}"
            )
        winner = h.endpoint if votes[h.endpoint] == top else min(ep for ep, v in votes.items() if v == top)
        self._remember(n, _Final(top, winner, verified=count >= quorum(endpoints)))
        losers = {ep for ep, v in votes.items() if v != top}
        if known is not None and top != known.hash:
            log.error(
                "finalized_hash_replaced_by_majority",
                chain=self.name,
                block=n,
                old=known.hash,
                new=top,
                votes=said,
            )
            losers.add(known.endpoint)
        for ep in sorted(losers):
            self.penalize(ep, f"finalized block {n}: hash differs from the majority ({said})")
        if h.ref.hash != top:
            raise Contradiction(
                f"{self.name}: {h.endpoint} says finalized block {n} is {h.ref.hash}, "
                f"the majority says {top} ({said})",
                frozenset(losers),
            )

    # ---- logs --------------------------------------------------------------------------------

    async def _decode_reply(self, d: LogDispatch, raw: bytes) -> Any:
        if self.decoder is not None:
            return await self.decoder.decode(raw, self.name, d)
        return decode_reply(raw, self.name, d)

    async def _logs(
        self, start: int, end: int, d: LogDispatch, avoid: frozenset[str] = frozenset()
    ) -> tuple[Decoded, list[tuple[int, int, str]], bytes | None]:
        """The logs `d` asks for in [start, end], decoded, splitting ranges a provider refuses;
        also which endpoint answered for which sub-range, and the Transfer events encoded for
        COPY (None unless every sub-range came with its encoding)."""
        got = Decoded()
        served: list[tuple[int, int, str]] = []
        copies: list[bytes] | None = []
        loads = functools.partial(self._decode_reply, d)
        s = start
        while s <= end:
            left = end - s + 1
            # Even requests: 40 blocks at a size of 18 are 14 + 13 + 13, not 18 + 18 + 4.
            step = self.ranges.step(scarce=self.rpc.throttled())
            size = -(-left // -(-left // step))
            e = s + size - 1
            try:
                reply = await self.rpc.call_ex(
                    "eth_getLogs", [d.log_filter(fromBlock=hex(s), toBlock=hex(e))], avoid=avoid, loads=loads
                )
            except RpcError as exc:
                if not exc.range_too_large:
                    raise
                if size == 1:
                    raise RpcError(f"provider refuses eth_getLogs even for one block {s}: {exc}") from None
                new = self.ranges.refused(size, exc.range_hint)
                log.info("logs_range_shrunk", chain=self.name, refused=size, now=new, error=str(exc))
                continue
            part = reply.result
            if not isinstance(part, DecodedLogs):  # the result was not a list of log objects
                self.rpc.penalize(reply.endpoint, "eth_getLogs result is not a list of objects")
                raise MalformedReply(f"eth_getLogs returned {part!r:.80}, expected a list of logs")
            try:
                decoded = part.decoded()
            except UnaskedLog as exc:
                self._blame({reply.endpoint}, f"eth_getLogs [{s}, {e}]: {exc}")
            for ev in decoded.events:
                if not s <= ev.block_number <= e:
                    self._blame(
                        {reply.endpoint}, f"eth_getLogs [{s}, {e}] returned a log of block {ev.block_number}"
                    )
            for m in decoded.marks:
                if not s <= m.block_number <= e:
                    self._blame(
                        {reply.endpoint}, f"eth_getLogs [{s}, {e}] returned a log of block {m.block_number}"
                    )
            got.extend(decoded)
            if part.copy is None:
                copies = None
            elif copies is not None:
                copies.append(part.copy)
            served.append((s, e, reply.endpoint))
            self.ranges.succeeded(size, len(decoded.events) + len(decoded.marks) + decoded.skipped)
            s = e + 1
        if got.skipped:
            self.skipped_logs += got.skipped
            log.debug("logs_skipped", chain=self.name, start=start, end=end, skipped=got.skipped)
        return got, served, None if copies is None else b"".join(copies)

    async def fetch_range(
        self, start: int, end: int, *, with_headers: bool, families: Iterable[Family] | None = None
    ) -> RangeData:
        """See `ChainSource.fetch_range`; a contradiction is retried avoiding the blamed
        endpoints (once per endpoint), then raised (the follower backs off and retries)."""
        d = self.dispatch_for(families)
        if d.empty:
            raise ValueError(f"{self.name}: no event of families {sorted(families or ())} is configured")
        avoid: frozenset[str] = frozenset()
        last: Contradiction | None = None
        for _ in range(len(self.rpc.endpoints) + 1):
            try:
                return await self._fetch_range_once(start, end, with_headers, avoid, d)
            except Contradiction as exc:
                last = exc
                avoid = avoid | exc.blamed
                if avoid >= set(self.rpc.labels()):
                    avoid = exc.blamed
        assert last is not None
        raise last

    async def _fetch_range_once(
        self, start: int, end: int, with_headers: bool, avoid: frozenset[str], d: LogDispatch
    ) -> RangeData:
        if with_headers:
            # Every height's header is wanted, whatever the logs hold: read both at once (the
            # head-following path, where each round trip is latency).
            numbers = list(range(start, end + 1))
            logs = asyncio.ensure_future(self._logs(start, end, d, avoid))
            try:
                got = await self._headers(numbers, avoid=avoid, verify=(end,))
            except BaseException:
                logs.cancel()
                await asyncio.gather(logs, return_exceptions=True)
                raise
            decoded, served, copy_rows = await logs
            log_blocks = decoded.blocks()
        else:
            decoded, served, copy_rows = await self._logs(start, end, d, avoid)
            log_blocks = decoded.blocks()
            numbers = sorted(log_blocks | {start, end})  # start: it must follow the cursor
            main = served[0][2] if len(served) == 1 else None
            got = await self._headers(numbers, prefer=main, avoid=avoid, verify=(end,))

        def log_endpoint(n: int) -> str:
            return next((ep for s, e, ep in served if s <= n <= e), served[-1][2])

        by_number: dict[int, _Header] = {}
        for n, h in zip(numbers, got, strict=True):
            if h is None:
                raise DataConsistencyError(f"{self.name}: block {n} is missing (the head moved back?)")
            by_number[n] = h
        blooms = self.dialect.trust_blooms
        final = self._fin_seen
        token = self.cfg.token.lower()
        texts: dict[int, bytes] = {}  # each block's bloom as text, once it passed the emitter check
        for ev in decoded.events:
            n = ev.block_number
            h = by_number[n]
            if h.ref.hash != ev.block_hash:
                self._wrong_block(n, ev.block_hash, h, final, log_endpoint)
            if h.bloom is None or not blooms:
                continue
            text = texts.get(n)
            if text is None:
                text = texts[n] = bloom_text(h.bloom)
                in_bloom = emitter_in_bloom(text, token)
            else:
                in_bloom = True
            assert ev.from_addr is not None and ev.to_addr is not None
            if not (in_bloom and transfer_in_bloom_text(text, ev.from_addr, ev.to_addr)):
                self._not_in_bloom(n, f"{ev.tx_hash}#{ev.log_index}", h, log_endpoint)
        for m in decoded.marks:  # the other families' logs: rare, checked item by item
            h = by_number[m.block_number]
            if h.ref.hash != m.block_hash:
                self._wrong_block(m.block_number, m.block_hash, h, final, log_endpoint)
            if blooms and h.bloom is not None and not mark_in_bloom(h.bloom, m.address, m.topics):
                self._not_in_bloom(m.block_number, f"{m.tx_hash}#{m.log_index}", h, log_endpoint)
        if with_headers and blooms:
            await self._check_missing_logs(by_number, log_blocks, log_endpoint, d)
        if with_headers and self.dialect.receipts_check:
            await self._check_receipts(by_number, decoded, log_endpoint, d)
        events: list[TokenEvent] = decoded.events
        if decoded.supply or decoded.claims:
            events = events + decoded.supply + await self._resolve_claims(decoded.claims, by_number)
            copy_rows = None
        return RangeData(
            start,
            end,
            tuple(self._with_timestamps(events, by_number)),
            tuple(by_number[n].ref for n in range(start, end + 1)) if with_headers else (),
            by_number[end].ref,
            copy_rows if events is decoded.events and not self.dialect.timestamp_ms else None,
            tuple(_controls_with_timestamps(decoded.controls, by_number)),
            follows=(start - 1, by_number[start].ref.parent_hash),
        )

    def _wrong_block(
        self, n: int, block_hash: str, h: _Header, final: int, log_endpoint: Callable[[int], str]
    ) -> NoReturn:
        if n <= final:
            self._blame(
                {log_endpoint(n)},
                f"log of finalized block {n} has hash {block_hash}, the header ({h.endpoint}) has {h.ref.hash}",
            )
        raise DataConsistencyError(
            f"{self.name}: log of block {n} has hash {block_hash}, "
            f"the canonical header has {h.ref.hash} (reorg while reading)"
        )

    def _not_in_bloom(self, n: int, what: str, h: _Header, log_endpoint: Callable[[int], str]) -> NoReturn:
        self._blame(
            {log_endpoint(n)}, f"log {what} is not in block {n}'s logs bloom (header from {h.endpoint})"
        )

    async def _check_missing_logs(
        self,
        by_number: dict[int, _Header],
        log_blocks: set[int],
        log_endpoint: Callable[[int], str],
        d: LogDispatch,
    ) -> None:
        """Blocks whose bloom may hold a log the filter asks for but that came back without logs:
        re-read them by hash on another endpoint."""
        masks = filter_masks(d.addresses, d.topics)
        suspects = [
            h
            for n, h in by_number.items()
            if n not in log_blocks and h.bloom is not None and may_match_filter(h.bloom, masks)
        ]
        if not suspects:
            return
        for i in range(0, len(suspects), HEADER_BATCH):
            chunk = suspects[i : i + HEADER_BATCH]
            first = log_endpoint(chunk[0].ref.number)
            calls = [("eth_getLogs", [d.log_filter(blockHash=h.ref.hash)]) for h in chunk]
            try:
                reply = await self.rpc.batch_ex(calls, avoid={first})
            except RpcError as exc:
                if exc.code == -32000 and "not found" in str(exc).lower():
                    raise DataConsistencyError(
                        f"{self.name}: block vanished while checking its logs"
                    ) from None
                raise
            for h, part in zip(chunk, reply.result, strict=True):
                if not isinstance(part, list):
                    continue
                found = decode_logs(self.name, part, d)
                if found.has_logs_of(h.ref.hash):
                    lep = log_endpoint(h.ref.number)
                    if lep == reply.endpoint:
                        raise DataConsistencyError(
                            f"{self.name}: {lep} now returns logs for block {h.ref.number} it omitted"
                        )
                    self._blame(
                        {lep},
                        f"block {h.ref.number}: no logs returned, {reply.endpoint} has "
                        f"{len(found.events) + len(found.marks)} (bloom says they may exist)",
                    )

    async def _check_receipts(
        self,
        by_number: dict[int, _Header],
        decoded: Decoded,
        log_endpoint: Callable[[int], str],
        d: LogDispatch,
    ) -> None:
        """Chains without blooms (Tron): each block's receipts hold as many logs of the filter as
        eth_getLogs returned for it (indexer.chains.receipts), read from another endpoint when
        there is one. More in the receipts: the log endpoint omitted some (blamed); fewer: one of
        the two is wrong (both blamed); on one endpoint, a DataConsistencyError (retried)."""
        counts = Counter(e.block_number for e in decoded.events)
        counts.update(m.block_number for m in decoded.marks)
        headers = [by_number[n] for n in sorted(by_number)]
        for i in range(0, len(headers), HEADER_BATCH):
            chunk = headers[i : i + HEADER_BATCH]
            first = log_endpoint(chunk[0].ref.number)
            calls = [("eth_getBlockReceipts", [hex(h.ref.number)]) for h in chunk]
            reply = await self.rpc.batch_ex(calls, avoid={first})
            for h, part in zip(chunk, reply.result, strict=True):
                n = h.ref.number
                if part is None:
                    raise DataConsistencyError(f"{self.name}: block {n} vanished while checking its receipts")
                try:
                    logs = asked_logs(part, h.ref.hash, d.addresses, d.topics)
                except OtherBlock as exc:
                    raise DataConsistencyError(
                        f"{self.name}: block {n}: {exc} (reorg while reading)"
                    ) from None
                found = decode_logs(self.name, logs, d)
                have, want = counts.get(n, 0), len(found.events) + len(found.marks)
                if have == want:
                    continue
                lep = log_endpoint(n)
                what = f"block {n}: eth_getLogs ({lep}) returned {have} logs, the receipts ({reply.endpoint}) hold {want}"
                if lep == reply.endpoint:
                    raise DataConsistencyError(f"{self.name}: {what}")
                self._blame({lep} if want > have else {lep, reply.endpoint}, what)

    def _with_timestamps(self, events: list[TokenEvent], by_number: dict[int, _Header]) -> list[TokenEvent]:
        if all(map(_EVENT_TIMESTAMP, events)) and not self.dialect.timestamp_ms:
            return events  # the logs carried blockTimestamp: nothing to fill
        fixed: list[TokenEvent] = []
        for ev in events:
            h = by_number.get(ev.block_number)
            if (not ev.timestamp or self.dialect.timestamp_ms) and h is not None:
                ev = TokenEvent(
                    ev.chain,
                    ev.block_number,
                    ev.block_hash,
                    ev.tx_hash,
                    ev.log_index,
                    ev.kind,
                    ev.from_addr,
                    ev.to_addr,
                    ev.amount,
                    h.ref.timestamp,
                )
            fixed.append(ev)
        return fixed

    async def _resolve_claims(
        self, claims: list[SupplyClaim], by_number: dict[int, _Header]
    ) -> list[TokenEvent]:
        """Tether `Issue`/`Redeem` credit and debit `balances[owner]` (both `onlyOwner`): the owner
        at that block is read with `owner()` by block hash after the block and before it (at its
        parent). Equal: exact. Different (the block changed the owner; Tether logs no event for
        that): the transaction says who called, exactly when it called the token directly
        (msg.sender is its sender); otherwise the claim cannot be resolved without a trace."""
        owners: dict[int, str] = {}
        out = []
        for c in claims:
            ref = by_number[c.block_number].ref
            owner = owners.get(ref.number)
            if owner is None:
                owner = owners[ref.number] = await self._owner_of_claim(c, ref)
            out.append(c.resolve(owner))
        return out

    async def _owner_of_claim(self, c: SupplyClaim, ref: BlockRef) -> str:
        parent = BlockRef(ref.number - 1, ref.parent_hash, "")
        after, before = await asyncio.gather(
            self._call_address(OWNER_SELECTOR, ref), self._call_address(OWNER_SELECTOR, parent)
        )
        if after is None or before is None:
            raise DataConsistencyError(
                f"{self.name}: cannot resolve the owner credited by {c.tx_hash}#{c.log_index}: "
                f"dialect {self.dialect.name} reads no past state"
            )
        if after == before:
            return after
        tx = await self.rpc.call("eth_getTransactionByHash", [c.tx_hash])
        if (
            isinstance(tx, dict)
            and str(tx.get("to", "")).lower() == c.address
            and isinstance(tx.get("from"), str)
        ):
            sender = str(tx["from"]).lower()
            if sender in (after, before):
                return sender
        raise DataConsistencyError(
            f"{self.name}: the owner changed in block {ref.number} ({before} -> {after}) and "
            f"{c.tx_hash} did not call the token directly: cannot tell whom its "
            f"{'Issue' if c.kind == 'mint' else 'Redeem'} credited"
        )

    # ---- state reads -------------------------------------------------------------------------

    async def call_at(self, to: str, data: str, block: BlockRef) -> str | None:
        """`eth_call` at `block` (by the dialect's block selector); None when the dialect reads no
        past state. Raises RpcError (a revert: code 3)."""
        at = self.dialect.state_block(block)
        if at is None:
            return None
        result = await self.rpc.call("eth_call", [{"to": to, "data": data}, at])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise MalformedReply(f"eth_call {data[:10]} returned {result!r:.80}")
        return result

    async def storage_at(self, address: str, slot: str, block: BlockRef) -> int | None:
        at = self.dialect.state_block(block)
        if at is None:
            return None
        return _hex_word(await self.rpc.call("eth_getStorageAt", [address, slot, at]), "eth_getStorageAt")

    async def code_size(self, address: str, block: BlockRef) -> int | None:
        at = self.dialect.state_block(block)
        if at is None:
            return None
        code = await self.rpc.call("eth_getCode", [address, at])
        if not isinstance(code, str) or not code.startswith("0x") or len(code) % 2:
            raise MalformedReply(f"eth_getCode returned {code!r:.80}")
        return (len(code) - 2) // 2

    async def _call_word(self, data: str, block: BlockRef, to: str | None = None) -> int:
        result = await self.call_at(to or self.cfg.token, data, block)
        if result is None:
            raise RpcError(f"{self.name}: dialect {self.dialect.name} reads no past state", retryable=False)
        if result == "0x":
            return 0  # no contract code at that block yet (before the token's deployment)
        return _hex_word(result, f"eth_call {data[:10]}")

    async def _call_address(self, data: str, block: BlockRef, to: str | None = None) -> str | None:
        result = await self.call_at(to or self.cfg.token, data, block)
        if result is None:
            return None
        if result == "0x":  # no code at that block (e.g. the parent of the deployment block)
            return "0x" + "0" * 40
        return "0x" + format(_hex_word(result, f"eth_call {data[:10]}") & (2**160 - 1), "040x")

    async def total_supply(self, block: BlockRef) -> int:
        return await self._call_word(TOTAL_SUPPLY_SELECTOR, block)

    @property
    def latest_only(self) -> bool:
        """Whether the node reads state at `latest` only (Tron): the checks use `latest_reads`."""
        return self.dialect.state_at == "latest"

    async def latest_reads(self, reads: Sequence[tuple[str, list[Any]]]) -> LatestReads:
        """State reads at `latest` (each `(method, params)` gets the `latest` tag appended) in one
        batch to one endpoint, bracketed by the latest header before and after (indexer.latest).
        Raises RpcError when the batch fails (a revert fails it whole)."""
        latest = ("eth_getBlockByNumber", ["latest", False])
        calls = [latest, *((m, [*params, "latest"]) for m, params in reads), latest]
        reply = await self.rpc.batch_ex(calls)
        results: list[Any] = reply.result
        if len(results) != len(calls):
            raise MalformedReply(f"a batch of {len(calls)} calls returned {len(results)} results")
        return LatestReads(parse_header(results[0]), parse_header(results[-1]), results[1:-1], reply.endpoint)

    async def latest_supply(self) -> tuple[LatestReads, int]:
        """`totalSupply()` at `latest`, bracketed by headers (the Tron supply check)."""
        r = await self.latest_reads([("eth_call", [{"to": self.cfg.token, "data": TOTAL_SUPPLY_SELECTOR}])])
        result = r.results[0]
        if not isinstance(result, str) or not result.startswith("0x"):
            raise MalformedReply(f"eth_call totalSupply returned {result!r:.80}")
        return r, 0 if result == "0x" else _hex_word(result, "eth_call totalSupply")

    async def balance_of(self, address: str, block: BlockRef) -> int:
        return await self._call_word(
            BALANCE_OF_SELECTOR + address.lower().removeprefix("0x").rjust(64, "0"), block
        )

    async def balance_snapshot(self, address: str, block: BlockRef) -> tuple[int, int] | None:
        """(height, balance) of `address`: `balanceOf` at `block` itself (by hash)."""
        return block.number, await self.balance_of(address, block)

    async def close(self) -> None:
        return None
