"""Reserve attestation documents (pure): JSON bytes -> validated, exact model.

Version 1 (see `config/reserves.example.json`)::

    {
      "version": 1,                              # optional, 1 when absent
      "token": "USD1",                           # optional, must match if given
      "as_of": "2025-05-31T23:59:59Z",           # when the reserves were measured (timezone required)
      "custodian": "Example Trust Company",       # who holds the assets
      "attestor": "Example Accountants LLP",      # who attests to them
      "assets": [                                 # at least one; amounts are exact decimal USD
        {"category": "us_treasury_bills", "amount_usd": "1500000000.00", "description": "..."},
        {"category": "cash", "amount_usd": "25000000.50"}
      ],
      "total_usd": "1525000000.50",              # optional; if given must equal the sum exactly
      "report_url": "https://...",                # optional
      "signature": {"scheme": "pgp", "value": "...", "key_id": "..."}   # optional, carried, not verified
    }

Version 2 (see `config/reserves.v2.example.json`): the same top level (`custodian` optional: who
holds the assets is stated per line), and each asset line::

    {
      "category": "us_treasury_bills",
      "custodian": "Example Trust Company",      # required: who holds this line
      "market_value_usd": "1499000000.00",       # required: what counts as reserves
      "notional_usd": "1500000000.00",           # optional: face value
      "maturity_days": 45,                        # optional: days to maturity after as_of, or
      "maturity_bucket": "31-90d",                # optional: one of MATURITY_BUCKETS (not both)
      "isin": "US912797KJ59", "cusip": "912797KJ5",   # optional, check digits verified
      "description": "..."
    }

Reserves = the sum of `amount_usd` (v1) or `market_value_usd` (v2). Amounts may be JSON strings or
numbers; numbers are parsed as exact decimals (never floats). Categories are snake_case names
(`cash`, `us_treasury_bills`, `overnight_repo`, `money_market_funds`, ...).

Custodian concentration (v2 only: a v1 document does not say who holds each line) = the largest
custodian's market value / all reserves, exact.

The detached signature that proves who issued the document is checked in `indexer.attest_sig`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from indexer.errors import IndexerError

_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MATURITY_BUCKETS = ("overnight", "1-7d", "8-30d", "31-90d", "91-180d", "181-365d", "1-2y", "over_2y")
_BUCKET_UPPER_DAYS = (1, 7, 30, 90, 180, 365, 730)  # inclusive upper bounds of all but the last


class ReservesError(IndexerError):
    """The attestation could not be read or is invalid; `problems` holds `path: message` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"reserves attestation {source}: " + "; ".join(problems))


