"""On-chain proof of reserve (issue #16 item 5, README "Proof-of-reserve feed").

A Chainlink-style reserves feed (`reserves.oracle: {chain, address}`, AggregatorV3Interface) is
read every `interval` with `latestRoundData()` and `decimals()` on a configured EVM chain, at its
finalized block (a dialect without past state, tron: at `latest`). Exported:

- `usd1_reserves_oracle_usd`: the answer scaled by the feed's decimals (exact in the API);
- `usd1_reserves_oracle_updated_timestamp_seconds`: the round's `updatedAt`;
- `usd1_reserves_oracle_up`: 1 when the last read gave a valid round;
- `usd1_reserves_oracle_vs_attestation_ratio`: oracle / attested reserves (the attestation in force);
- `usd1_reserves_oracle_coverage`: oracle / circulating supply at the finalized blocks;
- `usd1_reserves_oracle_max_age_seconds`: the configured `max_age` (0: no feed configured), for
  the staleness alert.

A bad reply (a revert, a reply of the wrong length, an answer <= 0, `updatedAt` 0 or in the
future, `answeredInRound < roundId`, decimals above 36) sets `up` 0 and is logged once per outage;
the last good round stays in force (its age keeps growing). A round older than `max_age` is valid
but stale: logged once, shown as `stale` in the API and paged on by USD1ReservesOracleStale.

The decoding and the checks are pure (`decode_round`, `decode_decimals`, `check_round`); the
service takes its reads (`FeedReader`), the attested reserves and the circulating supply as
callables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from indexer.config import OracleConfig
from indexer.errors import IndexerError, RpcError
from indexer.metrics import Metrics
from indexer.reserves import TotalSupply, _iso, _ratio_str
from indexer.units import to_decimal_str

if TYPE_CHECKING:
    from indexer.chains.evm import EvmSource

# keccak256 selectors of the AggregatorV3Interface reads
LATEST_ROUND_DATA = "0xfeaf968c"  # latestRoundData()
DECIMALS = "0x313ce567"  # decimals()
_ROUND_TYPES = ("uint80", "int256", "uint256", "uint256", "uint80")
MAX_DECIMALS = 36
FUTURE_SLACK = 300  # seconds a round's updatedAt may lead our clock (node and host clocks differ)


class OracleError(Exception):
    """A feed reply that is not a valid round (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class Round:
    """One `latestRoundData()` reply."""

    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


@dataclass(frozen=True, slots=True)
class Reading:
    """A valid round with the feed's decimals and where it was read."""

    round: Round
    decimals: int
    block: int | None  # the finalized height read at (tron: the latest); None: unknown
    read_at: float

    @property
    def value(self) -> Fraction:
        """answer / 10^decimals, exact."""
        return Fraction(self.round.answer, 10**self.decimals)

    @property
    def answer(self) -> str:
        """answer / 10^decimals as an exact decimal string."""
        return to_decimal_str(self.round.answer, self.decimals)


def _bytes(reply: str, what: str) -> bytes:
    if not isinstance(reply, str) or not reply.startswith("0x"):
        raise OracleError(f"{what} returned {reply!r:.80}, not hex data")
    try:
        return bytes.fromhex(reply[2:])
    except ValueError:
        raise OracleError(f"{what} returned {reply!r:.80}, not hex data") from None


def decode_round(reply: str) -> Round:
    """`latestRoundData()`'s ABI reply (5 words) -> Round; OracleError naming what is wrong."""
    data = _bytes(reply, "latestRoundData()")
    if len(data) != 32 * len(_ROUND_TYPES):
        hint = " (no contract at the address?)" if not data else ""
        raise OracleError(f"latestRoundData() returned {len(data)} bytes, expected 160{hint}")
    from eth_abi import decode as abi_decode  # on first use: eth_abi and its deps are ~25 MB
    from eth_abi.exceptions import DecodingError

    try:
        values = abi_decode(list(_ROUND_TYPES), data)
    except DecodingError as exc:
        raise OracleError(f"latestRoundData() reply does not decode: {exc}") from None
    return Round(*(int(v) for v in values))


def decode_decimals(reply: str) -> int:
    """`decimals()`'s ABI reply (one uint8 word) -> int; OracleError naming what is wrong."""
    data = _bytes(reply, "decimals()")
    if len(data) != 32:
        hint = " (no contract at the address?)" if not data else ""
        raise OracleError(f"decimals() returned {len(data)} bytes, expected 32{hint}")
    from eth_abi import decode as abi_decode
    from eth_abi.exceptions import DecodingError

    try:
        (value,) = abi_decode(["uint8"], data)
    except DecodingError as exc:
        raise OracleError(f"decimals() reply does not decode: {exc}") from None
    if value > MAX_DECIMALS:
        raise OracleError(f"decimals() is {value}, more than {MAX_DECIMALS}")
    return int(value)


def check_round(r: Round, now: float) -> None:
    """The anomalies a consumer of an AggregatorV3 feed must refuse; OracleError naming the first."""
    if r.answer <= 0:
        raise OracleError(f"round {r.round_id}: answer {r.answer} is not positive")
    if r.updated_at == 0:
        raise OracleError(f"round {r.round_id}: updatedAt is 0 (round not complete)")
    if r.updated_at > now + FUTURE_SLACK:
        raise OracleError(f"round {r.round_id}: updatedAt {r.updated_at} is in the future")
    if r.answered_in_round < r.round_id:
        raise OracleError(
            f"round {r.round_id}: answeredInRound {r.answered_in_round} < roundId (answer carried over)"
        )


def ratio(numerator: Fraction, denominator: Fraction | Decimal | None) -> Fraction | None:
    """numerator / denominator, exact; None without a positive denominator."""
    if denominator is None or denominator <= 0:
        return None
    return numerator / Fraction(denominator)


def supply_tokens(s: TotalSupply | None) -> Fraction | None:
    return None if s is None else Fraction(s.raw, 10**s.decimals)


class FeedReader(Protocol):
    async def read(self, address: str, calls: Sequence[str]) -> tuple[int | None, list[str]]:
        """eth_call each calldata at one block; (that block's height or None for `latest`, replies).
        Raises RpcError (a revert is an RpcError with code 3)."""
        ...


class EvmFeedReader:
    """Reads through the chain's EvmSource (its RpcPool: failover, retries, metrics) at the
    finalized block (EIP-1898 by hash, or by number, per the dialect); a dialect without past
    state (tron) reads at `latest` (the height is then that of the latest block, or None when the
    node moved during the read)."""

    def __init__(self, source: EvmSource) -> None:
        self._src = source

    async def read(self, address: str, calls: Sequence[str]) -> tuple[int | None, list[str]]:
        src = self._src
        if src.latest_only:
            # one batch to one endpoint, bracketed by the latest header (indexer.latest): the
            # height is known when the node did not move during the batch
            r = await src.latest_reads([("eth_call", [{"to": address, "data": d}]) for d in calls])
            same = r.before is not None and r.after is not None and r.before.hash == r.after.hash
            return (r.before.number if same and r.before is not None else None), list(r.results)
        _, fin = await src.tips()
        (ref,) = await src.headers([fin])
        if ref is None:
            raise RpcError(f"{src.name}: finalized block {fin} not available")
        out: list[str] = []
        for d in calls:
            reply = await src.call_at(address, d, ref)
            if reply is None:
                raise RpcError(f"{src.name}: dialect {src.dialect.name} reads no past state", retryable=False)
            out.append(reply)
        return ref.number, out


@dataclass(frozen=True)
class OracleSnapshot:
    up: bool
    reading: Reading | None  # the last valid round (kept while later reads fail)
    age_seconds: float | None
    stale: bool
    vs_attestation: Fraction | None
    coverage: Fraction | None
    last_error: str | None
    chain: str
    address: str  # as people read it on that chain (tron: base58check)
    max_age: float


class OracleService:
    def __init__(
        self,
        config: OracleConfig,
        metrics: Metrics,
        reader: FeedReader,
        attested: Callable[[], Decimal | None],
        circulating: Callable[[], TotalSupply | None],
        *,
        logger: Any | None = None,
        clock: Callable[[], float] = time.time,
        shown_address: str | None = None,
    ) -> None:
        self._config = config
        self._shown = shown_address if shown_address is not None else config.address
        self._metrics = metrics
        self._reader = reader
        self._attested = attested
        self._circulating = circulating
        self._log = logger if logger is not None else structlog.get_logger("indexer.oracle")
        self._clock = clock
        self._reading: Reading | None = None
        self._up = False
        self._error: str | None = None
        self._stale_logged = False
        nan = float("nan")
        metrics.oracle_up.set(0)
        metrics.oracle_max_age.set(config.max_age)
        for g in (
            metrics.oracle_usd,
            metrics.oracle_updated,
            metrics.oracle_vs_attestation,
            metrics.oracle_coverage,
        ):
            g.set(nan)

    def _age(self) -> float | None:
        return None if self._reading is None else self._clock() - self._reading.round.updated_at

    def _stale(self) -> bool:
        age = self._age()
        return age is not None and age > self._config.max_age

    async def refresh(self) -> bool:
        """Read the feed now; True when it gave a valid round."""
        c = self._config
        try:
            block, (round_reply, decimals_reply) = await self._reader.read(
                c.address, [LATEST_ROUND_DATA, DECIMALS]
            )
            rnd = decode_round(round_reply)
            decimals = decode_decimals(decimals_reply)
            check_round(rnd, self._clock())
        except (OracleError, IndexerError) as exc:
            # IndexerError: RPC failures (a revert is an RpcError with code 3) and what the chain's
            # source refuses at the finalized block (a contradicting endpoint, a finality violation)
            error = str(exc) if isinstance(exc, OracleError) else f"{type(exc).__name__}: {exc}"
            self._metrics.oracle_up.set(0)
            if self._up or self._error is None:
                self._log.warning(
                    "reserves_oracle_down",
                    chain=c.chain,
                    address=self._shown,
                    error=error,
                    kept_round=None if self._reading is None else self._reading.round.round_id,
                )
            self._up, self._error = False, error
            self.compare()
            return False
        reading = Reading(rnd, decimals, block, self._clock())
        if not self._up and self._error is not None:
            self._log.info(
                "reserves_oracle_recovered", chain=c.chain, address=self._shown, round_id=rnd.round_id
            )
        self._reading, self._up, self._error = reading, True, None
        self._metrics.oracle_up.set(1)
        self._metrics.oracle_usd.set(float(reading.value))
        self._metrics.oracle_updated.set(rnd.updated_at)
        stale = self._stale()
        if stale and not self._stale_logged:
            self._log.warning(
                "reserves_oracle_stale",
                chain=c.chain,
                address=self._shown,
                round_id=rnd.round_id,
                updated_at=_iso(float(rnd.updated_at)),
                max_age_seconds=c.max_age,
            )
        self._stale_logged = stale
        self.compare()
        return True

    def comparisons(self) -> tuple[Fraction | None, Fraction | None]:
        """(oracle / attested reserves, oracle / finalized circulating) from the last valid round."""
        if self._reading is None:
            return None, None
        value = self._reading.value
        return ratio(value, self._attested()), ratio(value, supply_tokens(self._circulating()))

    def compare(self) -> tuple[Fraction | None, Fraction | None]:
        """`comparisons()`, exported."""
        vs, cov = self.comparisons()
        self._metrics.oracle_vs_attestation.set(float("nan") if vs is None else float(vs))
        self._metrics.oracle_coverage.set(float("nan") if cov is None else float(cov))
        return vs, cov

    def snapshot(self) -> OracleSnapshot:
        vs, cov = self.comparisons()
        return OracleSnapshot(
            up=self._up,
            reading=self._reading,
            age_seconds=self._age(),
            stale=self._stale(),
            vs_attestation=vs,
            coverage=cov,
            last_error=self._error,
            chain=self._config.chain,
            address=self._shown,
            max_age=self._config.max_age,
        )

    async def run(self, stop: asyncio.Event, compare_interval: float = 5.0) -> None:
        """Until `stop`: read every `interval`, recompare (the supply moves) every `compare_interval`."""
        next_read = self._clock()
        while not stop.is_set():
            if self._clock() >= next_read:
                await self.refresh()
                next_read = self._clock() + self._config.interval
            else:
                self.compare()
            wait = max(0.0, min(compare_interval, next_read - self._clock()))
            try:
                async with asyncio.timeout(wait):
                    await stop.wait()
            except TimeoutError:
                pass


def oracle_json(snap: OracleSnapshot | None) -> dict[str, Any]:
    """The `oracle` member of `GET /api/v1/reserves`."""
    if snap is None:
        return {
            "configured": False,
            "chain": None,
            "address": None,
            "up": False,
            "answer": None,
            "decimals": None,
            "round_id": None,
            "updated_at": None,
            "age_seconds": None,
            "stale": False,
            "block": None,
            "vs_attestation": None,
            "coverage": None,
            "last_error": None,
        }
    r = snap.reading
    return {
        "configured": True,
        "chain": snap.chain,
        "address": snap.address,
        "up": snap.up,
        "answer": None if r is None else r.answer,
        "decimals": None if r is None else r.decimals,
        "round_id": None if r is None else str(r.round.round_id),
        "updated_at": None if r is None else _iso(float(r.round.updated_at)),
        "age_seconds": None if snap.age_seconds is None else round(snap.age_seconds),
        "stale": snap.stale,
        "block": None if r is None else r.block,
        "vs_attestation": _ratio_str(snap.vs_attestation),
        "coverage": _ratio_str(snap.coverage),
        "last_error": snap.last_error,
    }
