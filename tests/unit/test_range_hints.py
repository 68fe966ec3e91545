from indexer.chains.range_hints import (
    RangeTooLarge,
    ResultCap,
    SuggestedRange,
    classify_range_error,
)


def test_alchemy_suggested_range() -> None:
    msg = (
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
        "range and no limit on the response size, or you can request any block range with a "
        "cap of 10K logs in the response. Based on your parameters, this block range should "
        "work: [0x0, 0x3e7]"
    )
    assert classify_range_error(-32602, msg) == SuggestedRange(0, 999)
    hint = classify_range_error(-32602, "try with this block range [0x10, 0x1f].")
    assert hint == SuggestedRange(16, 31)
    assert isinstance(hint, SuggestedRange) and hint.size == 16


def test_infura_result_cap() -> None:
    assert classify_range_error(-32005, "query returned more than 10000 results") == ResultCap(10000)


def test_generic_and_tron() -> None:
    assert classify_range_error(-32000, "block range too large") == RangeTooLarge()
    assert classify_range_error(-32000, "eth_getLogs range is too large, max is 1k blocks") == (
        RangeTooLarge()
    )
    assert classify_range_error(-32005, "exceed max block range: 5000") == RangeTooLarge()


def test_unrelated_error() -> None:
    assert classify_range_error(-32000, "execution reverted") is None
    assert classify_range_error(None, "header not found") is None
