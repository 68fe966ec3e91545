"""The latest-only check decision (indexer/latest.py): compare only when both headers around the
reads are the same block and the index holds that very block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indexer.latest import Compare, Skip, decide
from indexer.model import BlockRef


def ref(n: int, tag: str = "a") -> BlockRef:
    return BlockRef(
        n, "0x" + f"{tag}{n:x}".rjust(64, "0"), "0x" + f"{tag}{n - 1:x}".rjust(64, "0"), 1_700_000_000 + 3 * n
    )


def test_same_block_held_by_the_index_is_compared() -> None:
    b = ref(100)
    assert decide(b, b, b.hash) == Compare(b)


def test_a_new_block_between_the_headers_is_skipped() -> None:
    d = decide(ref(100), ref(101), ref(100).hash)
    assert isinstance(d, Skip) and d.reason == "head_moved" and "100" in d.detail and "101" in d.detail


def test_a_reorg_at_the_same_height_between_the_headers_is_skipped() -> None:
    d = decide(ref(100, "a"), ref(100, "b"), ref(100, "a").hash)
    assert isinstance(d, Skip) and d.reason == "head_moved"


def test_a_missing_header_is_skipped() -> None:
    assert decide(None, ref(1), None) == Skip("head_moved", "the node returned no latest block")
    assert isinstance(decide(ref(1), None, ref(1).hash), Skip)


def test_a_block_the_index_does_not_hold_is_skipped() -> None:
    d = decide(ref(100), ref(100), None)
    assert isinstance(d, Skip) and d.reason == "not_indexed"


def test_the_index_on_another_fork_is_skipped() -> None:
    d = decide(ref(100, "a"), ref(100, "a"), ref(100, "c").hash)
    assert isinstance(d, Skip) and d.reason == "other_fork"


@given(
    st.integers(1, 10**9), st.integers(0, 3), st.sampled_from(["a", "b"]), st.sampled_from(["a", "b", None])
)
def test_compare_only_when_all_three_agree(n: int, moved: int, fork: str, held: str | None) -> None:
    before, after = ref(n, "a"), ref(n + moved, fork)
    stored = None if held is None else ref(n, held).hash
    d = decide(before, after, stored)
    agree = before == after and stored == before.hash
    assert isinstance(d, Compare) == agree
    if isinstance(d, Compare):
        assert d.block == before
