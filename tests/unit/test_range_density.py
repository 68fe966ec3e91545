from hypothesis import given
from hypothesis import strategies as st

from indexer.chains.ranges import size_for_density


def test_dense_chain_shrinks_to_target() -> None:
    # 500 logs per block, target 2000 logs per request -> 4 blocks
    assert size_for_density(blocks_seen=10, logs_seen=5000, target_logs=2000, ceiling=2000) == 4


def test_nothing_seen_uses_ceiling() -> None:
    assert size_for_density(blocks_seen=0, logs_seen=0, target_logs=2000, ceiling=2000) == 2000
    assert size_for_density(blocks_seen=50, logs_seen=0, target_logs=2000, ceiling=2000) == 2000


@given(st.integers(0, 10**6), st.integers(0, 10**8), st.integers(1, 10**5), st.integers(1, 10**5))
def test_always_within_bounds(blocks: int, logs: int, target: int, ceiling: int) -> None:
    size = size_for_density(blocks_seen=blocks, logs_seen=logs, target_logs=target, ceiling=ceiling)
    assert 1 <= size <= ceiling
