"""The hash-linked window and `reconcile`, on deterministic fork trees, real mainnet forks and
random fork histories (hypothesis).

Fork trees name blocks f"{branch}-{number}"; a branch forks off another one at a given block.
`follow()` plays the follower's loop: reconcile, answer NeedParent by fetching the canonical
header at (or, for skipped slots, nearest below) the asked number and prepending it, then apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from indexer.model import BlockRef
from indexer.reorg import (
    Advance,
    Decision,
    Inconsistent,
    NeedParent,
    Reorg,
    Violation,
    Window,
    apply,
    check_link,
    linked,
    reconcile,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --------------------------------------------------------------------------------------------
# Fork-tree helpers


def branch(name: str, numbers: Sequence[int], parent: BlockRef | None) -> list[BlockRef]:
    """Blocks `name-n` for each n in `numbers` (ascending), the first one a child of `parent`."""
    out: list[BlockRef] = []
    prev_hash = parent.hash if parent is not None else f"{name}-genesis-parent"
    for n in numbers:
        ref = BlockRef(number=n, hash=f"{name}-{n}", parent_hash=prev_hash, timestamp=1_700_000_000 + n)
        out.append(ref)
        prev_hash = ref.hash
    return out


def by_number(refs: Sequence[BlockRef]) -> dict[int, BlockRef]:
    return {r.number: r for r in refs}


class Chain:
    """The canonical chain as a node would serve it (numbers may skip, as Solana slots do)."""

    def __init__(self, refs: Sequence[BlockRef]) -> None:
        assert linked(refs), "test bug: canonical chain must be hash-linked"
        self.refs = list(refs)

    @property
    def head(self) -> BlockRef:
        return self.refs[-1]

    def at_or_below(self, number: int) -> BlockRef:
        found = [r for r in self.refs if r.number <= number]
        assert found, f"follower asked for block {number}, below the chain's first block"
        return found[-1]

    def above(self, number: int) -> list[BlockRef]:
        return [r for r in self.refs if r.number > number]


@dataclass
class Followed:
    window: Window
    decision: Decision
    asked: list[int] = field(default_factory=list)


def follow(window: Window, chain: Chain, candidates: Sequence[BlockRef], max_fetches: int = 500) -> Followed:
    """One follower step: reconcile, fetch parents while asked, apply Advance/Reorg."""
    cands = list(candidates)
    asked: list[int] = []
    for _ in range(max_fetches):
        decision = reconcile(window, cands)
        match decision:
            case NeedParent(number=n):
                asked.append(n)
                cands.insert(0, chain.at_or_below(n))
            case Advance() | Reorg():
                return Followed(apply(window, decision), decision, asked)
            case Inconsistent() | Violation():
                return Followed(window, decision, asked)
    raise AssertionError(f"follower loop did not terminate; asked for {asked[:20]}...")


def read_from_tip(window: Window, chain: Chain) -> list[BlockRef]:
    """What the follower reads: canonical headers above its tip, or the head when none are."""
    tip = window.tip
    assert tip is not None
    return chain.above(tip.number) or [chain.head]


def hashes(refs: Sequence[BlockRef]) -> list[str]:
    return [r.hash for r in refs]


A = branch("a", range(0, 11), None)  # a-0 .. a-10


def window_of(refs: Sequence[BlockRef], finalized: int = -1) -> Window:
    w = Window(tuple(refs), finalized)
    assert w.is_linked()
    return w


# --------------------------------------------------------------------------------------------
# Extending


def test_empty_window_accepts_any_linked_candidates() -> None:
    assert reconcile(Window(), A[:3]) == Advance(tuple(A[:3]))


def test_no_candidates_is_an_empty_advance() -> None:
    assert reconcile(window_of(A), []) == Advance(())


def test_extend_by_children_of_the_tip() -> None:
    w = window_of(A[:6])
    d = reconcile(w, A[6:9])
    assert d == Advance(tuple(A[6:9]))
    w2 = apply(w, d)
    assert hashes(w2.refs) == [f"a-{n}" for n in range(9)]
    assert w2.is_linked()


def test_unchanged_head_is_an_empty_advance() -> None:
    assert reconcile(window_of(A), [A[-1]]) == Advance(())


def test_overlapping_reread_only_indexes_the_new_blocks() -> None:
    w = window_of(A[:7])
    assert reconcile(w, A[3:]) == Advance(tuple(A[7:]))


def test_candidates_starting_below_the_window_bottom_still_extend_it() -> None:
    # The window was pruned to a-5.. (anchor a-5); a re-read starting at a-3 links through a-5.
    w = window_of(A[5:8], finalized=5)
    assert reconcile(w, A[3:]) == Advance(tuple(A[8:]))


def test_candidates_that_skip_blocks_above_the_tip_are_walked_back_to_the_tip() -> None:
    # The follower only got the newest headers (e.g. from a head subscription): a-8, a-9, a-10
    # while its tip is a-5. It must ask for a-7 then a-6, not for a-5 (prepending a-5 to
    # a-8.. would not be hash-linked and would loop on Inconsistent forever).
    chain = Chain(A)
    w = window_of(A[:6])
    f = follow(w, chain, A[8:])
    assert f.asked == [7, 6]
    assert f.decision == Advance(tuple(A[6:]))
    assert f.window.refs == tuple(A)


# --------------------------------------------------------------------------------------------
# Reorgs


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 10])
def test_reorg_of_depth_n_walks_back_one_parent_at_a_time(depth: int) -> None:
    fork = 10 - depth  # last common block
    b = branch("b", range(fork + 1, 13), A[fork])  # the new canonical chain is 2 blocks longer
    chain = Chain(A[: fork + 1] + b)
    w = window_of(A)
    f = follow(w, chain, read_from_tip(w, chain))  # reads b-11, b-12
    # It asks for 10, 9, ... down to the first block of the new branch (fork + 1).
    assert f.asked == list(range(10, fork, -1))
    assert f.decision == Reorg(A[fork], tuple(A[fork + 1 :]), tuple(b))
    assert isinstance(f.decision, Reorg) and f.decision.depth == depth
    assert f.window.refs == tuple(chain.refs)


def test_reorg_seen_in_an_overlapping_read_needs_no_fetch() -> None:
    b = branch("b", range(8, 12), A[7])
    w = window_of(A)
    d = reconcile(w, [A[6], A[7], *b])
    assert d == Reorg(A[7], tuple(A[8:]), tuple(b))


def test_head_went_back_on_the_same_branch() -> None:
    # The chain is now a-0..a-7: a-8..a-10 are gone and nothing replaces them.
    chain = Chain(A[:8])
    w = window_of(A)
    f = follow(w, chain, read_from_tip(w, chain))
    assert f.asked == []
    assert f.decision == Reorg(A[7], tuple(A[8:]), ())
    assert f.window.refs == tuple(A[:8])


def test_head_went_back_onto_a_shorter_branch() -> None:
    b = branch("b", [7], A[6])
    chain = Chain(A[:7] + b)
    w = window_of(A)
    f = follow(w, chain, read_from_tip(w, chain))  # reads the head b-7
    assert f.decision == Reorg(A[6], tuple(A[7:]), tuple(b))
    assert f.window.tip == b[0]
    assert f.window.is_linked()


def test_reorg_across_the_whole_window_down_to_the_anchor() -> None:
    w = window_of(A, finalized=-1).finalize(4)  # anchor a-4
    assert w.bottom == A[4]
    b = branch("b", range(5, 12), A[4])
    chain = Chain(A[:5] + b)
    f = follow(w, chain, read_from_tip(w, chain))
    assert f.decision == Reorg(A[4], tuple(A[5:]), tuple(b))
    assert f.window.refs == tuple([A[4], *b])


def test_fork_just_above_finalized_is_a_reorg() -> None:
    w = window_of(A, finalized=6)  # not pruned yet: a-6 is final, a-7.. are not
    b = branch("b", range(7, 11), A[6])
    f = follow(w, Chain(A[:7] + b), b)
    assert f.decision == Reorg(A[6], tuple(A[7:]), tuple(b))


# --------------------------------------------------------------------------------------------
# Inconsistent reads and finality violations


def test_candidates_not_linked_among_themselves_are_inconsistent() -> None:
    w = window_of(A[:6])
    b = branch("b", range(6, 9), A[5])
    torn = [A[6], b[1], b[2]]  # the chain switched from a to b while the follower was reading
    assert isinstance(reconcile(w, torn), Inconsistent)


def test_candidates_out_of_order_are_inconsistent() -> None:
    w = window_of(A[:6])
    assert isinstance(reconcile(w, [A[7], A[6]]), Inconsistent)


def test_candidates_with_a_missing_block_are_inconsistent() -> None:
    w = window_of(A[:6])
    assert isinstance(reconcile(w, [A[6], A[8]]), Inconsistent)


@pytest.mark.parametrize("fork", [5, 4, 2])
def test_fork_at_or_below_finalized_is_a_violation_and_changes_nothing(fork: int) -> None:
    # Finalized height 6; the new chain forks off a-`fork`, so a-`fork+1` <= 6 would be orphaned.
    w = window_of(A, finalized=6)
    b = branch("b", range(fork + 1, 12), A[fork])
    chain = Chain(A[: fork + 1] + b)
    f = follow(w, chain, read_from_tip(w, chain))
    assert isinstance(f.decision, Violation)
    assert f.decision.finalized == 6
    assert f.decision.fork_point <= 6
    assert f.window == w


def test_fork_below_the_pruned_anchor_is_a_violation() -> None:
    w = window_of(A).finalize(6)
    assert w.bottom == A[6]
    b = branch("b", range(3, 12), A[2])
    chain = Chain(A[:3] + b)
    f = follow(w, chain, read_from_tip(w, chain))
    assert isinstance(f.decision, Violation)
    assert f.decision.finalized == 6
    assert f.window == w
    assert all(n >= 6 for n in f.asked), "never asks for a block below the window"


def test_different_block_at_the_finalized_height_is_a_violation() -> None:
    w = window_of(A, finalized=6)
    other = BlockRef(6, "x-6", A[5].hash)
    d = reconcile(w, [other])
    assert isinstance(d, Violation)
    assert d.fork_point == 6 and d.finalized == 6


# --------------------------------------------------------------------------------------------
# Solana-style gaps: numbers skip, parent hashes still link


SLOTS = [100, 101, 103, 106, 107, 110]
S = branch("s", SLOTS, None)


def test_gapped_window_is_linked_and_extends_over_skipped_slots() -> None:
    w = window_of(S[:4])  # 100 101 103 106
    assert w.at(102) is None and w.at(103) == S[2]
    assert w.above(101) == tuple(S[2:4])
    assert reconcile(w, S[4:]) == Advance(tuple(S[4:]))


def test_gapped_reorg_onto_blocks_in_previously_skipped_slots() -> None:
    # New branch from slot 101 fills slots 102 and 104 that the old branch skipped.
    t = branch("t", [102, 104, 105, 111], S[1])
    chain = Chain(S[:2] + t)
    w = window_of(S)
    f = follow(w, chain, read_from_tip(w, chain))  # reads t-111 only (above 110)
    assert f.decision == Reorg(S[1], tuple(S[2:]), tuple(t))
    assert f.window.refs == tuple(chain.refs)
    # NeedParent(n) is answered with the nearest block at or below n: 110 -> t-105, 104 -> t-104,
    # 103 -> t-102.
    assert f.asked == [110, 104, 103]


def test_gapped_violation_when_a_finalized_block_is_orphaned() -> None:
    w = window_of(S, finalized=106)
    t = branch("t", [102, 103, 106, 107, 111], S[1])
    chain = Chain(S[:2] + t)
    f = follow(w, chain, read_from_tip(w, chain))
    assert isinstance(f.decision, Violation)
    assert f.window == w


def test_gapped_violation_when_a_skipped_finalized_slot_gets_a_block() -> None:
    # Slots up to 102 are final, and 102 was empty; now the chain has a block there. Nothing
    # final is orphaned (103 is not final), but the finalized history changed.
    w = window_of(S, finalized=102)
    t = branch("t", [102, 104, 111], S[1])
    chain = Chain(S[:2] + t)
    f = follow(w, chain, read_from_tip(w, chain))
    assert isinstance(f.decision, Violation)
    assert f.decision.fork_point == 102
    assert f.window == w


def test_window_lagging_behind_finality_accepts_blocks_above_its_tip() -> None:
    # Finality (slot 108) is ahead of the window (tip 106) while the follower catches up: the
    # blocks above the tip are new to the window, not a change of its finalized history.
    w = window_of(S[:4]).finalize(108)
    assert w.refs == (S[3],)
    assert reconcile(w, S[4:]) == Advance(tuple(S[4:]))


def test_finalize_prunes_but_keeps_the_anchor() -> None:
    w = window_of(A)
    w6 = w.finalize(6)
    assert w6.finalized == 6 and w6.bottom == A[6] and w6.refs == tuple(A[6:])
    # Finality never goes back.
    assert w6.finalize(3) == w6
    # With gaps, the anchor is the highest block at or below the finalized slot.
    g = window_of(S).finalize(105)
    assert g.finalized == 105 and g.refs == tuple(S[2:])
    # Finalized above the tip keeps the tip as the anchor.
    top = window_of(A).finalize(50)
    assert top.refs == (A[-1],) and top.finalized == 50
    # Nothing final yet: nothing pruned.
    assert window_of(A).finalize(-1).refs == tuple(A)


def test_finalized_window_still_follows_a_reorg_above_the_anchor() -> None:
    w = window_of(A).finalize(6)
    b = branch("b", range(8, 13), A[7])
    chain = Chain(A[:8] + b)
    f = follow(w, chain, read_from_tip(w, chain))
    assert f.decision == Reorg(A[7], tuple(A[8:]), tuple(b))
    assert f.window.bottom == A[6]


def test_rollback_to_a_block_not_in_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the window"):
        window_of(A).rollback(BlockRef(5, "zz-5", A[4].hash))


# --------------------------------------------------------------------------------------------
# What a violation names: the final height where the window and the chain disagree


def test_violation_names_the_orphaned_final_block_and_its_replacement() -> None:
    w = window_of(A, finalized=6)
    b = branch("b", range(5, 12), A[4])
    f = follow(w, Chain(A[:5] + b), b[-2:])
    assert isinstance(f.decision, Violation)
    v = f.decision
    # A read that shows the orphaned final block with its ancestor names the exact fork.
    g = reconcile(w, [A[4], *b])
    assert isinstance(g, Violation) and (g.height, g.stored, g.new) == (5, "a-5", "b-5")
    assert "forks after block 4" in g.detail
    # The walk back stops at the first final height that differs (6), not at the fork (5).
    assert (v.height, v.stored, v.new) == (6, "a-6", "b-6")
    assert v.height <= v.finalized


def test_violation_at_a_finalized_skipped_slot_names_no_stored_block() -> None:
    w = window_of(S, finalized=102)
    t = branch("t", [102, 104, 111], S[1])
    f = follow(w, Chain(S[:2] + t), [t[-1]])
    assert isinstance(f.decision, Violation)
    assert (f.decision.height, f.decision.stored, f.decision.new) == (102, None, "t-102")


def test_violation_below_the_anchor_names_the_anchor() -> None:
    w = window_of(A).finalize(6)
    b = branch("b", range(3, 12), A[2])
    f = follow(w, Chain(A[:3] + b), [b[-1]])
    assert isinstance(f.decision, Violation)
    assert (f.decision.height, f.decision.stored) == (6, "a-6")
    assert f.decision.new in ("b-6", None)


# --------------------------------------------------------------------------------------------
# Forks that reuse slot numbers (Solana): the recorded ancestor is the last common block


@pytest.mark.parametrize("fork_at", [100, 101, 103, 106])
@pytest.mark.parametrize("new_slots", [(1, 1, 1), (2, 1, 3), (1,), (4, 1)])
@pytest.mark.parametrize("reads", ["from_tip", "head_only", "overlap"])
def test_slot_reusing_fork_records_the_exact_ancestor(
    fork_at: int, new_slots: tuple[int, ...], reads: str
) -> None:
    old = window_of(S, finalized=100)  # 100 101 103 106 107 110
    ancestor = next(r for r in S if r.number == fork_at)
    numbers, n = [], fork_at
    for g in new_slots:  # the new branch refills slot numbers the old one used (or skipped)
        n += g
        numbers.append(n)
    t = branch("t", numbers, ancestor)
    chain = Chain([r for r in S if r.number <= fork_at] + t)
    if reads == "head_only":
        cands = [chain.head]
    elif reads == "overlap":
        cands = [r for r in chain.refs if r.number > old.tip.number - 6] or [chain.head]  # type: ignore[union-attr]
    else:
        cands = read_from_tip(old, chain)
    f = follow(old, chain, cands)
    assert isinstance(f.decision, Reorg), f.decision
    assert f.decision.ancestor == ancestor
    assert f.decision.orphaned == tuple(r for r in S if r.number > fork_at)
    assert f.window.refs == tuple(chain.refs)


# --------------------------------------------------------------------------------------------
# A range fetched without every header must follow the cursor (backfill)


def test_link_to_the_cursor() -> None:
    cursor = A[5]
    assert check_link(cursor, (5, "a-5"), finalized=5) is None
    # The cursor block was replaced (EVM: the range's first block names another parent).
    v = check_link(cursor, (5, "b-5"), finalized=5)
    assert isinstance(v, Violation)
    assert (v.height, v.stored, v.new, v.finalized) == (5, "a-5", "b-5", 5)


def test_link_breaks_on_solana_parent_slots() -> None:
    cursor = S[3]  # slot 106
    # The range's first block descends from slot 103: block 106 is gone from the chain.
    v = check_link(cursor, (103, "s-103"), finalized=106)
    assert isinstance(v, Violation)
    assert (v.height, v.stored, v.new) == (106, "s-106", None)
    # The first block descends from slot 108, which the index holds as empty: a block appeared.
    v = check_link(cursor, (108, "x-108"), finalized=110)
    assert isinstance(v, Violation)
    assert (v.height, v.stored, v.new) == (108, None, "x-108")
    # The same parent slot with another blockhash.
    v = check_link(cursor, (106, "x-106"), finalized=106)
    assert isinstance(v, Violation) and v.new == "x-106"


def test_link_break_above_finality_is_only_inconsistent() -> None:
    assert isinstance(check_link(A[5], (5, "b-5"), finalized=4), Inconsistent)


def follows_of(chain: Sequence[BlockRef], start: int) -> tuple[int, str]:
    """What a source reports for a range starting at `start`: the first block's parent, or
    the newest block below the range when it has none."""
    for prev, ref in zip([None, *chain], chain, strict=False):
        if ref.number >= start:
            assert prev is not None
            return prev.number, prev.hash
    last = [r for r in chain if r.number < start][-1]
    return last.number, last.hash


# --------------------------------------------------------------------------------------------
# Real mainnet forks (tests/fixtures/reorg_*.json)


def _h(number: int, hash_: str, parent: str) -> BlockRef:
    return BlockRef(number=number, hash=hash_, parent_hash=parent)


@pytest.mark.parametrize("pair_index", [0, 1])
def test_real_uncle_pairs(pair_index: int) -> None:
    """Two mainnet blocks at one height (hashes recomputed from the headers). By the uncle rule
    the uncle's parent is the including block's ancestor at that height - 1, so the canonical
    block at the uncle's height has the same parent."""
    data = json.loads((FIXTURES / "reorg_uncle_pairs_decoded_verified.json").read_text())
    p = data["pairs"][pair_index]
    height = p["height"]
    parent = _h(height - 1, p["uncle_parentHash"], "0xunknown-grandparent")
    uncle = _h(height, p["uncle_hash_at_height"], parent.hash)
    canonical = _h(height, p["canonical_hash_at_height"], parent.hash)
    including = _h(p["including_block"]["number"], p["including_block"]["hash"], canonical.hash)
    assert int(p["uncle_header_full"]["number"], 16) == height

    # We had indexed the uncle; the chain then builds on the other block.
    w = window_of([parent, uncle])
    chain = Chain([parent, canonical, including])
    f = follow(w, chain, read_from_tip(w, chain))  # reads the including block only
    assert f.asked == [height]
    assert f.decision == Reorg(parent, (uncle,), (canonical, including))
    assert f.window.refs == (parent, canonical, including)

    # Already final at the uncle's height: the same fork is a violation.
    f2 = follow(window_of([parent, uncle], finalized=height), chain, read_from_tip(w, chain))
    assert isinstance(f2.decision, Violation)


