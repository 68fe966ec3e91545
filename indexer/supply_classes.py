"""PURE: a chain's supply split into classes (issue #16 item 1, README "Supply classes").

    total = circulating + frozen + sum(non_circulating by label)

`non_circulating` comes from the chain's config (`[{address, label}]`; the address `owner` follows
the token's current owner from the control state), `frozen` from the control state's frozen
(blacklisted) accounts. Each account is subtracted once, whatever lists it:

- a configured label wins over frozen: a frozen treasury counts as `treasury`, not `frozen` (the
  label is the operator's statement of what the account is; freezing is a passing state of it);
- among labels, the first config entry naming an account wins (an explicit entry listed before
  `owner` keeps the owner's account under its own label when the two coincide);
- `owner` is skipped while no owner is known or the owner is the zero address (renounced).

Amounts are exact integers in the chain's base units.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

OWNER = "owner"  # the config's special address (indexer.config.OWNER)
ZERO = "0x" + "0" * 40
TOTAL, CIRCULATING, FROZEN = "total", "circulating", "frozen"
NON_CIRCULATING = "non_circulating"
RESERVED_CLASSES = (TOTAL, CIRCULATING, FROZEN, NON_CIRCULATING)  # not usable as a config label


def resolve(entries: Iterable[tuple[str, str]], owner: str | None) -> list[tuple[str, str]]:
    """(address, label) of the configured entries with `owner` replaced by the current owner,
    each account once (the first entry naming it wins); `owner` dropped while unknown or zero."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for address, label in entries:
        if address == OWNER:
            if owner is None or owner == ZERO:
                continue
            address = owner
        if address not in seen:
            seen.add(address)
            out.append((address, label))
    return out


@dataclass(frozen=True, slots=True)
class SupplyClasses:
    total: int
    non_circulating: Mapping[str, int]  # label -> raw (every configured label, sorted; 0 if none)
    frozen: int  # frozen accounts that carry no label
    circulating: int
    accounts: Mapping[str, str]  # address -> the one class it was subtracted in

    @property
    def non_circulating_total(self) -> int:
        return sum(self.non_circulating.values())

    def by_class(self) -> dict[str, int]:
        """class -> raw: total, circulating, frozen and each label (the metric's `class` values)."""
        return {TOTAL: self.total, CIRCULATING: self.circulating, FROZEN: self.frozen, **self.non_circulating}


def classify(
    total: int,
    labelled: Sequence[tuple[str, str]],
    balances: Mapping[str, int],
    frozen: Mapping[str, int],
    labels: Iterable[str] = (),
) -> SupplyClasses:
    """Classes from the total supply, the resolved labelled accounts (`resolve`) with `balances`
    holding each one's balance, and the frozen accounts with their balances. `labels`: every
    configured label, listed (at 0) even when no account resolves to it."""
    accounts: dict[str, str] = {}
    by_label: dict[str, int] = dict.fromkeys(labels, 0)
    for address, label in labelled:
        if address in accounts:
            continue
        if label in RESERVED_CLASSES:
            raise ValueError(f"label {label!r} is reserved")
        accounts[address] = label
        by_label[label] = by_label.get(label, 0) + balances[address]
    frozen_raw = 0
    for address, raw in frozen.items():
        if address not in accounts:
            accounts[address] = FROZEN
            frozen_raw += raw
    non_circulating = dict(sorted(by_label.items()))
    circulating = total - frozen_raw - sum(non_circulating.values())
    return SupplyClasses(total, non_circulating, frozen_raw, circulating, accounts)
