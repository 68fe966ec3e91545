"""Watchlist parsing and matching (indexer.watchlists) on the real community OFAC lists
(tests/fixtures/sanctions/, from 0xB10C/ofac-sanctioned-digital-currency-addresses; counts as in
realdata/sanctions/FORMAT.md), and every bad list refused naming the list and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.config import EvmChainConfig, SolanaChainConfig
from indexer.model import EventKind, TokenEvent
from indexer.watchlists import Matcher, Recent, WatchlistError, classify, match_kind, parse, tally

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sanctions"
ZERO = "0x" + "0" * 40
USD1_SOL = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def evm_chain(name: str, dialect: str = "ethereum") -> EvmChainConfig:
    token = "0x8d0d000ee44948fc98c9b98a4fa4921476f08b0d"
    if dialect == "tron":
        token = "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"
        return EvmChainConfig.model_validate(
            {
                "name": name,
                "kind": "evm",
                "dialect": "tron",
                "rpc": ["http://x"],
                "token": token,
                "decimals": 18,
                "finality": {"confirmations": 19},
            }
        )
    return EvmChainConfig.model_validate(
        {"name": name, "kind": "evm", "rpc": ["http://x"], "token": token, "decimals": 18}
    )


def sol_chain(name: str) -> SolanaChainConfig:
    return SolanaChainConfig.model_validate(
        {"name": name, "kind": "solana", "rpc": ["http://x"], "mint": USD1_SOL, "decimals": 6}
    )


def ev(chain: str, src: str | None, dst: str | None) -> TokenEvent:
    return TokenEvent(chain, 1, "0xb", "0xt", 0, EventKind.TRANSFER, src, dst, 5)


def test_eth_list_all_152_entries_lowercased() -> None:
    w = parse("ofac-eth", "ofac_txt", read("sanctioned_addresses_ETH.txt"))
    assert len(w.evm) == 152 and not w.tron and not w.solana and w.other == 0
    assert all(a == a.lower() and len(a) == 42 for a in w.evm)
    # A mixed-case (checksummed) entry of the file matches its lowercase form.
    first = read("sanctioned_addresses_ETH.txt").decode().splitlines()[0]
    assert first != first.lower() and first.lower() in w.evm


def test_usdt_list_mixes_chains() -> None:
    txt = parse("ofac-usdt", "ofac_txt", read("sanctioned_addresses_USDT.txt"))
    assert (len(txt.evm), len(txt.tron), len(txt.solana), txt.other) == (8, 11, 0, 7)
    assert all(a.startswith("0x") and len(a) == 42 for a in txt.tron)
    # The JSON edition holds the same 26 entries.
    js = parse("ofac-usdt", "ofac_json", read("sanctioned_addresses_USDT.json"))
    assert (js.evm, js.tron, js.other) == (txt.evm, txt.tron, txt.other)
    eth = parse("ofac-eth", "ofac_txt", read("sanctioned_addresses_ETH.txt"))
    assert len(txt.evm & eth.evm) == 4  # FORMAT.md: only 4 of the 8 are also in the ETH list


def test_trx_list_converts_to_the_log_form() -> None:
    w = parse("ofac-trx", "ofac_txt", read("sanctioned_addresses_TRX.txt"))
    assert len(w.tron) == 6 and not w.evm
    # FORMAT.md's worked example.
    assert "0x0e6b8e34dc115a2848f585851af23d99d09b8463" in w.tron


def test_csv_with_extra_columns_and_quoted_cells() -> None:
    data = (
        "label,address,note\n"
        'exploiter,0x175d44451403Edf28469dF03A9280c1197ADb92c,"a, b"\n'
        "\n"
        f"sol,{USD1_SOL},\n"
        "trx,TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLre,\n"
    ).encode()
    w = parse("mine", "csv", data)
    assert w.evm == {"0x175d44451403edf28469df03a9280c1197adb92c"}
    assert w.solana == {USD1_SOL}
    assert w.tron == {"0x0e6b8e34dc115a2848f585851af23d99d09b8463"}


@pytest.mark.parametrize(
    ("fmt", "data", "where", "problem"),
    [
        ("ofac_txt", b"0x175d44451403Edf28469dF03A9280c1197ADb92c\n0x1234\n", "line 2", "not an EVM address"),
        ("ofac_txt", b"TBHTJqAy4DhHhmT3dNceJYNRz4SdLofLrf\n", "line 1", "bad base58check checksum"),
        ("ofac_txt", b"\n\nnot an address\n", "line 3", "not an address"),
        ("ofac_txt", b"<html>\n", "line 1", "not an address"),
        ("ofac_txt", b"0x" + b"a" * 40 + b"\n\xff\xfe\n", "line 2", "not UTF-8"),
        ("ofac_json", b'["0x175d44451403Edf28469dF03A9280c1197ADb92c", 7]', "entry 1", "expected an address"),
        ("ofac_json", b'{"a": 1}', "<root>", "expected a JSON array"),
        ("ofac_json", b'[\n "0x1",\n', "line 3", "not valid JSON"),
        ("ofac_json", b'["", "0x175d44451403Edf28469dF03A9280c1197ADb92c"]', "entry 0", "empty address"),
        ("csv", b"name,addr\nx,0x1\n", "line 1", "no column `address`"),
        ("csv", b"", "line 1", "empty CSV"),
        ("csv", b"label,address\nx\n", "line 2", "no `address` value"),
        ("csv", b"address\n0xzz\n", "line 2", "not an EVM address"),
    ],
)
def test_bad_content_names_list_and_line(fmt: str, data: bytes, where: str, problem: str) -> None:
    with pytest.raises(WatchlistError) as info:
        parse("lst", fmt, data)  # type: ignore[arg-type]
    assert info.value.name == "lst" and info.value.where == where, str(info.value)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"watchlist 'lst': {where}: ")


def test_comments_and_blank_lines_are_skipped_and_digest_tracks_content() -> None:
    a = parse("l", "ofac_txt", b"# header\n\n0x175d44451403Edf28469dF03A9280c1197ADb92c\n")
    b = parse("l", "ofac_txt", b"0x175d44451403Edf28469dF03A9280c1197ADb92c\n")
    assert a.evm == b.evm and len(a.evm) == 1 and a.digest != b.digest


def test_classify_foreign_addresses_are_skipped() -> None:
    assert classify("16iWn2J1McqjToYLHSsAyS6En3QA8YQ91H") == (None, "16iWn2J1McqjToYLHSsAyS6En3QA8YQ91H")
    assert classify("bc1qa5wkgaew2dkv56kfvj49j0av5nml45x9ek9hz6")[0] is None
    assert classify(USD1_SOL) == ("solana", USD1_SOL)


def test_match_by_chain_kind_sender_or_receiver() -> None:
    eth = parse("ofac-eth", "ofac_txt", read("sanctioned_addresses_ETH.txt"))
    usdt = parse("ofac-usdt", "ofac_txt", read("sanctioned_addresses_USDT.txt"))
    trx = parse("ofac-trx", "ofac_txt", read("sanctioned_addresses_TRX.txt"))
    m = Matcher.build(
        [eth, usdt, trx], [evm_chain("ethereum"), evm_chain("tron", "tron"), sol_chain("solana")]
    )
    assert match_kind(evm_chain("tron", "tron")) == "tron"
    both = "0x983a81ca6fb1e441266d2fbcb7d8e530ac2e05a2"  # in ETH and USDT (mixed case in both)
    assert both in eth.evm and both in usdt.evm
    assert m.match(ev("ethereum", ZERO, both)) == ["ofac-eth", "ofac-usdt"]  # a mint to a listed address
    assert m.match(ev("ethereum", both, None)) == ["ofac-eth", "ofac-usdt"]
    assert m.match(ev("ethereum", ZERO, ZERO)) == []
    # On Tron only the T... entries count, in their 20-byte log form; the 0x entries do not.
    trx_hex = "0x0e6b8e34dc115a2848f585851af23d99d09b8463"
    assert m.match(ev("tron", trx_hex, ZERO)) == ["ofac-trx"]
    assert m.match(ev("tron", both, ZERO)) == []
    assert m.match(ev("ethereum", trx_hex, ZERO)) == []
    usdt_tron = sorted(usdt.tron)[0]
    assert m.match(ev("tron", ZERO, usdt_tron)) == ["ofac-usdt"]
    assert m.match(ev("unknown-chain", both, both)) == []
    assert m.addresses("tron") == sorted(usdt.tron | trx.tron)
    assert m.addresses("solana") == []


def test_tally_counts_once_per_list_and_not_again_on_reinclusion() -> None:
    eth = parse("ofac-eth", "ofac_txt", read("sanctioned_addresses_ETH.txt"))
    usdt = parse("ofac-usdt", "ofac_txt", read("sanctioned_addresses_USDT.txt"))
    m = Matcher.build([eth, usdt], [evm_chain("ethereum")])
    both = "0x983a81ca6fb1e441266d2fbcb7d8e530ac2e05a2"
    eth_only = "0x8589427373d6d84e98730d7795d8f6f8731fda16"
    t = EventKind.TRANSFER
    batch = [
        TokenEvent("ethereum", 10, "0xb1", "0xt1", 0, EventKind.MINT, ZERO, both, 100),
        TokenEvent("ethereum", 10, "0xb1", "0xt2", 1, t, both, eth_only, 7),  # both sides: once per list
        TokenEvent("ethereum", 10, "0xb1", "0xt2", 2, t, both, eth_only, 7),  # an identical second one
        TokenEvent("ethereum", 10, "0xb1", "0xt3", 3, t, ZERO, ZERO, 9),  # unlisted
    ]
    recent = Recent()
    assert tally(batch, m, recent) == {"ofac-eth": (3, 114), "ofac-usdt": (3, 114)}
    # A reorg's replacement block re-includes t2 (new block, new log indexes) and adds t4.
    again = [
        TokenEvent("ethereum", 10, "0xb2", "0xt2", 0, t, both, eth_only, 7),
        TokenEvent("ethereum", 10, "0xb2", "0xt2", 1, t, both, eth_only, 7),
        TokenEvent("ethereum", 11, "0xb3", "0xt4", 0, t, eth_only, ZERO, 1),
    ]
    assert tally(again, m, recent) == {"ofac-eth": (1, 1)}
    # The memory is bounded: the oldest key is forgotten first.
    small = Recent(capacity=2)
    assert small.add(("a",)) and small.add(("b",)) and not small.add(("a",))
    assert small.add(("c",))  # evicts b (a was used more recently)
    assert not small.add(("a",)) and small.add(("b",))