def test_real_two_consecutive_depth1_reorgs_from_the_flashbots_log() -> None:
    """flashbots/reorg-monitor README log: main chain 0x5fab (13015940) <- 0x4536 (13015941)
    <- 0x8c1c (13015942); 0xed1d is an uncle of 0x4536 and 0x0200 an uncle of 0x8c1c, "two
    depth-1 reorgs after one another" (so 0x0200 is at 13015941 on top of 0x5fab)."""
    data = json.loads((FIXTURES / "reorg_testcases_extracted.json").read_text())
    log = data["readme_monitor_log_excerpt"]
    full = {
        h[:6]: h
        for h in [
            "0x5fab153450d7a2fe62886e0b9a3692903011328a10e7dda4cf4511f5782dbaee",
            "0x45365dd8b21a99256fd7c2249f894665880e6a21fbd2e05a865973ca74a06b46",
            "0x8c1c8d55b7ada8381b3d351b520f6c54b37bd7e3ad0b4fd05a546d868d2b6561",
            "0xed1d32f5ceacda53a128a1acc6aa1c631b78cacd0237955afbbf527a7a90e474",
            "0x020063e320774ebd7402dc5675f137925a013715f1d7ebbd52c9e1a2a77f99a9",
        ]
    }
    for h in full.values():
        assert h in log  # the hashes are the log's, not made up here
    grandparent = _h(13015939, "0xunknown-13015939", "0xunknown-13015938")
    m40 = _h(13015940, full["0x5fab"], grandparent.hash)
    m41 = _h(13015941, full["0x4536"], m40.hash)
    m42 = _h(13015942, full["0x8c1c"], m41.hash)
    u40 = _h(13015940, full["0xed1d"], grandparent.hash)
    u41 = _h(13015941, full["0x0200"], m40.hash)

    # 1) we indexed the uncle 0xed1d; the chain continues with 0x5fab <- 0x4536
    w = window_of([grandparent, u40])
    f = follow(w, Chain([grandparent, m40, m41]), [m41])
    assert f.decision == Reorg(grandparent, (u40,), (m40, m41))
    assert f.decision.depth == 1

    # 2) we indexed the uncle 0x0200 at 13015941 instead; 0x8c1c builds on 0x4536
    w = window_of([grandparent, m40, u41])
    f = follow(w, Chain([grandparent, m40, m41, m42]), [m42])
    assert f.decision == Reorg(m40, (u41,), (m41, m42))
    assert f.decision.depth == 1
    assert f.window.refs == (grandparent, m40, m41, m42)


