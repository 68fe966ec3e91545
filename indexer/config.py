"""Configuration: YAML -> ${VAR} interpolation -> pydantic models.

Every problem is reported as `path.to.key: message` (see `ConfigError.problems`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from indexer.bridges import Bridge, ChainRole, Topology
from indexer.chains.dialects import DIALECTS, Dialect
from indexer.chains.evm_families import PROFILES, WATCH_DEFAULT, ControlFamily, LogDispatch, Profile
from indexer.errors import ConfigError
from indexer.large_events import threshold_raw
from indexer.model import Family, FamilyConfig
from indexer.supply_classes import OWNER, RESERVED_CLASSES
from indexer.units import tokens_to_raw

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_EVM_ADDR_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
MAX_NAME_LENGTH = 40
MIN_CURSOR_KEY_LENGTH = 16


def parse_duration(value: Any) -> float:
    """`1s`, `500ms`, `2m`, `1h`, `1d` or a bare number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 1s or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: expected e.g. 1s, 500ms, 2m, 1h")
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


def _evm_address(value: str) -> str:
    if not _EVM_ADDR_RE.match(value):
        raise ValueError(f"invalid EVM address {value!r}: expected 0x followed by 40 hex digits")
    return value.lower()


def _solana_address(value: str) -> str:
    expected = "expected a base58 public key (32 bytes, 32-44 characters)"
    if not _B58_RE.match(value):
        raise ValueError(f"invalid Solana address {value!r}: {expected}")
    from solders.pubkey import Pubkey

    try:
        Pubkey.from_string(value)
    except ValueError as exc:
        raise ValueError(f"invalid Solana address {value!r}: {expected} ({exc})") from None
    return value


def _url(value: str) -> str:
    if not re.match(r"^(https?|wss?)://[^\s/]+", value):
        raise ValueError(f"invalid URL {value!r}: expected http(s):// or ws(s)://")
    return value


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"invalid name {value!r}: use lowercase letters, digits, '_' and '-'")
    if len(value) > MAX_NAME_LENGTH:  # chain names become PostgreSQL partition and index names
        raise ValueError(f"name {value!r} is longer than {MAX_NAME_LENGTH} characters")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
EvmAddress = Annotated[str, AfterValidator(_evm_address)]
SolanaAddress = Annotated[str, AfterValidator(_solana_address)]
Url = Annotated[str, AfterValidator(_url)]
Name = Annotated[str, AfterValidator(_name)]


@dataclass(frozen=True, slots=True)
class IdFormat:
    """How a chain kind spells an address or a transaction id (API and CLI input checks)."""

    pattern: re.Pattern[str]
    noun: str  # "address", "transaction hash", "transaction signature"
    doc: str  # what is expected, for the error message
    lower: bool  # normalized to lowercase (EVM hex)
    shown: int = 80  # characters of a bad value quoted back

    def parse(self, value: str) -> str | None:
        """The normalized value, or None when `value` does not match."""
        if not self.pattern.fullmatch(value):
            return None
        return value.lower() if self.lower else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenConfig(_Strict):
    symbol: str = "USD1"
    peg_usd: float = Field(default=1.0, gt=0)


class DatabaseConfig(_Strict):
    dsn: str = ""  # empty -> embedded PostgreSQL under data_dir
    read_dsn: str = ""  # optional read replica for the HTTP API
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=8, ge=1, le=200)
    # Unreachable for longer than this: /healthz fails (503), and the process exits non-zero
    # if exit_on_unavailable (embedded PostgreSQL is restarted, a DSN reconnected, meanwhile).
    unavailable_limit: Duration = 300.0
    exit_on_unavailable: bool = False


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: expected host:port, e.g. 127.0.0.1:9464")
    return value


def _cursor_key(value: SecretStr) -> SecretStr:
    n = len(value.get_secret_value())
    if 0 < n < MIN_CURSOR_KEY_LENGTH:
        raise ValueError(f"cursor_key must be at least {MIN_CURSOR_KEY_LENGTH} characters (or empty)")
    return value


