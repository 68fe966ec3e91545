"""Hostile inputs: random config text/structures and random JSON replies. The only exceptions
allowed out are the typed ones (ConfigError with `path: message` lines; MalformedReply/RpcError)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from indexer.chains.bloom import log_in_bloom, parse_bloom
from indexer.chains.evm import parse_header, parse_header_bloom
from indexer.chains.evm_decode import TRANSFER_TOPIC
from indexer.chains.evm_families import ControlFamily, LogDispatch, decode_logs
from indexer.chains.rpc import _unpack
from indexer.config import load_config_text
from indexer.errors import ConfigError, MalformedReply, RpcError

FUZZ = settings(
    max_examples=int(os.environ.get("USD1_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROBLEM_RE = re.compile(r"^.+?: .+", re.DOTALL)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["0x", "0x0", "0x1", "0xzz", "evm", "solana", "finalized", "1s", "-1", TRANSFER_TOPIC]),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=5), st.dictionaries(st.text(max_size=12), kids, max_size=6)
    ),
    max_leaves=30,
)
KEYS = [
    "chains", "name", "kind", "rpc", "token", "mint", "finality", "tag", "confirmations", "database",
    "dsn", "http", "listen", "venues", "chain", "pool", "poll_interval", "decimals", "ws", "log",
    "level", "reserves", "url", "market", "bands_bps", "quote_venue", "max_block_range",
]  # fmt: skip
config_like = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), kids, max_size=6),
    ),
    max_leaves=25,
)


def _check_config_error(exc: ConfigError) -> None:
    assert exc.problems, "ConfigError without problems"
    for p in exc.problems:
        assert isinstance(p, str) and PROBLEM_RE.match(p), f"not a `path: message` line: {p!r}"


@FUZZ
@given(st.text(max_size=300))
@example("chains: [{kind: evm, name: a, rpc: [x]}]")
@example("chains:\n  - !!python/object:os.system {}\n")
@example("a: *b")
@example("{")
@example("chains: [{kind: evm, name: A, rpc: ['http://x'], token: '0x' , ws: 1}]")
def test_config_text(text: str) -> None:
    try:
        load_config_text(text, env={})
    except ConfigError as exc:
        _check_config_error(exc)


@FUZZ
@given(config_like)
def test_config_structures(data: Any) -> None:
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    try:
        load_config_text(text, env={"X": "1"})
    except ConfigError as exc:
        _check_config_error(exc)


@FUZZ
@given(st.dictionaries(st.sampled_from(["chains", "venues", "database", "http"]), config_like, max_size=3))
def test_config_sections(data: Any) -> None:
    try:
        load_config_text(yaml.safe_dump(data), env={})
    except ConfigError as exc:
        _check_config_error(exc)


log_like = st.fixed_dictionaries(
    {},
    optional={
        "address": st.sampled_from(["0x" + "11" * 20, "0X", 5, None]) | json_values,
        "topics": st.lists(
            st.sampled_from([TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + "0" * 24 + "ab" * 20]) | json_values,
            max_size=4,
        )
        | json_values,
        "data": st.sampled_from(["0x" + "0" * 63 + "1", "0x"]) | json_values,
        "blockHash": st.sampled_from(["0x" + "aa" * 32]) | json_values,
        "transactionHash": st.sampled_from(["0x" + "bb" * 32]) | json_values,
        "blockNumber": st.sampled_from(["0x1", "0x", "1"]) | json_values,
        "logIndex": st.sampled_from(["0x0", "0x"]) | json_values,
        "removed": json_values,
        "blockTimestamp": json_values,
    },
)


@FUZZ
@given(
    st.lists(log_like | st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=5),
    st.booleans(),
)
def test_decode_logs(logs: Any, controls: bool) -> None:
    """Log objects with any content, for a transfers-only token and for one with every control
    family: decoded or a MalformedReply, nothing else. (A list element that is not an object is
    rejected by EvmSource before decoding; see test_decode_logs_non_object_element.)"""
    families = list(ControlFamily) if controls else []
    try:
        decode_logs(
            "c", logs, LogDispatch.build("0x" + "11" * 20, families, [("0x" + "0" * 24 + "ab" * 8, "w", [])])
        )
    except MalformedReply:
        pass


def test_decode_logs_non_object_element() -> None:
    """Found by fuzzing: a list element that is not an object is a MalformedReply (it used to
    raise AttributeError)."""
    with pytest.raises(MalformedReply, match="not a JSON object"):
        decode_logs("c", [None], LogDispatch.build("0x" + "11" * 20))  # type: ignore[list-item]


@FUZZ
@given(log_like)
def test_log_in_bloom(lg: Any) -> None:
    try:
        log_in_bloom((1 << 2048) - 1, lg)
    except MalformedReply:
        pass


header_like = st.fixed_dictionaries(
    {},
    optional={
        "number": st.sampled_from(["0x1", "0x", " 0x1", "0x1_0"]) | json_values,
        "hash": st.sampled_from(["0x" + "aa" * 32]) | json_values,
        "parentHash": st.sampled_from(["0x" + "bb" * 32]) | json_values,
        "timestamp": st.sampled_from(["0x5"]) | json_values,
        "logsBloom": st.sampled_from(["0x" + "00" * 256, "0x00"]) | json_values,
    },
)


@FUZZ
@given(header_like | json_values)
def test_parse_header(raw: Any) -> None:
    try:
        ref = parse_header(raw)
        parse_header_bloom(raw)
    except MalformedReply:
        return
    assert ref is None or (ref.number >= 0 and len(ref.hash) == 66)


@FUZZ
@given(json_values)
def test_parse_bloom(raw: Any) -> None:
    try:
        parse_bloom(raw)
    except MalformedReply:
        pass


rpc_item = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": json_values,
        "id": st.sampled_from([1, 2, 3]) | json_values,
        "result": json_values,
        "error": st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values})
        | json_values,
    },
)


@FUZZ
@given(rpc_item | st.lists(rpc_item | json_values, max_size=4) | json_values, st.booleans())
def test_unpack(decoded: Any, single: bool) -> None:
    try:
        out = _unpack("x", decoded, [1, 2] if not single else [1], single)
    except RpcError:  # MalformedReply is a RpcError
        return
    assert len(out) == (1 if single else 2)


solana_block = st.fixed_dictionaries(
    {},
    optional={
        "blockhash": st.sampled_from(["4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZAMdL4VZHirAn"]) | json_values,
        "previousBlockhash": st.sampled_from(["11111111111111111111111111111111"]) | json_values,
        "blockTime": json_values,
        "transactions": st.lists(
            st.fixed_dictionaries(
                {}, optional={"transaction": json_values, "meta": json_values, "version": json_values}
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    },
)


@FUZZ
@given(solana_block | json_values)
def test_solana_parse_block(raw: Any) -> None:
    from indexer.chains.solana_parse import parse_block

    try:
        parse_block("sol", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 1, raw)
    except RpcError:
        pass
