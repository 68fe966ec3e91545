"""PURE: address watchlists (issue #17 item 5): parse a list, match transfers against the lists.

Formats (config `watchlists[].format`):
- `ofac_txt`: one address per line, as the community OFAC SDN digital-currency lists
  (`sanctioned_addresses_<ASSET>.txt`, 0xB10C/ofac-sanctioned-digital-currency-addresses). Blank
  lines and lines starting with `#` are skipped.
- `ofac_json`: a JSON array of address strings, as `sanctioned_addresses_<ASSET>.json`.
- `csv`: a header row with a column `address` (other columns are allowed and ignored).

An OFAC list is labelled by asset, not by chain: the USDT list mixes Tron `T...`, EVM `0x...` and
Bitcoin/Omni addresses. Each entry is therefore sorted by its spelling into what a chain kind can
match:
- `0x` + 40 hex -> `evm` (lowercased, as the store keeps EVM addresses);
- base58check `T...` with the 0x41 prefix -> `tron`, converted to the 20-byte `0x` hex form that
  Tron's logs (and so the store) carry (`indexer.chains.tron`);
- base58 decoding to 32 bytes -> `solana`, kept as written (the store keeps token accounts as the
  transfers name them);
- any other alphanumeric address (Bitcoin, Monero, ...) is for a chain the indexer does not
  follow: counted in `other`, not matched.
Anything else (a malformed `0x` address, a `T...` address with a bad checksum, punctuation or
spaces inside an entry, a non-string JSON entry, a CSV without `address`) is a `WatchlistError`
naming the list and the line (or JSON entry).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, assert_never

from indexer.chains import tron
from indexer.config import ChainConfig, EvmChainConfig, SolanaChainConfig
from indexer.errors import IndexerError
from indexer.model import TokenEvent

Format = Literal["ofac_txt", "ofac_json", "csv"]
MatchKind = Literal["evm", "tron", "solana"]
MAX_LIST_BYTES = 64 * 1024 * 1024
_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]{40}")
_WORD = re.compile(r"[0-9A-Za-z:]+")  # an address of some chain (cashaddr keeps its `prefix:`)
_B58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")


class WatchlistError(IndexerError):
    """A list could not be read or parsed; names the list and where in it."""

    def __init__(self, name: str, where: str, problem: str) -> None:
        self.name = name
        self.where = where
        self.problem = problem
        super().__init__(f"watchlist {name!r}: {where}: {problem}")


@dataclass(frozen=True, slots=True)
class Watchlist:
    """One parsed list: the addresses each chain kind can match, normalized as the store keeps them."""

    name: str
    evm: frozenset[str]
    tron: frozenset[str]
    solana: frozenset[str]
    other: int  # entries for chains the indexer does not follow (skipped)
    digest: str  # sha256 of the source bytes

    def addresses(self, kind: MatchKind) -> frozenset[str]:
        match kind:
            case "evm":
                return self.evm
            case "tron":
                return self.tron
            case "solana":
                return self.solana
            case _:
                assert_never(kind)

    def counts(self) -> dict[str, int]:
        return {"evm": len(self.evm), "tron": len(self.tron), "solana": len(self.solana), "other": self.other}


def classify(entry: str) -> tuple[MatchKind | None, str]:
    """(kind, normalized address) of one list entry; kind None: an address of another chain.
    ValueError says what is wrong with an entry that is no address at all."""
    if entry[:2] in ("0x", "0X"):
        if not _HEX_ADDR.fullmatch("0x" + entry[2:]):
            raise ValueError(f"{entry[:80]!r} is not an EVM address (0x followed by 40 hex digits)")
        return "evm", entry.lower()
    if not _WORD.fullmatch(entry):
        raise ValueError(f"{entry[:80]!r} is not an address (only letters and digits expected)")
    if not _B58.fullmatch(entry):
        return None, entry
    if entry.startswith("T") and len(entry) == tron.BASE58_LENGTH:
        try:
            return "tron", tron.to_hex(entry)
        except ValueError as exc:
            if len(tron.b58decode(entry)) != 32:
                raise ValueError(str(exc)) from None
    if 32 <= len(entry) <= 44 and len(tron.b58decode(entry)) == 32:
        return "solana", entry
    return None, entry


def _entries_txt(data: str) -> Iterator[tuple[str, str]]:
    for n, line in enumerate(data.splitlines(), start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield f"line {n}", text


def _entries_json(name: str, data: str) -> Iterator[tuple[str, str]]:
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise WatchlistError(name, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    if not isinstance(doc, list):
        raise WatchlistError(name, "<root>", f"expected a JSON array of addresses, got {type(doc).__name__}")
    for i, item in enumerate(doc):
        if not isinstance(item, str):
            raise WatchlistError(
                name, f"entry {i}", f"expected an address string, got {json.dumps(item)[:80]}"
            )
        yield f"entry {i}", item.strip()


def _entries_csv(name: str, data: str) -> Iterator[tuple[str, str]]:
    reader = csv.reader(io.StringIO(data, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise WatchlistError(name, "line 1", "empty CSV: expected a header row with a column `address`")
        columns = [h.strip().lower() for h in header]
        if "address" not in columns:
            raise WatchlistError(name, "line 1", f"no column `address` in the header {header[:10]}")
        col = columns.index("address")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"line {reader.line_num}"
            if len(row) <= col:
                raise WatchlistError(name, where, f"row has {len(row)} columns, no `address` value")
            yield where, row[col].strip()
    except csv.Error as exc:
        raise WatchlistError(name, f"line {reader.line_num}", f"not valid CSV: {exc}") from None


def parse(name: str, fmt: Format, data: bytes) -> Watchlist:
    """Pure: a list's bytes -> Watchlist, or WatchlistError naming the list and the line."""
    if len(data) > MAX_LIST_BYTES:
        raise WatchlistError(name, "<root>", f"larger than {MAX_LIST_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise WatchlistError(name, f"line {line}", "not UTF-8 text") from None
    entries: Iterable[tuple[str, str]]
    match fmt:
        case "ofac_txt":
            entries = _entries_txt(text)
        case "ofac_json":
            entries = _entries_json(name, text)
        case "csv":
            entries = _entries_csv(name, text)
        case _:
            assert_never(fmt)
    found: dict[MatchKind, set[str]] = {"evm": set(), "tron": set(), "solana": set()}
    other = 0
    for where, entry in entries:
        if not entry:
            raise WatchlistError(name, where, "empty address")
        try:
            kind, address = classify(entry)
        except ValueError as exc:
            raise WatchlistError(name, where, str(exc)) from None
        if kind is None:
            other += 1
        else:
            found[kind].add(address)
    return Watchlist(
        name,
        frozenset(found["evm"]),
        frozenset(found["tron"]),
        frozenset(found["solana"]),
        other,
        hashlib.sha256(data).hexdigest(),
    )


def match_kind(chain: ChainConfig) -> MatchKind:
    """Which entries of a list a chain matches: Tron (an EVM dialect) matches the `T...` entries."""
    match chain:
        case EvmChainConfig():
            return "tron" if chain.dialect == "tron" else "evm"
        case SolanaChainConfig():
            return "solana"
        case _:
            assert_never(chain)


class Movement(Protocol):
    """What matching reads of a transfer (a `TokenEvent` or a stored `Event`)."""

    @property
    def chain(self) -> str: ...
    @property
    def from_addr(self) -> str | None: ...
    @property
    def to_addr(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Matcher:
    """The lists in force, for the configured chains. Immutable: a reload builds a new one."""

    lists: tuple[Watchlist, ...]
    kinds: Mapping[str, MatchKind]  # chain name -> match kind

    @classmethod
    def build(cls, lists: Iterable[Watchlist], chains: Sequence[ChainConfig]) -> Matcher:
        return cls(tuple(lists), {c.name: match_kind(c) for c in chains})

    def names(self) -> list[str]:
        return [w.name for w in self.lists]

    def match(self, ev: Movement) -> list[str]:
        """Names of the lists (in config order) that hold the transfer's sender or receiver."""
        kind = self.kinds.get(ev.chain)
        if kind is None or not self.lists:
            return []
        out = []
        for w in self.lists:
            addrs = w.addresses(kind)
            if (ev.from_addr is not None and ev.from_addr in addrs) or (
                ev.to_addr is not None and ev.to_addr in addrs
            ):
                out.append(w.name)
        return out

    def addresses(self, chain: str) -> list[str]:
        """Every listed address a chain can match (sorted; for a `flagged=true` query filter)."""
        kind = self.kinds.get(chain)
        if kind is None:
            return []
        return sorted(set().union(*(w.addresses(kind) for w in self.lists)))


class Recent:
    """A bounded memory of the listed transfers already counted, so the same transfer re-included
    by a reorg's replacement block (same transaction, new block) is not counted again."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._keys: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._capacity = capacity

    def add(self, key: tuple[object, ...]) -> bool:
        """True when `key` is new (now remembered); False when already counted."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return True


def tally(events: Iterable[TokenEvent], matcher: Matcher, recent: Recent) -> dict[str, tuple[int, int]]:
    """Pure but for `recent`: per list, (transfers, raw amount) of the new listed transfers among
    `events`. A transfer is identified by its transaction, sides, amount and its ordinal among
    identical ones in the transaction (not by block or log index, which a re-inclusion changes)."""
    out: dict[str, tuple[int, int]] = {}
    ordinal: Counter[tuple[object, ...]] = Counter()
    for ev in events:
        names = matcher.match(ev)
        if not names:
            continue
        base = (ev.tx_hash, ev.from_addr, ev.to_addr, ev.amount)
        ordinal[base] += 1
        if not recent.add((*base, ordinal[base])):
            continue
        for name in names:
            n, raw = out.get(name, (0, 0))
            out[name] = (n + 1, raw + ev.amount)
    return out


EMPTY = Matcher((), {})
