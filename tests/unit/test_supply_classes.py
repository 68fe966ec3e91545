"""Supply classes (indexer.supply_classes): exact, each account subtracted once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.supply_classes import FROZEN, ZERO, classify, resolve

OWNER_ADDR = "0x" + "0a" * 20
TREASURY = "0x" + "0b" * 20
LOCK = "0x" + "0c" * 20
ALICE = "0x" + "0d" * 20


def test_resolve_follows_the_owner_and_keeps_the_first_entry() -> None:
    entries = [(TREASURY, "treasury"), ("owner", "issuer"), (LOCK, "bridge_lock")]
    assert resolve(entries, OWNER_ADDR) == [
        (TREASURY, "treasury"),
        (OWNER_ADDR, "issuer"),
        (LOCK, "bridge_lock"),
    ]
    # the owner is the treasury: the first entry (treasury) wins
    assert resolve(entries, TREASURY) == [(TREASURY, "treasury"), (LOCK, "bridge_lock")]
    # no owner known, or renounced: `owner` is skipped
    assert resolve(entries, None) == resolve(entries, ZERO) == [(TREASURY, "treasury"), (LOCK, "bridge_lock")]


def test_classes_exact_and_label_wins_over_frozen() -> None:
    labelled = [(TREASURY, "treasury"), (OWNER_ADDR, "issuer"), (LOCK, "treasury")]
    balances = {TREASURY: 7, OWNER_ADDR: 100, LOCK: 3}
    frozen = {TREASURY: 7, ALICE: 11}  # the treasury is also frozen: counted once, as treasury
    c = classify(1000, labelled, balances, frozen, labels=["treasury", "issuer", "redemption"])
    assert dict(c.non_circulating) == {"issuer": 100, "redemption": 0, "treasury": 10}
    assert c.frozen == 11
    assert c.circulating == 1000 - 110 - 11
    assert c.accounts == {TREASURY: "treasury", OWNER_ADDR: "issuer", LOCK: "treasury", ALICE: FROZEN}
    assert c.by_class() == {
        "total": 1000,
        "circulating": 879,
        "frozen": 11,
        "issuer": 100,
        "redemption": 0,
        "treasury": 10,
    }


def test_reserved_label_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        classify(1, [(TREASURY, "frozen")], {TREASURY: 1}, {})


addresses = st.sampled_from([f"0x{i:040x}" for i in range(8)])
labels = st.sampled_from(["treasury", "bridge_lock", "issuer", "redemption"])
amounts = st.integers(min_value=0, max_value=10**40)


@given(
    st.lists(st.tuples(st.one_of(addresses, st.just("owner")), labels), max_size=8),
    st.one_of(st.none(), addresses),
    st.dictionaries(addresses, amounts),
    st.dictionaries(addresses, amounts),
    st.integers(min_value=0, max_value=10**42),
)
def test_classes_add_up_and_nothing_is_subtracted_twice(
    entries: list[tuple[str, str]],
    owner: str | None,
    balances: dict[str, int],
    frozen_set: dict[str, int],
    total: int,
) -> None:
    labelled = resolve(entries, owner)
    balance = {a: balances.get(a, 0) for a, _ in labelled} | {a: balances.get(a, 0) for a in frozen_set}
    frozen = {a: balance[a] for a in frozen_set}
    c = classify(total, labelled, balance, frozen)
    assert c.circulating + c.frozen + sum(c.non_circulating.values()) == c.total == total
    # every account subtracted at most once: the subtracted sum is the sum over distinct accounts
    subtracted = {a for a, _ in labelled} | set(frozen)
    assert set(c.accounts) == subtracted
    assert c.total - c.circulating == sum(balance[a] for a in subtracted)
    # a labelled account is never counted as frozen
    assert c.frozen == sum(v for a, v in frozen.items() if a not in {x for x, _ in labelled})