class HttpConfig(_Strict):
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:9464"
    # HMAC key of pagination cursors; empty -> generated once into data_dir/cursor.key.
    cursor_key: Annotated[SecretStr, AfterValidator(_cursor_key)] = SecretStr("")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class EvmFinality(_Strict):
    """Exactly one of `tag` (finalized | safe) or `confirmations` (N blocks below head)."""

    tag: Literal["finalized", "safe"] | None = None
    confirmations: int | None = Field(default=None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> EvmFinality:
        if (self.tag is None) == (self.confirmations is None):
            which = "neither" if self.tag is None else "both"
            raise ValueError(
                f"give exactly one of tag (finalized|safe) or confirmations (N blocks); got {which}"
            )
        return self


class SolanaFinality(_Strict):
    commitment: Literal["finalized", "confirmed"] = "finalized"


class AuditConfig(_Strict):
    """The background audit of a chain at its finalized block (`indexer.sync.audit`)."""

    enabled: bool = True
    interval: Duration = 60.0  # one audit round this often
    # Balance audit: balanceOf / getTokenAccountBalance reads per hour (the request budget),
    # spread over the rounds; the largest holders first (down to `top_holders`), then random ones.
    accounts_per_hour: int = Field(default=360, ge=0, le=1_000_000)
    top_holders: int = Field(default=1000, ge=0, le=1_000_000)
    # Range audit (two or more endpoints): re-reads per hour of a recently finalized range from
    # each endpoint, compared with the store by event count and digest. One re-read costs what a
    # backfill fetch of `range_blocks` costs on that endpoint.
    ranges_per_hour: int = Field(default=60, ge=0, le=100_000)
    range_blocks: int | None = Field(default=None, ge=1, le=100_000)  # default: 500 blocks / 64 slots


class _ChainBase(_Strict):
    name: Name
    rpc: list[Url] = Field(min_length=1)
    poll_interval: Duration = 1.0
    request_timeout: Duration = 10.0
    lag_budget: Duration = 120.0  # /readyz and the lag alert use this
    max_concurrency: int = Field(default=4, ge=1, le=64)
    # Requests per second each endpoint allows (the provider plan's rate): requests are paced at
    # it from the first one, so none meets a 429. null: learned from the endpoint's rate limits
    # (indexer/chains/pacing.py).
    max_requests_per_second: float | None = Field(default=None, gt=0, le=100_000)
    # A backfill that more than doubles the indexed range builds the chain's secondary event
    # indexes once at its end instead of row by row (see migration 005).
    defer_indexes: bool = True
    audit: AuditConfig = AuditConfig()
    # A single mint or burn of at least this many whole tokens (decimal string, scaled exactly by
    # the chain's decimals) counts in usd1_large_events_total{chain,kind}; None: not counted.
    large_event_tokens: str | None = None
    # Bridges (README "Bridges"): `native` chains issue the token; a `bridged` chain's supply is
    # minted by `bridge` against tokens locked (label bridge_lock) on the native chains of that
    # bridge. On a native chain, `bridge` names the bridge its bridge_lock accounts lock for.
    role: Literal["native", "bridged"] = "native"
    bridge: Name | None = Field(default=None, validate_default=True)

    @field_validator("bridge")
    @classmethod
    def _bridged_names_its_bridge(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("role") == "bridged":
            raise ValueError("missing (required): a chain with role bridged names the bridge that mints it")
        return value

    @model_validator(mode="after")
    def _check_large_event_tokens(self) -> _ChainBase:
        if self.large_event_tokens is not None:
            threshold_raw(self.large_event_tokens, int(getattr(self, "decimals", 0)))
        return self

    def classified(self) -> list[tuple[str, str]]:
        """(address or `owner`, label) of the chain's non_circulating accounts, in config order."""
        entries: list[Any] = getattr(self, "non_circulating", [])
        return [(e.address, e.label) for e in entries]

    @property
    def large_event_raw(self) -> int | None:
        """The large-event threshold in base units, or None when not configured."""
        if self.large_event_tokens is None:
            return None
        return threshold_raw(self.large_event_tokens, int(getattr(self, "decimals", 0)))


def _evm_or_owner(value: str) -> str:
    return OWNER if value == OWNER else _evm_address(value)


class NonCirculatingEvm(_Strict):
    """An account whose balance is not circulating (README "Supply classes"): `label` names the
    class (treasury, bridge_lock, issuer, redemption, ...); `address` is an account or `owner`."""

    address: Annotated[str, AfterValidator(_evm_or_owner)]
    label: Name


class NonCirculatingSolana(_Strict):
    """As NonCirculatingEvm; `address` is a token account (what the index keeps balances of)."""

    address: str
    label: Name

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == OWNER:
            raise ValueError(
                "'owner' is EVM only: a Solana mint has no owner holding minted tokens; name the token account"
            )
        return _solana_address(value)


def _check_non_circulating(entries: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e.label in RESERVED_CLASSES:
            raise ValueError(f"entry {i}: label {e.label!r} is reserved ({', '.join(RESERVED_CLASSES)})")
        if e.address in seen:
            raise ValueError(f"entry {i}: {e.address} is listed twice (an account has one label)")
        seen.add(e.address)
    return entries


class WatchConfig(_Strict):
    """An extra contract whose control events count (a ProxyAdmin, an owner multisig, a governor)."""

    address: EvmAddress
    label: Name
    controls: list[ControlFamily] | None = None  # default: WATCH_DEFAULT

    @property
    def families(self) -> tuple[ControlFamily, ...]:
        return tuple(self.controls) if self.controls is not None else WATCH_DEFAULT


def _dialect(value: str) -> str:
    if value not in DIALECTS:
        raise ValueError(f"unknown dialect {value!r}; known: {', '.join(DIALECTS)}")
    return value


class EvmChainConfig(_ChainBase):
    ADDRESS: ClassVar[IdFormat] = IdFormat(
        _EVM_ADDR_RE, "address", "EVM chain {chain}: expected 0x + 40 hex digits", True
    )
    TX: ClassVar[IdFormat] = IdFormat(
        re.compile(r"^0x[0-9a-fA-F]{64}$"), "transaction hash", "expected 0x + 64 hex digits", True
    )
    kind: Literal["evm"]
    ws: Url | None = None
    # The node's quirks (indexer/chains/dialects.py): ethereum | bsc | legacy | tron. It comes
    # first: it decides the finality tags served and how the addresses may be spelled.
    dialect: Annotated[str, AfterValidator(_dialect)] = "ethereum"
    finality: EvmFinality = Field(default=EvmFinality(tag="finalized"), validate_default=True)
    token: EvmAddress
    decimals: int = Field(default=18, ge=0, le=36)
    start_block: int = Field(default=0, ge=0)
    # Backfill eth_getLogs ranges are sized to return about this many logs (learned from the
    # density read so far; indexer/chains/ranges.py); max_block_range is their ceiling. null:
    # every request spans max_block_range blocks.
    target_logs_per_request: int | None = Field(default=5000, ge=1, le=1_000_000)
    max_block_range: int = Field(default=2000, ge=1, le=1_000_000)
    live_batch_blocks: int = Field(default=100, ge=1, le=10_000)
    # Control events (indexer/chains/evm_families.py): the token's default families, an explicit
    # list that replaces them, and extra contracts to watch.
    profile: Profile = "erc20"
    controls: list[ControlFamily] | None = None
    watch: list[WatchConfig] = Field(default_factory=list)
    control_check_interval: Duration = 60.0  # contract state checked against the chain this often
    control_check_sample: int = Field(default=16, ge=0, le=1000)  # frozen accounts checked per round
    # Accounts whose balances are not circulating (supply classes, README "Supply classes").
    non_circulating: Annotated[list[NonCirculatingEvm], AfterValidator(_check_non_circulating)] = Field(
        default_factory=list
    )

    @field_validator("finality")
    @classmethod
    def _dialect_serves_the_finality_tag(cls, value: EvmFinality, info: ValidationInfo) -> EvmFinality:
        dialect = info.data.get("dialect")
        if dialect not in DIALECTS:
            return value  # the unknown dialect is the problem reported
        tags = DIALECTS[dialect].final_tags
        if value.tag is not None and value.tag not in tags:
            raise ValueError(
                f"dialect {dialect!r} serves no {value.tag!r} block tag"
                f" (it serves: {', '.join(sorted(tags)) or 'none'}); use finality.confirmations"
            )
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token_in_the_dialect_spelling(cls, value: Any, info: ValidationInfo) -> Any:
        dialect = DIALECTS.get(info.data.get("dialect", ""))
        return dialect.config_address(value) if dialect is not None else value

    @field_validator("watch", "non_circulating", mode="before")
    @classmethod
    def _entries_in_the_dialect_spelling(cls, value: Any, info: ValidationInfo) -> Any:
        dialect = DIALECTS.get(info.data.get("dialect", ""))
        if dialect is None or not isinstance(value, list):
            return value
        out = []
        for i, w in enumerate(value):
            if isinstance(w, dict) and "address" in w and w["address"] != OWNER:
                try:
                    w = {**w, "address": dialect.config_address(w["address"])}
                except ValueError as exc:
                    raise ValueError(f"entry {i}: {exc}") from None
            out.append(w)
        return out

    @field_validator("watch")
    @classmethod
    def _watch(cls, value: list[WatchConfig], info: ValidationInfo) -> list[WatchConfig]:
        token = info.data.get("token")
        seen: set[str] = set()
        labels = {"token"}
        for i, w in enumerate(value):
            if w.address == token:
                raise ValueError(f"entry {i}: {w.address} is the token itself")
            if w.address in seen:
                raise ValueError(f"entry {i}: {w.address} is watched twice")
            if w.label in labels:
                raise ValueError(f"entry {i}: label {w.label!r} is used twice (or is reserved)")
            seen.add(w.address)
            labels.add(w.label)
        profile, controls = info.data.get("profile"), info.data.get("controls")
        if isinstance(token, str) and isinstance(profile, str):
            families = tuple(controls) if controls is not None else PROFILES[profile]
            try:
                LogDispatch.build(token, families, [(w.address, w.label, w.families) for w in value])
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _owner_needs_ownable(self) -> EvmChainConfig:
        if any(e.address == OWNER for e in self.non_circulating) and (
            ControlFamily.OWNABLE not in self.control_families
        ):
            raise ValueError(
                "non_circulating: address 'owner' needs the token's ownable control events"
                " (profile usd1 or fiattoken, or controls: [ownable, ...])"
            )
        return self

    @property
    def evm_dialect(self) -> Dialect:
        return DIALECTS[self.dialect]

    def parse_address(self, value: str) -> str:
        """A user-typed address -> the stored form, in any spelling the dialect accepts
        (ValueError naming what is wrong)."""
        return self.evm_dialect.parse_address(value)

    def show_address(self, value: str) -> str:
        """The one place that decides how this chain's addresses are shown (API, CLI, page)."""
        return self.evm_dialect.show_address(value)

    @property
    def control_families(self) -> tuple[ControlFamily, ...]:
        return tuple(self.controls) if self.controls is not None else PROFILES[self.profile]

    def log_dispatch(self) -> LogDispatch:
        """The chain's table of event decoders (every family)."""
        return LogDispatch.build(
            self.token, self.control_families, [(w.address, w.label, w.families) for w in self.watch]
        )

    @property
    def first_height(self) -> int:
        return self.start_block

    def control_contracts(self) -> list[tuple[str, str, list[str]]]:
        """(address, label, control families) of the contracts whose control events count; empty
        when the chain decodes none."""
        d = self.log_dispatch()
        if not d.specs(Family.CONTROLS):
            return []
        return [(c.address, c.label, [f.value for f in c.families]) for c in d.contracts]

    def family_configs(self) -> dict[Family, FamilyConfig]:
        """The event families this chain decodes (transfers always; controls when configured)."""
        d = self.log_dispatch()
        transfers = d.describe(Family.TRANSFERS)
        out = {
            Family.TRANSFERS: FamilyConfig(
                d.fingerprint(Family.TRANSFERS),
                transfers,
                fillable=False,
                legacy=transfers == {self.token: ["Transfer(address,address,uint256)"]},
            )
        }
        if d.specs(Family.CONTROLS):
            out[Family.CONTROLS] = FamilyConfig(
                d.fingerprint(Family.CONTROLS), d.describe(Family.CONTROLS), fillable=True
            )
        return out


class SolanaChainConfig(_ChainBase):
    ADDRESS: ClassVar[IdFormat] = IdFormat(
        re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"),
        "address",
        "Solana chain {chain}: expected base58",
        False,
    )
    TX: ClassVar[IdFormat] = IdFormat(
        re.compile(r"^[1-9A-HJ-NP-Za-km-z]{64,90}$"), "transaction signature", "expected base58", False, 100
    )
    kind: Literal["solana"]
    mint: SolanaAddress
    decimals: int = Field(default=6, ge=0, le=18)
    start_slot: int = Field(default=0, ge=0)
    finality: SolanaFinality = SolanaFinality()
    poll_interval: Duration = 0.4
    # The controls family (issue #14 section 3): SetAuthority of the mint and its token accounts,
    # InitializeMint*, FreezeAccount / ThawAccount, Token-2022 Pause / Resume. `false`: transfers only.
    controls: bool = True
    control_check_interval: Duration = 60.0  # mint and frozen accounts checked against the chain
    control_check_sample: int = Field(default=16, ge=0, le=100)  # frozen accounts read per check
    non_circulating: Annotated[list[NonCirculatingSolana], AfterValidator(_check_non_circulating)] = Field(
        default_factory=list
    )
    # How a backfill finds the mint's transactions: `blocks` reads every slot's block (getBlock);
    # `signatures` lists the mint's and its token accounts' transactions (getSignaturesForAddress)
    # and reads only those (getTransaction): far fewer requests when the mint is in few slots.
    # Live following near the head always reads blocks.
    backfill_source: Literal["blocks", "signatures"] = "blocks"

    def parse_address(self, value: str) -> str:
        got = self.ADDRESS.parse(value)
        if got is None:
            raise ValueError("expected base58")
        return got

    def show_address(self, value: str) -> str:
        return value

    @property
    def first_height(self) -> int:
        return self.start_slot

    def control_contracts(self) -> list[tuple[str, str, list[str]]]:
        return [(self.mint, "token", [SOLANA_CONTROLS])] if self.controls else []

    def family_configs(self) -> dict[Family, FamilyConfig]:
        """Transfers of the mint (SPL Token and Token-2022 instructions, see solana_parse), and its
        control instructions when `controls` is on."""
        config = {self.mint: ["SPL Token Transfer/TransferChecked/MintTo/MintToChecked/Burn/BurnChecked"]}
        fp = hashlib.sha256(f"spl-token {self.mint}".encode()).hexdigest()[:32]
        out = {Family.TRANSFERS: FamilyConfig(fp, config, fillable=False, legacy=True)}
        if self.controls:
            cconfig = {self.mint: list(SOLANA_CONTROL_INSTRUCTIONS)}
            cfp = hashlib.sha256(f"spl-token-controls {self.mint}".encode()).hexdigest()[:32]
            out[Family.CONTROLS] = FamilyConfig(cfp, cconfig, fillable=True)
        return out


SOLANA_CONTROLS = "spl_authorities"  # the controls family name a Solana mint lists in the API
SOLANA_CONTROL_INSTRUCTIONS = (
    "InitializeMint",
    "InitializeMint2",
    "SetAuthority",
    "FreezeAccount",
    "ThawAccount",
    "InitializePausableConfig",
    "Pause",
    "Resume",
)


ChainConfig = Annotated[EvmChainConfig | SolanaChainConfig, Field(discriminator="kind")]


class MarketConfig(_Strict):
    bands_bps: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    # Depeg episodes (indexer/depegs.py): one opens when |deviation| >= depeg_threshold_bps and
    # closes when it falls below depeg_threshold_bps - depeg_hysteresis_bps.
    depeg_threshold_bps: int = Field(default=50, gt=0, le=10_000)
    depeg_hysteresis_bps: int = Field(default=10, ge=0)

    @model_validator(mode="after")
    def _bands(self) -> MarketConfig:
        if any(b <= 0 or b > 10_000 for b in self.bands_bps):
            raise ValueError("bands_bps must be between 1 and 10000")
        if len(set(self.bands_bps)) != len(self.bands_bps):
            raise ValueError("bands_bps has duplicates")
        if self.depeg_hysteresis_bps >= self.depeg_threshold_bps:
            raise ValueError(
                f"depeg_hysteresis_bps ({self.depeg_hysteresis_bps}) must be below depeg_threshold_bps"
                f" ({self.depeg_threshold_bps})"
            )
        return self


class _VenueBase(_Strict):
    name: Name
    quote_usd: float | None = Field(default=None, gt=0)
    quote_venue: str | None = None
    interval: Duration = 5.0
    timeout: Duration = 5.0
    # USD depth (bid + ask at the widest band) at or above which this venue alone may page a depeg;
    # unset: the paging alert needs a second venue to agree (alerts/README.md, cross-venue consensus).
    page_depth_floor_usd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _quote(self) -> _VenueBase:
        if self.quote_usd is not None and self.quote_venue is not None:
            raise ValueError("give either quote_usd or quote_venue, not both")
        return self


class UniswapV2VenueConfig(_VenueBase):
    kind: Literal["uniswap_v2"]
    chain: str
    pool: EvmAddress
    fee_bps: int = Field(default=30, ge=0, lt=10_000)  # Uniswap V2 0.3%; PancakeSwap V2 uses 25


class UniswapV3VenueConfig(_VenueBase):
    kind: Literal["uniswap_v3"]
    chain: str
    pool: EvmAddress
    tick_words: int = Field(default=4, ge=1, le=64)  # tick-bitmap words read each side of the price


class OrderbookVenueConfig(_VenueBase):
    kind: Literal["orderbook"]
    exchange: Literal["binance", "coinbase", "kraken", "okx", "bybit"]
    url: Url
    interval: Duration = 10.0


VenueConfig = Annotated[
    UniswapV2VenueConfig | UniswapV3VenueConfig | OrderbookVenueConfig, Field(discriminator="kind")
]


def _cadence(value: Any) -> Any:
    if isinstance(value, str) and value in ("daily", "weekly", "monthly", "quarterly"):
        return value
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f"invalid cadence {value!r}: expected daily, weekly, monthly, quarterly or a duration such as 30d"
        ) from None


def _grace(value: Any) -> float:
    if value in (0, "0", "0s"):
        return 0.0
    return parse_duration(value)


def _feed_address(value: str) -> str:
    """`0x` + 40 hex, or a Tron spelling (base58check `T...`, `41...` hex) for a tron-dialect chain."""
    if _EVM_ADDR_RE.match(value):
        return value.lower()
    from indexer.chains import tron

    try:
        return tron.to_hex(value)
    except ValueError:
        raise ValueError(
            f"invalid feed address {value!r}: expected 0x followed by 40 hex digits (or a Tron address)"
        ) from None


class OracleConfig(_Strict):
    """An on-chain proof-of-reserve feed (Chainlink AggregatorV3: `latestRoundData`, `decimals`),
    read by `indexer.oracle` on a configured EVM chain at its finalized block (tron: `latest`)."""

    chain: Name
    address: Annotated[str, AfterValidator(_feed_address)]
    interval: Duration = 60.0
    # The feed's last round older than this is stale (Chainlink PoR feeds: 24 h heartbeat + slack).
    max_age: Duration = 93600.0


class ReservesConfig(_Strict):
    url: str
    interval: Duration = 3600.0
    max_age: Duration = 172800.0  # without a cadence: attestation older than this is stale
    # How often attestations are published (daily | weekly | monthly | quarterly | a duration) and
    # how long after the end of a period its attestation may take: stale after next period + grace.
    cadence: (
        Annotated[Literal["daily", "weekly", "monthly", "quarterly"] | float, BeforeValidator(_cadence)]
        | None
    ) = None
    grace: Annotated[float, BeforeValidator(_grace)] = 0.0
    # Ed25519 public key file (PEM, DER, or 32 bytes as hex/base64), relative to the config file.
    # Set: only attestations whose detached signature verifies are adopted.
    public_key: str | None = Field(default=None, min_length=1)
    # Where the detached signature is; default: the attestation URL + ".sig".
    signature_url: str | None = None
    # On-chain proof-of-reserve feed compared with the attestation and the circulating supply.
    oracle: OracleConfig | None = None

    @model_validator(mode="after")
    def _scheme(self) -> ReservesConfig:
        for key in ("url", "signature_url"):
            value = getattr(self, key)
            if value is not None and not re.match(r"^(file|https?)://", value):
                raise ValueError(f"invalid reserves {key} {value!r}: expected file://, http:// or https://")
        if self.signature_url is not None and self.public_key is None:
            raise ValueError("reserves.signature_url needs reserves.public_key to verify with")
        return self

    @property
    def signature_source(self) -> str:
        return self.signature_url if self.signature_url is not None else self.url + ".sig"


WATCHLIST_FORMATS = ("ofac_txt", "ofac_json", "csv")


class WatchlistConfig(_Strict):
    """One address list (issue #17 item 5; parsed by `indexer.watchlists`). `url` is a file path
    (relative paths resolve against the config file's directory), `file://PATH`, or http(s)://."""

    name: Name  # label `list` of usd1_watchlist_*; the `lists` of a flagged transfer
    url: str = Field(min_length=1)
    format: Literal["ofac_txt", "ofac_json", "csv"]

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
        if m is not None and m.group(1).lower() not in ("file", "http", "https"):
            raise ValueError(
                f"invalid watchlist url {value!r}: expected a file path, file://, http:// or https://"
            )
        if value != value.strip():
            raise ValueError(f"invalid watchlist url {value!r}: leading or trailing whitespace")
        return value


class BridgeConfig(_Strict):
    """A bridge between the chains (README "Bridges"): chains name it in `bridge`."""

    name: Name
    # Tokens that may be minted on the bridged chains before the lock is seen on the native
    # chains (messages in flight, finality lag between the chains): a decimal string of whole
    # tokens, scaled exactly by the decimals of the bridge's most precise chain.
    in_flight_allowance_tokens: str = "0"

    @field_validator("in_flight_allowance_tokens")
    @classmethod
    def _allowance(cls, value: str) -> str:
        tokens_to_raw(value, None)
        return value


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "console"


class Config(_Strict):
    token: TokenConfig = TokenConfig()
    database: DatabaseConfig = DatabaseConfig()
    data_dir: Path = Path("./.usd1")
    http: HttpConfig = HttpConfig()
    log: LogConfig = LogConfig()
    # Worker processes that parse and decode large eth_getLogs replies (backfill), shared by the
    # EVM chains; 0 decodes in the daemon's own process (see indexer/chains/decode_pool.py).
    decode_processes: int = Field(default=1, ge=0, le=16)
    chains: list[ChainConfig] = Field(min_length=1)
    market: MarketConfig = MarketConfig()
    venues: list[VenueConfig] = Field(default_factory=list)
    reserves: ReservesConfig | None = None
    bridges: list[BridgeConfig] = Field(default_factory=list)
    watchlists: list[WatchlistConfig] = Field(default_factory=list)
    # How often each watchlist's source is checked for a change (file mtime/size, HTTP ETag).
    watchlist_reload_seconds: Duration = 300.0

    @field_validator("watchlists")
    @classmethod
    def _unique_watchlists(cls, value: list[WatchlistConfig]) -> list[WatchlistConfig]:
        seen: dict[str, int] = {}
        for i, w in enumerate(value):
            if w.name in seen:
                raise ValueError(f"duplicate watchlist name {w.name!r} (entries {seen[w.name]} and {i})")
            seen[w.name] = i
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        problems = _cross_check(
            [c.model_dump() for c in self.chains],
            [v.model_dump() for v in self.venues],
            [b.model_dump() for b in self.bridges],
            self.reserves.model_dump() if self.reserves is not None else None,
        )
        if problems:
            raise ConfigError(problems)
        return self

    def topology(self) -> Topology:
        """The bridges and each chain's role, for the global figures (indexer/bridges.py)."""
        return Topology(
            tuple(Bridge(b.name, b.in_flight_allowance_tokens) for b in self.bridges),
            {c.name: ChainRole(c.role, c.bridge) for c in self.chains},
        )

    def chain(self, name: str) -> EvmChainConfig | SolanaChainConfig:
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)


def _cross_check(chains: Any, venues: Any, bridges: Any = None, reserves: Any = None) -> list[str]:
    """Checks across sections (names unique, venues on configured chains, bridges named by the
    chains), on validated models or on raw YAML data (so they are reported together with field
    errors). Entries that are not mappings are skipped: the field validation reports them."""
    problems: list[str] = []
    chains = chains if isinstance(chains, list) else []
    venues = venues if isinstance(venues, list) else []
    problems += _cross_check_bridges(chains, bridges if isinstance(bridges, list) else [])
    seen: set[Any] = set()
    evm: set[Any] = set()
    for i, chain in enumerate(chains):
        if not isinstance(chain, dict) or not isinstance(chain.get("name"), str):
            continue
        name = chain["name"]
        if name in seen:
            problems.append(f"chains.{i}.name: duplicate chain name {name!r}")
        seen.add(name)
        if chain.get("kind") == "evm":
            evm.add(name)
    venue_names: set[Any] = set()
    for i, venue in enumerate(venues):
        if not isinstance(venue, dict):
            continue
        name = venue.get("name")
        if isinstance(name, str):
            if name in venue_names:
                problems.append(f"venues.{i}.name: duplicate venue name {name!r}")
            venue_names.add(name)
        chain_name = venue.get("chain")
        if venue.get("kind") in ("uniswap_v2", "uniswap_v3") and isinstance(chain_name, str):
            if chain_name not in evm:
                what = "is a Solana chain" if chain_name in seen else "is not a configured chain"
                problems.append(f"venues.{i}.chain: {chain_name!r} {what}; pool venues need an EVM chain")
    for i, venue in enumerate(venues):
        if isinstance(venue, dict) and isinstance(venue.get("quote_venue"), str):
            if venue["quote_venue"] not in venue_names:
                problems.append(f"venues.{i}.quote_venue: no venue named {venue['quote_venue']!r}")
    oracle = reserves.get("oracle") if isinstance(reserves, dict) else None
    if isinstance(oracle, dict) and isinstance(oracle.get("chain"), str) and oracle["chain"] not in evm:
        what = "is a Solana chain" if oracle["chain"] in seen else "is not a configured chain"
        problems.append(
            f"reserves.oracle.chain: {oracle['chain']!r} {what}; the feed is read on an EVM chain"
        )
    return problems


_DEFAULT_DECIMALS = {
    "evm": EvmChainConfig.model_fields["decimals"].default,
    "solana": SolanaChainConfig.model_fields["decimals"].default,
}


def _cross_check_bridges(chains: list[Any], bridges: list[Any]) -> list[str]:
    problems: list[str] = []
    names: dict[str, int] = {}
    for i, b in enumerate(bridges):
        if isinstance(b, dict) and isinstance(b.get("name"), str):
            if b["name"] in names:
                problems.append(f"bridges.{i}.name: duplicate bridge name {b['name']!r}")
            names.setdefault(b["name"], i)
    decimals: dict[str, list[int]] = {}
    every: list[int] = []
    for i, chain in enumerate(chains):
        if not isinstance(chain, dict):
            continue
        dp = chain.get("decimals", _DEFAULT_DECIMALS.get(str(chain.get("kind"))))
        if isinstance(dp, int):
            every.append(dp)
        if not isinstance(chain.get("bridge"), str):
            continue
        if chain["bridge"] not in names:
            known = ", ".join(names) or "none configured"
            problems.append(f"chains.{i}.bridge: no bridge named {chain['bridge']!r} in bridges ({known})")
        elif isinstance(dp, int):
            decimals.setdefault(chain["bridge"], []).append(dp)
    for name, i in names.items():
        allowance = bridges[i].get("in_flight_allowance_tokens", "0")
        dp = max(decimals.get(name) or every or [0])  # the precision indexer.bridges.backing uses
        try:
            tokens_to_raw(allowance, None)  # a bad spelling is the field's error, reported there
        except ValueError:
            continue
        try:
            tokens_to_raw(allowance, dp)
        except ValueError as exc:
            problems.append(
                f"bridges.{i}.in_flight_allowance_tokens: {exc} (the precision of the bridge's chains)"
            )
    return problems


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[str]]:
    """Replace ${VAR} and ${VAR:-default} in every string; returns (value, problems)."""
    problems: list[str] = []
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in env and (env[var] != "" or default is None):
                return env[var]
            if default is not None:
                return default
            problems.append(f"{path or '<root>'}: environment variable {var} is not set")
            return ""

        return _ENV_RE.sub(repl, value), problems
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            out[k], p = interpolate(v, env, f"{path}.{k}" if path else str(k))
            problems += p
        return out, problems
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            item, p = interpolate(v, env, f"{path}.{i}")
            items.append(item)
            problems += p
        return items, problems
    return value, problems