def _flashbots_cases_with_heights() -> list[tuple[str, dict[int, list[str]], dict[str, int]]]:
    data = json.loads((FIXTURES / "reorg_testcases_extracted.json").read_text())
    out = []
    for case in data["test_cases"]:
        exp = case["expected_result"]
        if not exp:
            continue
        at: dict[int, list[str]] = {}
        for info in case["block_info"]:
            comment = info["comment"]
            if info["value"].startswith("0x") and comment:
                at.setdefault(int(comment.split(",")[0]), []).append(info["value"])
        span = range(exp["StartBlock"], exp["EndBlock"] + 1)
        if all(len(at.get(n, [])) >= 2 for n in span):
            out.append((case["go_var"], at, exp))
    return out


FLASHBOTS = _flashbots_cases_with_heights()


def test_flashbots_cases_with_annotated_competing_hashes_are_found() -> None:
    assert {name for name, _, _ in FLASHBOTS} == {
        "Test_13017535_13017536_d2_b5",
        "Test_13018369_13018370_d2_b4",
    }


@pytest.mark.parametrize(("name", "at", "exp"), FLASHBOTS, ids=[c[0] for c in FLASHBOTS])
def test_real_flashbots_competing_hashes(name: str, at: dict[int, list[str]], exp: dict[str, int]) -> None:
    """Real competing hashes at real heights (flashbots/reorg-monitor test constants). The data
    does not say which hash builds on which, so branch X takes the first-listed hash at each
    height of the reorg and branch Y the last-listed one; the expected depth is flashbots'."""
    start, end = exp["StartBlock"], exp["EndBlock"]
    base = _h(start - 1, f"0xcommon-{start - 1}", f"0xcommon-{start - 2}")
    x: list[BlockRef] = [base]
    y: list[BlockRef] = [base]
    for n in range(start, end + 1):
        x.append(_h(n, at[n][0], x[-1].hash))
        y.append(_h(n, at[n][-1], y[-1].hash))
    assert x[1].hash != y[1].hash
    w = window_of(x)
    f = follow(w, Chain(y), read_from_tip(w, Chain(y)))
    assert isinstance(f.decision, Reorg)
    assert f.decision.depth == exp["Depth"]
    assert f.decision.ancestor == base
    assert [r.number for r in f.decision.orphaned] == list(range(start, end + 1))
    assert f.window.refs == tuple(y)


