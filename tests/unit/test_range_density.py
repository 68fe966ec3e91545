from hypothesis import given
from hypothesis import strategies as st

from indexer.chains.range_hints import MaxRange, RangeHint, RangeTooLarge, ResultCap, SuggestedRange
from indexer.chains.ranges import (
    COMMON_RESULT_CAP,
    DENSITY_WINDOW,
    HEADER_BATCH,
    PROBE_BLOCKS,
    SCARCE_TARGET,
    AdaptiveRange,
    ChunkSizer,
    size_for_density,
)


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


def test_sizer_probes_then_targets_the_density() -> None:
    sizer = ChunkSizer(target_logs=5000, ceiling=2000)
    assert sizer.next() == PROBE_BLOCKS  # nothing read yet: a short probe, not the whole ceiling
    sizer.observe(16, 8000)  # 500 logs a block
    assert sizer.next() == 10
    for _ in range(DENSITY_WINDOW):  # the chain goes quiet: recent ranges decide
        sizer.observe(10, 0)
    assert sizer.next() == 2000


def test_sparse_chain_uses_the_ceiling() -> None:
    sizer = ChunkSizer(target_logs=5000, ceiling=2000)
    sizer.observe(16, 1)
    assert sizer.next() == 2000


def test_refusal_takes_the_providers_hint() -> None:
    r = AdaptiveRange(2000)
    assert r.refused(2000, SuggestedRange(100, 399)) == 300
    r = AdaptiveRange(2000)
    assert r.refused(2000, MaxRange(500)) == 500
    for _ in range(10):  # a stated maximum is kept: never grows back above it
        r.succeeded(r.current)
    assert r.current == 500
    r = AdaptiveRange(2000)
    assert r.refused(2000, ResultCap(10000)) == 1000
    assert r.refused(1000, SuggestedRange(0, 4999)) == 500  # a suggestion no smaller: halve


@given(
    st.integers(1, 10**6),
    st.one_of(
        st.none(),
        st.builds(RangeTooLarge),
        st.builds(ResultCap, st.integers(1, 10**5)),
        st.builds(MaxRange, st.integers(1, 10**7)),
        st.builds(lambda a, n: SuggestedRange(a, a + n), st.integers(0, 10**6), st.integers(0, 10**7)),
    ),
)
def test_a_refusal_always_shrinks(size: int, hint: RangeHint | None) -> None:
    r = AdaptiveRange(10**6)
    new = r.refused(size, hint)
    assert 1 <= new <= r.maximum
    assert new < size or size == 1


def test_a_result_cap_is_learned_and_requests_fill_it() -> None:
    r = AdaptiveRange(2000)
    r.succeeded(2000, 1000)  # sparse: 0.5 logs a block
    # At the last reply's density 2,000 blocks fit the cap: the refusal says the chain got denser.
    assert r.refused(2000, ResultCap(10000)) == 1000
    r = AdaptiveRange(2000)
    r.succeeded(16, 8000)  # 500 logs a block
    assert r.refused(72, ResultCap(10000)) == 18  # 90% of the cap: 9,000 logs
    for _ in range(6):
        r.succeeded(18, 9000)
    assert r.current == 18  # never grows past the cap's fit


def test_scarce_requests_are_not_risked_over_the_common_cap() -> None:
    r = AdaptiveRange(2000)
    assert r.step(scarce=True) == 2000  # no density known yet: nothing to size by
    r.succeeded(16, 8000)  # 500 logs a block
    assert r.step() == 2000  # requests are cheap: the fetch's range is asked at once
    assert r.step(scarce=True) == COMMON_RESULT_CAP * 9 // 10 // 500  # 18 blocks, 9,000 logs
    r.refused(18, ResultCap(4000))  # a provider with a smaller cap: its own cap decides
    r.succeeded(r.current, 500 * r.current)
    assert r.step(scarce=True) == r.current == 4000 * 9 // 10 // 500


def test_scarce_requests_span_more_logs() -> None:
    sizer = ChunkSizer(target_logs=5000, ceiling=2000)
    assert sizer.probing
    sizer.observe(16, 8000)
    assert not sizer.probing
    assert sizer.next() == 10
    assert sizer.next(scarce=True) == SCARCE_TARGET // 500


def test_scarce_fetch_checks_its_headers_in_one_batch() -> None:
    # The bench's probe: blocks 0-15, the first two empty, 7,000 logs. SCARCE_TARGET at that
    # density is 102 heights, all of them with logs: 102 headers are two batches (100 + 2).
    sizer = ChunkSizer(target_logs=5000, ceiling=2000)
    sizer.observe(16, 7000)
    span = sizer.next(scarce=True)
    assert span < SCARCE_TARGET * 16 // 7000
    assert span + 2 <= HEADER_BATCH  # every height plus the two ends, in the worst case
    # A sparse chain (a log every 40 blocks) is not held to HEADER_BATCH heights: few hold logs.
    sparse = ChunkSizer(target_logs=5000, ceiling=2000)
    sparse.observe(2000, 50)
    assert sparse.next(scarce=True) == 2000
    sparse = ChunkSizer(target_logs=5000, ceiling=20_000)
    sparse.observe(2000, 50)
    assert sparse.next(scarce=True) == (HEADER_BATCH - 2) * 2000 // 50  # ~98 blocks with logs


@given(st.integers(1, 10**6), st.integers(1, 10**8), st.integers(1, 10**5))
def test_scarce_fetch_expects_one_header_batch(blocks: int, logs: int, ceiling: int) -> None:
    sizer = ChunkSizer(target_logs=5000, ceiling=ceiling)
    sizer.observe(blocks, logs)
    span = sizer.next(scarce=True)
    assert 1 <= span <= ceiling
    # Heights expected to hold logs, at the observed density (a height holds at least one).
    assert span * min(blocks, logs) // blocks <= HEADER_BATCH - 2
