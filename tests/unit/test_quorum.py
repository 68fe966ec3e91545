"""`indexer.quorum.judge`: which endpoints decide whether a final block changed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.quorum import Overturned, Undecided, Upheld, describe, judge, quorum

OLD, NEW, OTHER = "0xold", "0xnew", "0xother"


def test_quorum_is_more_than_half() -> None:
    assert [quorum(n) for n in range(1, 7)] == [1, 2, 2, 3, 3, 4]


def test_one_endpoint_is_the_chain() -> None:
    # The bug this replaces: with one endpoint its new answer was "outvoted" by its own old one.
    assert judge(OLD, {"a": NEW}, 1) == Overturned(NEW)
    assert judge(OLD, {"a": OLD}, 1) == Upheld(frozenset())
    assert judge(OLD, {"a": None}, 1) == Overturned(None)  # the block is gone
    assert judge(None, {"a": NEW}, 1) == Overturned(NEW)  # a block in a slot held as empty
    assert isinstance(judge(OLD, {}, 1), Undecided)


def test_three_endpoints_outvote_one_liar() -> None:
    assert judge(OLD, {"a": OLD, "b": OLD, "c": NEW}, 3) == Upheld(frozenset({"c"}))
    assert judge(OLD, {"a": OLD, "b": OLD}, 3) == Upheld(frozenset())  # c down: still a quorum


def test_a_majority_on_the_new_hash_is_a_violation() -> None:
    assert judge(OLD, {"a": NEW, "b": NEW, "c": OLD}, 3) == Overturned(NEW)
    assert judge(OLD, {"a": NEW, "b": NEW}, 3) == Overturned(NEW)  # c down: the majority still says it


def test_a_tie_or_a_split_with_every_endpoint_answering_is_a_violation() -> None:
    assert judge(OLD, {"a": OLD, "b": NEW}, 2) == Overturned(NEW)
    assert isinstance(judge(OLD, {"a": OLD, "b": NEW, "c": OTHER}, 3), Overturned)


def test_too_few_answers_decide_nothing() -> None:
    assert isinstance(judge(OLD, {"a": NEW}, 2), Undecided)
    assert isinstance(judge(OLD, {"a": OLD}, 2), Undecided)
    assert isinstance(judge(OLD, {"a": OLD, "c": NEW}, 3), Undecided)
    assert isinstance(judge(OLD, {"a": NEW}, 3), Undecided)


def test_no_endpoint_is_an_error() -> None:
    with pytest.raises(ValueError):
        judge(OLD, {}, 0)


def test_describe_names_every_endpoint() -> None:
    text = describe({"a": NEW, "b": NEW, "c": None})
    assert text == f"{NEW} from a, b; no block from c"
    assert describe({}) == "no endpoint answered"


@given(
    n=st.integers(1, 6),
    answers=st.lists(st.sampled_from([OLD, NEW, OTHER, None, "down"]), min_size=6, max_size=6),
)
def test_verdicts_respect_the_quorum(n: int, answers: list[str | None]) -> None:
    votes = {f"e{i}": v for i, v in enumerate(answers[:n]) if v != "down"}
    verdict = judge(OLD, votes, n)
    keep = sum(v == OLD for v in votes.values())
    match verdict:
        case Upheld(liars=liars):
            assert keep >= quorum(n)  # only a quorum upholds
            assert liars == {ep for ep, v in votes.items() if v != OLD}
            assert len(liars) < quorum(n)  # and a liar is always a minority
        case Overturned(new=new):
            assert keep < quorum(n)
            assert new != OLD
            assert sum(v == new for v in votes.values()) >= quorum(n) or len(votes) == n
        case Undecided():
            assert keep < quorum(n) and len(votes) < n