_UNION_TAGS = {
    "chains": ("evm", "solana"),
    "venues": ("uniswap_v2", "uniswap_v3", "orderbook"),
}


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _path_part(part: object) -> str:
    """A path component as typed in the file; odd keys (dots, spaces, control characters) are
    quoted so the `path.to.key` stays unambiguous."""
    text = str(part)
    return text if isinstance(part, int) or _PLAIN_KEY.match(text) else repr(text)


def _format_validation_error(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        raw_loc = list(err["loc"])
        # Drop the discriminator tag pydantic inserts after the index in a tagged-union list
        # (`chains.0.evm.token` -> `chains.0.token`).
        loc: list[str] = []
        for i, part in enumerate(raw_loc):
            if (
                i >= 2
                and isinstance(raw_loc[i - 1], int)
                and part in _UNION_TAGS.get(str(raw_loc[i - 2]), ())
            ):
                continue
            loc.append(_path_part(part))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "missing (required)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            kinds = " or ".join(_UNION_TAGS.get(loc[0], ())) if loc else ""
            kind = err["input"].get("kind") if isinstance(err.get("input"), dict) else None
            loc.append("kind")
            msg = f"unknown kind {kind!r}" if kind is not None else "missing (required)"
            if kinds:
                msg += f"; expected {kinds}"
        problems.append(f"{'.'.join(loc) or '<root>'}: {msg}")
    return problems


def load_config_text(text: str, env: Mapping[str, str] | None = None, source: str = "<config>") -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            [f"<root>: {source} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"<root>: {source} must be a YAML mapping"])
    data, problems = interpolate(raw, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # Field errors stop pydantic before the cross-section checks: run those on the raw data
        # so that every problem is reported at once.
        problems = _format_validation_error(exc)
        cross = _cross_check(
            data.get("chains"), data.get("venues"), data.get("bridges"), data.get("reserves")
        )
        problems += [p for p in cross if p not in problems]
        raise ConfigError(problems) from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([f"<root>: cannot read {p}: {exc.strerror}"]) from None
    cfg = load_config_text(text, env, source=str(p))
    # A relative data_dir is relative to the working directory, like every path given on a CLI.
    return cfg.model_copy(update={"data_dir": cfg.data_dir.resolve()})