def test_real_headers_16000000_16000001_link() -> None:
    """Two real consecutive mainnet headers (erigon rpc-tests) extend a window holding the first."""
    refs = []
    for name in ("eth_getBlockByNumber__test_02.json", "eth_getBlockByNumber__test_04.json"):
        r = json.loads((FIXTURES / name).read_text())[0]["response"]["result"]
        refs.append(_h(int(r["number"], 16), r["hash"], r["parentHash"]))
    w = window_of(refs[:1])
    assert reconcile(w, refs[1:]) == Advance((refs[1],))
    # The same block with a flipped last hash digit is a different block: a one-block reorg
    # that needs its parent, which is the window's tip.
    fake = _h(16000001, refs[1].hash[:-1] + "0", refs[0].hash)
    assert fake != refs[1]
    w2 = apply(w, Advance((refs[1],)))
    assert reconcile(w2, [fake]) == Reorg(refs[0], (refs[1],), (fake,))


# --------------------------------------------------------------------------------------------
# Random fork histories


@dataclass
class Step:
    kind: str  # grow | switch | finalize
    back: int = 0  # switch: fork off the block `back` below the head; finalize: finalize `back` below
    gaps: tuple[int, ...] = ()  # number increments of the new blocks (all 1 unless gapped)


steps_st = st.one_of(
    st.builds(
        Step, st.just("grow"), st.just(0), st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple)
    ),
    st.builds(Step, st.just("switch"), st.integers(0, 9), st.lists(st.integers(1, 3), max_size=6).map(tuple)),
    st.builds(Step, st.just("finalize"), st.integers(0, 8)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gapped=st.booleans(),
    reads=st.sampled_from(["from_tip", "head_only", "overlap"]),
    steps=st.lists(steps_st, min_size=1, max_size=25),
)
def test_random_fork_histories_keep_the_invariants(gapped: bool, reads: str, steps: list[Step]) -> None:
    """`gapped`: numbers skip like Solana slots. `reads`: what the follower reads after the
    chain changed: the headers above its tip, only the head header (like a newHeads
    subscription, relying on NeedParent for the rest), or the headers from 4 below its tip
    (possibly below the window's pruned bottom)."""
    genesis = BlockRef(0, "g-0", "g-parent")
    canonical: list[BlockRef] = [genesis]
    window = Window((genesis,), finalized=0)
    finalized = 0
    branches = 0
    final_blocks: set[BlockRef] = {genesis}  # every canonical block ever at or below `finalized`

    def grow(base: list[BlockRef], name: str, gaps: tuple[int, ...]) -> list[BlockRef]:
        out = list(base)
        for g in gaps:
            tip = out[-1]
            n = tip.number + (g if gapped else 1)
            out.append(BlockRef(n, f"{name}-{n}", tip.hash))
        return out

    for step in steps:
        if step.kind == "finalize":
            # Any height, not only an existing block's (with gaps it may be a skipped slot).
            new_final = max(finalized, canonical[-1].number - step.back)
            before = window
            window = window.finalize(new_final)
            finalized = new_final
            final_blocks |= {r for r in canonical if r.number <= finalized}
            anchor = max((r for r in before.refs if r.number <= finalized), key=lambda r: r.number)
            assert window.bottom == anchor, "finalize keeps the highest block at or below finality"
            assert window.refs == tuple(r for r in before.refs if r.number >= anchor.number)
            continue

        branches += 1
        keep = len(canonical) if step.kind == "grow" else max(1, len(canonical) - step.back)
        new_chain = grow(canonical[:keep], f"b{branches}", step.gaps)
        if new_chain == canonical:
            continue

        old_set, new_set = set(canonical), set(new_chain)
        # The chain changed its finalized history if a block at or below `finalized` left it, or
        # a new block appeared at a finalized height the window had seen as empty (a skipped
        # slot). Above the window's tip a lagging follower cannot tell new from final.
        assert window.tip is not None
        seen_up_to = min(finalized, window.tip.number)
        expect_violation = any(r.number <= finalized for r in old_set - new_set) or any(
            r.number <= seen_up_to for r in new_set - old_set
        )

        before = window
        if reads == "head_only":
            candidates = [new_chain[-1]]
        elif reads == "overlap":
            candidates = [r for r in new_chain if r.number > window.tip.number - 4] or [new_chain[-1]]
        else:
            candidates = read_from_tip(window, Chain(new_chain))
        f = follow(window, Chain(new_chain), candidates)

        # Backfill's view of the same change: the index has read up to `seen_up_to` and holds
        # its last block there as the cursor; the next range (from seen_up_to + 1) must follow
        # that cursor exactly when the change leaves the final chain alone.
        cursor = max((r for r in before.refs if r.number <= seen_up_to), key=lambda r: r.number)
        link = check_link(cursor, follows_of(new_chain, seen_up_to + 1), finalized)
        if expect_violation:
            assert isinstance(link, Violation), link
            event("backfill link breaks")
            assert link.height <= finalized
            stored_at = before.at(link.height)
            assert link.stored == (stored_at.hash if stored_at else None)
        else:
            assert link is None, link
            event("backfill link holds")

        if expect_violation:
            assert isinstance(f.decision, Violation), f.decision
            event("Violation")
            v = f.decision
            assert v.finalized == finalized
            assert f.window == before, "a violation changes nothing"
            # It names a real disagreement at a final height: the window's block there is off
            # the new chain, or the new chain has a block where the window holds none.
            assert v.height <= finalized
            stored_at = before.at(v.height)
            assert v.stored == (stored_at.hash if stored_at else None)
            if stored_at is not None:
                assert stored_at not in new_set
            else:
                assert any(r.number == v.height for r in new_set)
            continue  # the chain halts; the model keeps the old chain and carries on

        assert isinstance(f.decision, Advance | Reorg), f.decision
        event(f"{type(f.decision).__name__} after {len(f.asked)} fetches")
        window = f.window
        canonical = new_chain
        assert window.is_linked()
        assert window.tip == canonical[-1]
        # The window is exactly the canonical chain from its bottom up.
        assert window.refs == tuple(r for r in canonical if r.number >= window.bottom.number)  # type: ignore[union-attr]
        orphaned = set(f.decision.orphaned) if isinstance(f.decision, Reorg) else set()
        assert orphaned == set(before.refs) - new_set, "orphaned = window blocks not on the canonical chain"
        assert not orphaned & final_blocks
        assert all(r.number > finalized for r in orphaned)
        new = f.decision.new
        assert set(new) == set(window.refs) - set(before.refs)
        assert window.finalized == finalized
