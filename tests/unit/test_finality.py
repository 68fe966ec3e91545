"""Finality rules: EVM tags and confirmation depths, Solana commitments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from indexer.config import EvmFinality, SolanaFinality
from indexer.finality import confirmations_behind, evm_finalized_height, solana_finalized_height

FINALIZED = EvmFinality(tag="finalized")
SAFE = EvmFinality(tag="safe")


@pytest.mark.parametrize("rule", [FINALIZED, SAFE], ids=["finalized", "safe"])
def test_tag_rule_uses_the_tagged_block(rule: EvmFinality) -> None:
    assert evm_finalized_height(rule, head=100, tagged=68) == 68
    assert evm_finalized_height(rule, head=100, tagged=100) == 100
    assert evm_finalized_height(rule, head=100, tagged=0) == 0


@pytest.mark.parametrize("rule", [FINALIZED, SAFE], ids=["finalized", "safe"])
def test_tag_rule_without_a_tagged_block_means_nothing_is_final(rule: EvmFinality) -> None:
    # e.g. a fresh devnet or a pre-merge node that answers the tag with null
    assert evm_finalized_height(rule, head=100, tagged=None) == -1
    assert evm_finalized_height(rule, head=0, tagged=None) == -1


def test_tagged_block_above_head_is_capped_at_head() -> None:
    # Head and tag read from different (load-balanced) nodes can disagree for a moment.
    assert evm_finalized_height(FINALIZED, head=100, tagged=103) == 100


@pytest.mark.parametrize(
    ("confirmations", "head", "expected"),
    [
        (12, 100, 88),
        (12, 12, 0),
        (12, 11, -1),  # not enough blocks yet: nothing is final
        (12, 0, -1),
        (1, 5, 4),
        (0, 100, 100),  # 0 confirmations: the head itself counts as final
        (0, 0, 0),
    ],
)
def test_confirmation_rule(confirmations: int, head: int, expected: int) -> None:
    rule = EvmFinality(confirmations=confirmations)
    assert evm_finalized_height(rule, head=head, tagged=None) == expected


def test_confirmation_rule_ignores_the_tag() -> None:
    rule = EvmFinality(confirmations=12)
    assert evm_finalized_height(rule, head=100, tagged=99) == 88
    assert evm_finalized_height(rule, head=100, tagged=3) == 88


@settings(max_examples=200)
@given(
    head=st.integers(0, 10**9),
    tagged=st.none() | st.integers(0, 10**9 + 100),
    confirmations=st.none() | st.integers(0, 100_000),
    tag=st.sampled_from(["finalized", "safe"]),
)
def test_finalized_height_is_never_above_head_and_at_least_minus_one(
    head: int, tagged: int | None, confirmations: int | None, tag: str
) -> None:
    rule = EvmFinality(confirmations=confirmations) if confirmations is not None else EvmFinality(tag=tag)  # type: ignore[arg-type]
    h = evm_finalized_height(rule, head=head, tagged=tagged)
    assert -1 <= h <= head
    if confirmations is not None:
        assert h == (head - confirmations if head >= confirmations else -1)
    elif tagged is None:
        assert h == -1
    else:
        assert h == min(tagged, head)


def test_finality_rule_needs_exactly_one_of_tag_or_confirmations() -> None:
    with pytest.raises(ValidationError):
        EvmFinality()
    with pytest.raises(ValidationError):
        EvmFinality(tag="finalized", confirmations=3)
    with pytest.raises(ValidationError):
        EvmFinality(confirmations=-1)


def test_solana_commitments() -> None:
    assert solana_finalized_height(SolanaFinality(commitment="finalized"), 1_000_050, 1_000_018) == 1_000_018
    assert solana_finalized_height(SolanaFinality(commitment="confirmed"), 1_000_050, 1_000_018) == 1_000_050
    assert solana_finalized_height(SolanaFinality(), 7, 3) == 3  # default: finalized


def test_solana_final_slot_never_above_the_confirmed_slot() -> None:
    # Two reads from different nodes: the finalized slot can momentarily be reported ahead of the
    # confirmed one; the confirmed slot is as far as the index has data.
    assert solana_finalized_height(SolanaFinality(commitment="finalized"), 90, 95) == 90


def test_confirmations_behind() -> None:
    assert confirmations_behind(100, 88) == 12
    assert confirmations_behind(100, 100) == 0
    assert confirmations_behind(100, -1) == 101
    assert confirmations_behind(5, 9) == 0


@pytest.mark.parametrize(
    ("enabled", "deferred", "indexed", "backfill", "want"),
    [
        (True, False, 0, 1, True),  # a first backfill, however short
        (True, False, 1_000_000, 1_000_001, True),  # more than doubles the indexed range
        (True, False, 1_000_000, 1_000_000, False),  # doubles it exactly: keep indexing per row
        (True, False, 1_000_000, 5_000, False),  # catching up after a restart
        (True, True, 1_000_000, 5_000, True),  # an interrupted deferral finishes deferred
        (False, False, 0, 10**9, False),  # disabled in config
        (False, True, 0, 10**9, False),  # disabled: a left-over deferral is built now
    ],
)
def test_should_defer_indexes(enabled: bool, deferred: bool, indexed: int, backfill: int, want: bool) -> None:
    from indexer.sync.follower import should_defer_indexes

    assert should_defer_indexes(enabled, deferred, indexed, backfill) is want
