from indexer.chains.range_hints import (
    MaxRange,
    RangeTooLarge,
    ResultCap,
    SuggestedRange,
    classify_range_error,
)


def test_alchemy_suggested_range() -> None:
    # Alchemy's wording as commonly reported; not captured from a live reply here (no network).
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


def test_documented_result_cap_and_timeout() -> None:
    # MetaMask/Infura's eth_getLogs reference (Linea page) documents both replies verbatim, and
    # java-tron's JsonRpcTooManyResultException uses the same result-cap text (realdata/tron/FACTS.md).
    assert classify_range_error(-32005, "query returned more than 10000 results") == ResultCap(10000)
    assert classify_range_error(-32005, "query timeout exceeded") == RangeTooLarge()
    # therpc.io's eth_getLogs error table.
    assert classify_range_error(-32005, "query exceeds max block range") == RangeTooLarge()


def test_generic_and_tron() -> None:
    assert classify_range_error(-32000, "block range too large") == RangeTooLarge()
    assert classify_range_error(-32000, "query timeout exceeded") == RangeTooLarge()
    assert classify_range_error(-32602, "Log response size exceeded.") == RangeTooLarge()


def test_unrelated_error() -> None:
    assert classify_range_error(-32000, "execution reverted") is None
    assert classify_range_error(None, "header not found") is None


def test_stated_maximum_is_a_ceiling() -> None:
    # java-tron (realdata/tron/FACTS.md), QuickNode, and a "1k" shorthand.
    assert classify_range_error(-32602, "exceed max block range: 5000") == MaxRange(5000)
    assert classify_range_error(-32602, "eth_getLogs is limited to a 10,000 range") == MaxRange(10000)
    assert classify_range_error(-32000, "eth_getLogs range is too large, max is 1k blocks") == MaxRange(1000)


def test_minus_32005_that_a_smaller_range_cannot_fix() -> None:
    assert classify_range_error(-32005, "batch size is too large, max is 100") is None
    assert classify_range_error(-32005, "exceed max log filters 20000, try again later") is None
    assert classify_range_error(-32005, "limit exceeded") == RangeTooLarge()


def test_a_number_outside_a_range_message_is_not_a_hint() -> None:
    assert classify_range_error(429, "rate limited: max is 10 requests per second") is None