def _exact_amount(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("amount must be a decimal string or an exact JSON number")
    if isinstance(value, str | int):
        try:
            return Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError(f"invalid decimal amount {value!r}") from None
    return value


def _non_negative(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError("amount must be a finite, non-negative number")
    return value


def _category(value: str) -> str:
    if not _CATEGORY_RE.match(value):
        raise ValueError(f"invalid category {value!r}: use a snake_case name such as us_treasury_bills")
    return value


def _isin(value: str) -> str:
    from stdnum import isin as stdnum_isin  # on first use (stdnum's tables are ~9 MB)
    from stdnum.exceptions import ValidationError as StdnumError

    try:
        return str(stdnum_isin.validate(value))
    except StdnumError as exc:
        raise ValueError(f"invalid ISIN {value!r}: {exc}") from None


def _cusip(value: str) -> str:
    from stdnum import cusip as stdnum_cusip
    from stdnum.exceptions import ValidationError as StdnumError

    try:
        return str(stdnum_cusip.validate(value))
    except StdnumError as exc:
        raise ValueError(f"invalid CUSIP {value!r}: {exc}") from None


def bucket_of_days(days: int) -> str:
    """The maturity bucket holding `days` (0 or 1 is overnight)."""
    for bucket, upper in zip(MATURITY_BUCKETS, _BUCKET_UPPER_DAYS, strict=False):
        if days <= upper:
            return bucket
    return MATURITY_BUCKETS[-1]


AmountUsd = Annotated[Decimal, BeforeValidator(_exact_amount), AfterValidator(_non_negative)]
Category = Annotated[str, AfterValidator(_category)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReserveAsset(_Strict):
    category: Category
    amount_usd: AmountUsd
    description: str | None = None

    @property
    def value_usd(self) -> Decimal:
        return self.amount_usd


class ReserveAssetV2(_Strict):
    category: Category
    custodian: str = Field(min_length=1)
    market_value_usd: AmountUsd
    notional_usd: AmountUsd | None = None
    maturity_days: int | None = Field(default=None, ge=0, le=36500, strict=True)
    maturity_bucket: (
        Literal["overnight", "1-7d", "8-30d", "31-90d", "91-180d", "181-365d", "1-2y", "over_2y"] | None
    ) = None
    isin: Annotated[str, AfterValidator(_isin)] | None = None
    cusip: Annotated[str, AfterValidator(_cusip)] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _maturity(self) -> ReserveAssetV2:
        if self.maturity_days is not None and self.maturity_bucket is not None:
            raise ValueError("give maturity_days or maturity_bucket, not both")
        if self.isin is not None and self.cusip is not None and self.isin[2:11] != self.cusip:
            raise ValueError(f"isin {self.isin} does not contain cusip {self.cusip}")
        return self

    @property
    def value_usd(self) -> Decimal:
        return self.market_value_usd

    @property
    def maturity(self) -> str | None:
        """The bucket, given or derived from the days."""
        if self.maturity_days is not None:
            return bucket_of_days(self.maturity_days)
        return self.maturity_bucket


class Signature(_Strict):
    scheme: str = Field(min_length=1)
    value: str = Field(min_length=1)
    key_id: str | None = None


class _AttestationBase(_Strict):
    token: str | None = None
    as_of: AwareDatetime
    attestor: str = Field(min_length=1)
    total_usd: AmountUsd | None = None
    report_url: str | None = None
    signature: Signature | None = None

    def _lines(self) -> list[ReserveAsset] | list[ReserveAssetV2]:
        raise NotImplementedError

    @property
    def assets_total(self) -> Decimal:
        return sum((a.value_usd for a in self._lines()), Decimal(0))

    @property
    def reserves_usd(self) -> Decimal:
        return self.assets_total

    def by_category(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for a in self._lines():
            out[a.category] = out.get(a.category, Decimal(0)) + a.value_usd
        return out

    def by_custodian(self) -> dict[str, Decimal] | None:
        """Market value per custodian (v2), largest first; None for v1 (not stated per line)."""
        return None

    def custodian_concentration(self) -> Fraction | None:
        """The largest custodian's share of reserves, exact; None for v1 or zero reserves."""
        held = self.by_custodian()
        total = self.reserves_usd
        if not held or total <= 0:
            return None
        return Fraction(max(held.values())) / Fraction(total)

    def _check_total(self) -> None:
        if self.total_usd is not None and self.total_usd != self.assets_total:
            raise ValueError(
                f"total_usd {self.total_usd} does not equal the sum of assets {self.assets_total}"
            )


class AttestationV1(_AttestationBase):
    version: Literal[1] = 1
    custodian: str = Field(min_length=1)
    assets: list[ReserveAsset] = Field(min_length=1)

    def _lines(self) -> list[ReserveAsset]:
        return self.assets

    @model_validator(mode="after")
    def _total(self) -> AttestationV1:
        self._check_total()
        return self


class AttestationV2(_AttestationBase):
    version: Literal[2]
    custodian: str | None = Field(default=None, min_length=1)  # a summary; lines say who holds what
    assets: list[ReserveAssetV2] = Field(min_length=1)

    def _lines(self) -> list[ReserveAssetV2]:
        return self.assets

    @model_validator(mode="after")
    def _total(self) -> AttestationV2:
        self._check_total()
        return self

    def by_custodian(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for a in self.assets:
            out[a.custodian] = out.get(a.custodian, Decimal(0)) + a.market_value_usd
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


Attestation = AttestationV1 | AttestationV2
SCHEMA_VERSIONS = (1, 2)


def parse_attestation(
    data: bytes | str, source: str = "<attestation>", *, token: str | None = None
) -> Attestation:
    """Pure: bytes -> validated Attestation (version 1 or 2), or ReservesError listing every problem."""
    try:
        raw = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ReservesError(source, [f"<root>: not valid JSON: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ReservesError(source, ["<root>: expected a JSON object"])
    version = raw.get("version", 1)
    model: type[AttestationV1] | type[AttestationV2]
    if version == 1 and not isinstance(version, bool):
        model = AttestationV1
    elif version == 2 and not isinstance(version, bool):
        model = AttestationV2
    else:
        raise ReservesError(source, [f"version: unsupported schema version {version!r} (supported: 1, 2)"])
    try:
        att: Attestation = model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = (
                "unknown key"
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            problems.append(f"{loc}: {msg}")
        raise ReservesError(source, problems) from None
    if token is not None and att.token is not None and att.token != token:
        raise ReservesError(source, [f"token: attestation is for {att.token!r}, not {token!r}"])
    return att


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid amount")
