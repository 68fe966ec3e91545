"""Configuration: the full DESIGN example loads; interpolation; durations; and every bad input is
reported as `path.to.key: message`, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chains.evm_families import ControlFamily
from indexer.config import (
    Config,
    EvmChainConfig,
    OrderbookVenueConfig,
    SolanaChainConfig,
    UniswapV2VenueConfig,
    UniswapV3VenueConfig,
    interpolate,
    load_config,
    load_config_text,
    parse_duration,
)
from indexer.errors import ConfigError
from indexer.model import Family

# Real USD1 deployments (realdata/tokens): Ethereum ERC-20 and Solana SPL mint.
USD1_ETH = "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"
USD1_SOL = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"
POOL = "0xdf63268af25a2a69c07d09a88336cd9424269a1f"  # a Uniswap V3 pool from realdata/pools

FULL = f"""
token: {{symbol: USD1, peg_usd: 1.0}}
database: {{dsn: "${{USD1_DATABASE_URL:-}}"}}
data_dir: ./.usd1
http: {{listen: "127.0.0.1:9464"}}
chains:
  - name: ethereum
    kind: evm
    rpc: ["http://127.0.0.1:8545", "https://eth.example.org/v1/${{ETH_KEY:-demo}}"]
    ws: null
    token: "{USD1_ETH}"
    decimals: 18
    start_block: 0
    finality: {{tag: finalized}}
    poll_interval: 1s
  - name: bsc
    kind: evm
    rpc: ["http://127.0.0.1:8546"]
    ws: "ws://127.0.0.1:8547"
    token: "{USD1_ETH}"
    finality: {{confirmations: 15}}
    poll_interval: 500ms
  - name: solana
    kind: solana
    rpc: ["http://127.0.0.1:8899"]
    mint: "{USD1_SOL}"
    decimals: 6
    finality: {{commitment: confirmed}}
market:
  bands_bps: [10, 50, 100]
venues:
  - name: univ2-usd1-usdc
    kind: uniswap_v2
    chain: ethereum
    pool: "{POOL}"
    quote_usd: 1.0
    interval: 5s
  - name: univ3-usd1-usdt
    kind: uniswap_v3
    chain: bsc
    pool: "{POOL}"
    quote_venue: binance-usd1-usdt
    interval: 2m
  - name: binance-usd1-usdt
    kind: orderbook
    exchange: binance
    url: "https://api.binance.com/api/v3/depth?symbol=USD1USDT"
    quote_usd: 1.0
    interval: 10s
reserves: {{url: "file://reserves.json", interval: 1h}}
"""

MINIMAL = f"""
chains:
  - name: ethereum
    kind: evm
    rpc: ["http://127.0.0.1:8545"]
    token: "{USD1_ETH}"
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def one_problem(text: str, env: dict[str, str] | None = None) -> str:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------------------------
# Valid configs


def test_full_design_example_loads() -> None:
    cfg = load_config_text(FULL, env={})
    assert cfg.token.symbol == "USD1" and cfg.token.peg_usd == 1.0
    assert cfg.database.dsn == ""  # ${USD1_DATABASE_URL:-} with the variable unset
    assert cfg.data_dir == Path(".usd1")
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 9464)

    eth, bsc, sol = cfg.chains
    assert isinstance(eth, EvmChainConfig) and isinstance(bsc, EvmChainConfig)
    assert isinstance(sol, SolanaChainConfig)
    assert eth.token == USD1_ETH.lower()  # EVM addresses are normalized to lowercase
    assert eth.rpc == ["http://127.0.0.1:8545", "https://eth.example.org/v1/demo"]
    assert eth.ws is None and eth.decimals == 18 and eth.start_block == 0
    assert (eth.finality.tag, eth.finality.confirmations) == ("finalized", None)
    assert eth.poll_interval == 1.0
    assert (bsc.finality.tag, bsc.finality.confirmations) == (None, 15)
    assert bsc.poll_interval == 0.5 and bsc.ws == "ws://127.0.0.1:8547"
    assert bsc.decimals == 18  # default
    assert sol.mint == USD1_SOL and sol.decimals == 6 and sol.finality.commitment == "confirmed"
    assert sol.poll_interval == 0.4  # Solana default

    assert cfg.market.bands_bps == [10, 50, 100]
    v2, v3, ob = cfg.venues
    assert isinstance(v2, UniswapV2VenueConfig) and v2.pool == POOL and v2.interval == 5.0
    assert isinstance(v3, UniswapV3VenueConfig) and v3.quote_venue == "binance-usd1-usdt"
    assert v3.interval == 120.0
    assert isinstance(ob, OrderbookVenueConfig) and ob.exchange == "binance" and ob.interval == 10.0
    assert cfg.reserves is not None and cfg.reserves.interval == 3600.0
    assert cfg.chain("bsc") is bsc
    with pytest.raises(KeyError):
        cfg.chain("tron")


def test_minimal_config_gets_the_defaults() -> None:
    cfg = load_config_text(MINIMAL, env={})
    (eth,) = cfg.chains
    assert isinstance(eth, EvmChainConfig)
    assert eth.finality.tag == "finalized"
    assert cfg.http.listen == "127.0.0.1:9464"
    assert cfg.venues == [] and cfg.reserves is None


def test_ipv6_listen_address() -> None:
    cfg = load_config_text(MINIMAL + 'http: {listen: "[::1]:9000"}\n', env={})
    assert (cfg.http.host, cfg.http.port) == ("::1", 9000)


def test_load_config_file_resolves_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "data_dir: rel/dir\n")
    cfg = load_config(path, env={})
    assert cfg.data_dir.is_absolute() and cfg.data_dir.parts[-2:] == ("rel", "dir")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert info.value.problems[0].startswith("<root>: cannot read ")


# --------------------------------------------------------------------------------------------
# Interpolation


def test_env_interpolation() -> None:
    env = {"USD1_DATABASE_URL": "postgresql://u@db/usd1", "ETH_KEY": "k123"}
    cfg = load_config_text(FULL, env=env)
    assert cfg.database.dsn == "postgresql://u@db/usd1"
    assert cfg.chains[0].rpc[1] == "https://eth.example.org/v1/k123"


def test_default_applies_when_the_variable_is_empty() -> None:
    value, found = interpolate("${A:-x}", {"A": ""})
    assert (value, found) == ("x", [])
    value, found = interpolate("${A}", {"A": ""})
    assert (value, found) == ("", [])


def test_interpolation_in_nested_values_and_several_per_string() -> None:
    value, found = interpolate({"a": ["${X}-${Y:-y}", 3, None], "b": {"c": "$X and ${X}"}}, {"X": "1"})
    assert found == []
    assert value == {"a": ["1-y", 3, None], "b": {"c": "$X and 1"}}


def test_interpolated_numbers_and_durations_are_typed() -> None:
    text = MINIMAL + "    decimals: ${DEC:-6}\n    poll_interval: ${POLL:-250ms}\n"
    eth = load_config_text(text, env={}).chains[0]
    assert eth.decimals == 6 and eth.poll_interval == 0.25
    eth = load_config_text(text, env={"DEC": "18", "POLL": "2s"}).chains[0]
    assert eth.decimals == 18 and eth.poll_interval == 2.0


def test_unset_variable_without_default_names_the_key_path() -> None:
    text = MINIMAL.replace('rpc: ["http://127.0.0.1:8545"]', 'rpc: ["http://a", "${RPC_URL}"]')
    assert problems(text) == ["chains.0.rpc.1: environment variable RPC_URL is not set"]


def test_every_unset_variable_is_reported() -> None:
    text = MINIMAL + "database: {dsn: '${DSN}'}\ndata_dir: ${DATA}\n"
    assert problems(text) == [
        "database.dsn: environment variable DSN is not set",
        "data_dir: environment variable DATA is not set",
    ]


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (" 10 s ", 10.0),
        ("3", 3.0),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1sec", "-1s", "0s", "0", "ms", "1 2s", True, None, "1e3s"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@settings(max_examples=100)
@given(n=st.integers(1, 10**6), unit=st.sampled_from([("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]))
def test_duration_units(n: int, unit: tuple[str, float]) -> None:
    assert parse_duration(f"{n}{unit[0]}") == pytest.approx(n * unit[1])


def test_bad_duration_in_config_names_the_key() -> None:
    found = one_problem(MINIMAL + "    poll_interval: soon\n")
    assert found.startswith("chains.0.poll_interval: invalid duration 'soon'")


# --------------------------------------------------------------------------------------------
# Bad inputs: one problem line each, naming the key path


def with_chain_line(line: str) -> str:
    return MINIMAL + f"    {line}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (with_chain_line("foo: 1"), "chains.0.foo: unknown key"),
        (MINIMAL + "extra: 1\n", "extra: unknown key"),
        (
            MINIMAL.replace(USD1_ETH, "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0"),
            "chains.0.token: invalid EVM address '0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0': "
            "expected 0x followed by 40 hex digits",
        ),
        (
            MINIMAL.replace(USD1_ETH, "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0g"),
            "chains.0.token: invalid EVM address '0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0g': "
            "expected 0x followed by 40 hex digits",
        ),
        (
            with_chain_line("finality: {}"),
            "chains.0.finality: give exactly one of tag (finalized|safe) or confirmations (N blocks); "
            "got neither",
        ),
        (
            with_chain_line("finality: {tag: safe, confirmations: 3}"),
            "chains.0.finality: give exactly one of tag (finalized|safe) or confirmations (N blocks); "
            "got both",
        ),
        (
            with_chain_line("finality: {tag: latest}"),
            "chains.0.finality.tag: Input should be 'finalized' or 'safe'",
        ),
        (
            with_chain_line("finality: {confirmations: -1}"),
            "chains.0.finality.confirmations: Input should be greater than or equal to 0",
        ),
        (with_chain_line("finality: {commitment: finalized}"), "chains.0.finality.commitment: unknown key"),
        (with_chain_line("decimals: 99"), "chains.0.decimals: Input should be less than or equal to 36"),
        (
            with_chain_line("audit: {accounts_per_hour: -1}"),
            "chains.0.audit.accounts_per_hour: Input should be greater than or equal to 0",
        ),
        (with_chain_line("audit: {interval: 0s}"), "chains.0.audit.interval: duration must be positive"),
        (with_chain_line("audit: {budget: 5}"), "chains.0.audit.budget: unknown key"),
        (
            MINIMAL.replace('rpc: ["http://127.0.0.1:8545"]', "rpc: [ftp://x]"),
            "chains.0.rpc.0: invalid URL 'ftp://x': expected http(s):// or ws(s)://",
        ),
        (
            MINIMAL.replace('rpc: ["http://127.0.0.1:8545"]', "rpc: []"),
            "chains.0.rpc: List should have at least 1 item after validation, not 0",
        ),
        (
            MINIMAL.replace("name: ethereum", "name: Ethereum Main"),
            "chains.0.name: invalid name 'Ethereum Main': use lowercase letters, digits, '_' and '-'",
        ),
        (
            MINIMAL.replace("name: ethereum", "name: " + "e" * 41),
            f"chains.0.name: name '{'e' * 41}' is longer than 40 characters",
        ),
        (
            with_chain_line("defer_indexes: sometimes"),
            "chains.0.defer_indexes: Input should be a valid boolean, unable to interpret input",
        ),
        (
            MINIMAL.replace("kind: evm", "kind: tron"),
            "chains.0.kind: unknown kind 'tron'; expected evm or solana",
        ),
        (MINIMAL.replace("    kind: evm\n", ""), "chains.0.kind: missing (required); expected evm or solana"),
        (MINIMAL.replace(f'    token: "{USD1_ETH}"\n', ""), "chains.0.token: missing (required)"),
        ("token: {symbol: USD1}\n", "chains: missing (required)"),
        ("chains: []\n", "chains: List should have at least 1 item after validation, not 0"),
        (
            MINIMAL + 'http: {listen: "localhost"}\n',
            "http.listen: invalid listen address 'localhost': expected host:port, e.g. 127.0.0.1:9464",
        ),
        (
            MINIMAL + 'http: {listen: "127.0.0.1:70000"}\n',
            "http.listen: invalid listen address '127.0.0.1:70000': expected host:port, e.g. 127.0.0.1:9464",
        ),
        (
            MINIMAL + 'http: {listen: ":9464"}\n',
            "http.listen: invalid listen address ':9464': expected host:port, e.g. 127.0.0.1:9464",
        ),
        (MINIMAL + "market: {bands_bps: [10, 10]}\n", "market: bands_bps has duplicates"),
        (
            MINIMAL + "market: {depeg_threshold_bps: 0}\n",
            "market.depeg_threshold_bps: Input should be greater than 0",
        ),
        (
            MINIMAL + "market: {depeg_threshold_bps: 50bps}\n",
            "market.depeg_threshold_bps: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            MINIMAL + "market: {depeg_threshold_bps: 20, depeg_hysteresis_bps: 20}\n",
            "market: depeg_hysteresis_bps (20) must be below depeg_threshold_bps (20)",
        ),
        (
            MINIMAL + "reserves: {url: 'ftp://x'}\n",
            "reserves: invalid reserves url 'ftp://x': expected file://, http:// or https://",
        ),
    ],
)
def test_bad_input_is_one_problem_naming_the_key(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_wrong_type_and_unknown_key_in_one_section() -> None:
    assert problems(MINIMAL + "http: {listen: 9464, tls: true}\n") == [
        "http.listen: Input should be a valid string",
        "http.tls: unknown key",
    ]


SOLANA = f"""
chains:
  - name: solana
    kind: solana
    rpc: ["http://127.0.0.1:8899"]
    mint: "{USD1_SOL}"
"""


@pytest.mark.parametrize(
    "mint",
    [
        "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmu0",  # '0' is not base58
        "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuBxx",  # too long
        "1111111111111111111111111111111111111111111",  # base58 but not 32 bytes
        "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d",  # an EVM address
    ],
)
def test_bad_solana_mint(mint: str) -> None:
    found = one_problem(SOLANA.replace(USD1_SOL, mint))
    assert found.startswith(f"chains.0.mint: invalid Solana address '{mint}': expected a base58 public key")


def test_solana_commitment_must_be_known() -> None:
    found = one_problem(SOLANA + "    finality: {commitment: processed}\n")
    assert found == "chains.0.finality.commitment: Input should be 'finalized' or 'confirmed'"


def test_solana_chain_rejects_evm_keys() -> None:
    assert problems(SOLANA + f'    token: "{USD1_ETH}"\n') == ["chains.0.token: unknown key"]


def test_duplicate_chain_names() -> None:
    text = MINIMAL + SOLANA.replace("chains:\n", "").replace("name: solana", "name: ethereum")
    assert problems(text) == ["chains.1.name: duplicate chain name 'ethereum'"]


def venue(line: str) -> str:
    return f"venues:\n  - {{name: v1, kind: uniswap_v2, pool: '{POOL}', {line}}}\n"


def test_venue_on_an_unknown_chain() -> None:
    assert problems(MINIMAL + venue("chain: arbitrum")) == [
        "venues.0.chain: 'arbitrum' is not a configured chain; pool venues need an EVM chain"
    ]


def test_pool_venue_on_a_solana_chain() -> None:
    text = MINIMAL + SOLANA.replace("chains:\n", "") + venue("chain: solana")
    assert problems(text) == ["venues.0.chain: 'solana' is a Solana chain; pool venues need an EVM chain"]


def test_venue_quote_venue_must_exist_and_not_clash_with_quote_usd() -> None:
    assert problems(MINIMAL + venue("chain: ethereum, quote_venue: nope")) == [
        "venues.0.quote_venue: no venue named 'nope'"
    ]
    assert problems(MINIMAL + venue("chain: ethereum, quote_venue: v1, quote_usd: 1.0")) == [
        "venues.0: give either quote_usd or quote_venue, not both"
    ]


def test_bad_venue_fields() -> None:
    text = MINIMAL + "venues:\n  - {name: ob, kind: orderbook, exchange: ftx, url: 'https://x', extra: 1}\n"
    assert problems(text) == [
        "venues.0.exchange: Input should be 'binance', 'coinbase', 'kraken', 'okx' or 'bybit'",
        "venues.0.extra: unknown key",
    ]
    text = MINIMAL + f"venues:\n  - {{name: p, kind: uniswap_v4, chain: ethereum, pool: '{POOL}'}}\n"
    assert problems(text) == [
        "venues.0.kind: unknown kind 'uniswap_v4'; expected uniswap_v2 or uniswap_v3 or orderbook"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "chains: [\n",
        "chains:\n  - name: x\n  bad: [",
        "a: b: c\n",
        "\tchains: []\n",
    ],
)
def test_bad_yaml(text: str) -> None:
    found = one_problem(text)
    assert found.startswith("<root>: <config> is not valid YAML (line ")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n", "42\n"])
def test_not_a_mapping(text: str) -> None:
    assert problems(text) == ["<root>: <config> must be a YAML mapping"]


def test_several_problems_are_all_reported() -> None:
    text = f"""
http: {{listen: "nowhere"}}
chains:
  - name: ethereum
    kind: evm
    rpc: ["http://127.0.0.1:8545"]
    token: "0x1234"
    finality: {{tag: finalized, confirmations: 2}}
    foo: bar
  - name: ethereum
    kind: solana
    rpc: ["http://127.0.0.1:8899"]
    mint: "{USD1_SOL}"
    poll_interval: fast
venues:
  - {{name: v1, kind: uniswap_v3, chain: base, pool: "{POOL}"}}
"""
    found = problems(text)
    assert sorted(found) == sorted(
        [
            "http.listen: invalid listen address 'nowhere': expected host:port, e.g. 127.0.0.1:9464",
            "chains.0.token: invalid EVM address '0x1234': expected 0x followed by 40 hex digits",
            "chains.0.finality: give exactly one of tag (finalized|safe) or confirmations (N blocks); got both",
            "chains.0.foo: unknown key",
            "chains.1.poll_interval: invalid duration 'fast': expected e.g. 1s, 500ms, 2m, 1h",
            "chains.1.name: duplicate chain name 'ethereum'",
            "venues.0.chain: 'base' is not a configured chain; pool venues need an EVM chain",
        ]
    )


def test_cross_checks_also_run_on_direct_model_validation() -> None:
    chain = {"name": "a", "kind": "evm", "rpc": ["http://x"], "token": USD1_ETH}
    with pytest.raises(ConfigError) as info:
        Config.model_validate({"chains": [chain, chain]})
    assert info.value.problems == ["chains.1.name: duplicate chain name 'a'"]


def test_a_key_named_like_a_kind_keeps_its_path() -> None:
    # Only the union tag pydantic inserts is dropped from paths, not a user key spelled the same.
    assert problems(with_chain_line("evm: 1")) == ["chains.0.evm: unknown key"]


# ---- control events and dialects ---------------------------------------------------------------
ADMIN = "0x" + "ad" * 20


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("profile: usdc", "chains.0.profile: Input should be 'erc20', 'usd1', 'fiattoken' or 'tether'"),
        ("controls: [ownable, wipe]", "chains.0.controls.1: Input should be 'ownable', 'proxy', 'pausable',"),
        (
            f"watch: [{{address: '{USD1_ETH}', label: self}}]",
            f"chains.0.watch: entry 0: {USD1_ETH.lower()} is the token itself",
        ),
        (
            f"watch: [{{address: '{ADMIN}', label: a}}, {{address: '{ADMIN}', label: b}}]",
            f"chains.0.watch: entry 1: {ADMIN} is watched twice",
        ),
        (
            f"watch: [{{address: '{ADMIN}', label: token}}]",
            "chains.0.watch: entry 0: label 'token' is used twice (or is reserved)",
        ),
        (
            f"watch: [{{address: '{ADMIN}', label: a, controls: [tether]}}]",
            f"chains.0.watch: watched contract {ADMIN}: supply events belong to the token only",
        ),
        ("watch: [{address: '0x12', label: a}]", "chains.0.watch.0.address: invalid EVM address '0x12'"),
        (
            "dialect: tron-ish",
            "chains.0.dialect: unknown dialect 'tron-ish'; known: ethereum, bsc, legacy, tron",
        ),
        (
            "dialect: legacy",
            "chains.0.finality: dialect 'legacy' serves no 'finalized' block tag (it serves: none);"
            " use finality.confirmations",
        ),
        (
            "control_check_sample: -1",
            "chains.0.control_check_sample: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_control_and_dialect_keys_name_the_key(line: str, expected: str) -> None:
    assert one_problem(with_chain_line(line)).startswith(expected)


def test_profiles_controls_and_watch_decide_the_families() -> None:
    cfg = load_config_text(
        MINIMAL
        + "    profile: usd1\n"
        + f"    watch: [{{address: '{ADMIN}', label: proxy_admin, controls: [ownable]}}]\n",
        {},
    )
    chain = cfg.chains[0]
    assert isinstance(chain, EvmChainConfig)
    fams = chain.family_configs()
    assert set(fams) == {Family.TRANSFERS, Family.CONTROLS}
    assert (
        fams[Family.TRANSFERS].legacy
        and not fams[Family.TRANSFERS].fillable
        and fams[Family.CONTROLS].fillable
    )
    assert "Freeze(address,address)" in fams[Family.CONTROLS].config[USD1_ETH.lower()]
    assert fams[Family.CONTROLS].config[ADMIN] == [
        "OwnershipTransferStarted(address,address)",
        "OwnershipTransferred(address,address)",
    ]
    assert [c[:2] for c in chain.control_contracts()] == [(USD1_ETH.lower(), "token"), (ADMIN, "proxy_admin")]
    # The default profile decodes transfers only: the filter and coverage stay what they were.
    plain = load_config_text(MINIMAL, {}).chains[0]
    assert isinstance(plain, EvmChainConfig) and set(plain.family_configs()) == {Family.TRANSFERS}
    assert plain.control_contracts() == [] and plain.dialect == "ethereum"
    # Tether: supply events join the transfers family (not fillable, not what an old index held).
    tether = load_config_text(MINIMAL + "    profile: tether\n", {}).chains[0]
    assert isinstance(tether, EvmChainConfig)
    t = tether.family_configs()[Family.TRANSFERS]
    assert not t.legacy and "Issue(uint256)" in t.config[USD1_ETH.lower()]
    # An explicit list replaces the profile's.
    custom = load_config_text(MINIMAL + "    profile: usd1\n    controls: [pausable]\n", {}).chains[0]
    assert isinstance(custom, EvmChainConfig) and custom.control_families == (ControlFamily.PAUSABLE,)


def test_dialect_presets() -> None:
    from indexer.chains.dialects import DIALECTS
    from indexer.model import BlockRef

    ref = BlockRef(7, "0x" + "ab" * 32, "0x" + "cd" * 32)
    assert DIALECTS["ethereum"].state_block(ref) == {"blockHash": ref.hash}
    assert DIALECTS["legacy"].state_block(ref) == "0x7" and not DIALECTS["legacy"].final_tags
    assert DIALECTS["bsc"].trust_blooms and DIALECTS["bsc"].final_tags == {"finalized", "safe"}
    cfg = load_config_text(with_chain_line("dialect: legacy\n    finality: {confirmations: 12}"), {})
    assert isinstance(cfg.chains[0], EvmChainConfig) and cfg.chains[0].evm_dialect is DIALECTS["legacy"]


# ---- Tron: the `tron` dialect accepts base58check T... and 21-byte 41... hex ---------------------
USD1_TRON = "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"  # realdata/tron/FACTS.md
USD1_TRON_HEX = "0x91bed8e784249c91611e61c4585c40e21fd0ace2"
TRON_ADMIN = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # any real Tron address (USDT) stands in here
TRON_ADMIN_HEX = "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c"


def tron_chain(token: str, extra: str = "") -> str:
    return f"""
chains:
  - name: tron
    kind: evm
    dialect: tron
    rpc: ["http://127.0.0.1:8545/jsonrpc"]
    token: "{token}"
    profile: usd1
{extra}"""


def test_tron_dialect_preset() -> None:
    from indexer.chains.dialects import DIALECTS
    from indexer.model import BlockRef

    d = DIALECTS["tron"]
    assert not d.trust_blooms and d.final_tags == {"finalized"} and not d.timestamp_ms
    assert d.state_block(BlockRef(7, "0x" + "ab" * 32, "0x" + "cd" * 32)) is None  # latest only
    assert d.seconds(0x69F18C42) == 0x69F18C42  # realdata nile block timestamp: already seconds


@pytest.mark.parametrize(
    "token",
    [
        USD1_TRON,
        "4191bed8e784249c91611e61c4585c40e21fd0ace2",
        "0x4191BED8E784249C91611E61C4585C40E21FD0ACE2",
        USD1_TRON_HEX,
    ],
)
def test_tron_chain_accepts_every_address_spelling(token: str) -> None:
    extra = f"    watch: [{{address: '{TRON_ADMIN}', label: proxy_admin, controls: [ownable]}}]\n"
    chain = load_config_text(tron_chain(token, extra), {}).chains[0]
    assert isinstance(chain, EvmChainConfig)
    assert chain.token == USD1_TRON_HEX and chain.watch[0].address == TRON_ADMIN_HEX
    assert chain.evm_dialect.name == "tron" and chain.finality.tag == "finalized"
    assert [c[:2] for c in chain.control_contracts()] == [
        (USD1_TRON_HEX, "token"),
        (TRON_ADMIN_HEX, "proxy_admin"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            tron_chain(USD1_TRON[:-1] + "d"),
            f"chains.0.token: invalid Tron address '{USD1_TRON[:-1]}d': bad base58check checksum",
        ),
        (tron_chain("0x12"), "chains.0.token: invalid Tron address '0x12': hex must be 40 digits"),
        (
            tron_chain(USD1_TRON, f"    watch: [{{address: '{TRON_ADMIN[:-2]}', label: a}}]\n"),
            f"chains.0.watch: entry 0: invalid Tron address '{TRON_ADMIN[:-2]}': a base58 address is 34 characters, got 32",
        ),
        (
            tron_chain(USD1_TRON, f"    watch: [{{address: '{USD1_TRON_HEX}', label: a}}]\n"),
            f"chains.0.watch: entry 0: {USD1_TRON_HEX} is the token itself",
        ),
        (
            tron_chain(USD1_TRON, "    finality: {tag: safe}\n"),
            "chains.0.finality: dialect 'tron' serves no 'safe' block tag (it serves: finalized)",
        ),
    ],
)
def test_bad_tron_addresses_name_the_key_and_the_reason(text: str, expected: str) -> None:
    assert one_problem(text).startswith(expected)


def test_base58_is_refused_outside_the_tron_dialect() -> None:
    assert one_problem(MINIMAL.replace(USD1_ETH, USD1_TRON)).startswith(
        f"chains.0.token: invalid EVM address '{USD1_TRON}'"
    )


def test_large_event_tokens_scales_by_the_chain_decimals() -> None:
    cfg = load_config_text(MINIMAL + '    large_event_tokens: "1000000.5"\n', env={})
    assert cfg.chains[0].large_event_raw == 1_000_000_5 * 10**17
    assert load_config_text(MINIMAL, env={}).chains[0].large_event_raw is None
    # Exact past Decimal's 28-digit context (it used to come out one base unit low).
    cfg = load_config_text(MINIMAL + '    large_event_tokens: "1234567890123.000000000000000001"\n', env={})
    assert cfg.chains[0].large_event_raw == 1234567890123 * 10**18 + 1


def test_large_event_tokens_bad_value_is_named() -> None:
    assert "large_event_tokens" in one_problem(MINIMAL + '    large_event_tokens: "lots"\n')
    assert "positive" in one_problem(MINIMAL + '    large_event_tokens: "0"\n')
    assert "decimal places" in one_problem(MINIMAL + '    large_event_tokens: "1.0000000000000000001"\n')


# --------------------------------------------------------------------------------------------
# non_circulating (supply classes)

TREASURY = "0x00000000000000000000000000000000000000Aa"


def test_non_circulating_accounts_load_normalized() -> None:
    text = with_chain_line(
        f"non_circulating: [{{address: owner, label: issuer}}, {{address: '{TREASURY}', label: treasury}}]"
    )
    chain = load_config_text(text + "    profile: usd1\n", {}).chains[0]
    assert [(e.address, e.label) for e in chain.non_circulating] == [
        ("owner", "issuer"),
        (TREASURY.lower(), "treasury"),
    ]
    assert load_config_text(MINIMAL, {}).chains[0].non_circulating == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "non_circulating: [{address: '0x12', label: treasury}]",
            "chains.0.non_circulating.0.address: invalid EVM address '0x12': expected 0x followed by 40 hex digits",
        ),
        (
            f"non_circulating: [{{address: '{TREASURY}', label: Treasury}}]",
            "chains.0.non_circulating.0.label: invalid name 'Treasury': use lowercase letters, digits, '_' and '-'",
        ),
        (
            f"non_circulating: [{{address: '{TREASURY}'}}]",
            "chains.0.non_circulating.0.label: missing (required)",
        ),
        (
            f"non_circulating: [{{address: '{TREASURY}', label: a}}, {{address: '{TREASURY.lower()}', label: b}}]",
            f"chains.0.non_circulating: entry 1: {TREASURY.lower()} is listed twice (an account has one label)",
        ),
    ],
)
def test_bad_non_circulating(line: str, expected: str) -> None:
    assert problems(with_chain_line(line)) == [expected]


def test_solana_non_circulating_takes_token_accounts_not_owner() -> None:
    ok = load_config_text(SOLANA + f"    non_circulating: [{{address: '{USD1_SOL}', label: treasury}}]\n", {})
    assert ok.chains[0].non_circulating[0].address == USD1_SOL
    found = one_problem(SOLANA + "    non_circulating: [{address: owner, label: issuer}]\n")
    assert found.startswith("chains.0.non_circulating.0.address: 'owner' is EVM only")


def test_non_circulating_owner_needs_ownable_controls() -> None:
    found = one_problem(with_chain_line("non_circulating: [{address: owner, label: issuer}]"))
    assert found.startswith(
        "chains.0: non_circulating: address 'owner' needs the token's ownable control events"
    )
    assert load_config_text(
        with_chain_line("non_circulating: [{address: owner, label: issuer}]") + "    controls: [ownable]\n",
        {},
    )


def test_non_circulating_label_must_not_be_a_class_name() -> None:
    found = one_problem(with_chain_line(f"non_circulating: [{{address: '{TREASURY}', label: frozen}}]"))
    assert found.startswith("chains.0.non_circulating: entry 0: label 'frozen' is reserved")


def test_mainnet_config_has_the_tron_deployment() -> None:
    path = Path(__file__).parents[2] / "config" / "mainnet.yaml"
    env = {
        "USD1_ETH_RPC_URL": "https://eth.example",
        "USD1_BSC_RPC_URL": "https://bsc.example",
        "USD1_TRON_RPC_URL": "https://tron.example:8545/jsonrpc",
    }
    cfg = load_config(path, env=env)
    c = cfg.chain("tron")
    assert isinstance(c, EvmChainConfig) and c.dialect == "tron"
    assert c.rpc == ["https://tron.example:8545/jsonrpc"]
    assert c.token == "0x91bed8e784249c91611e61c4585c40e21fd0ace2"  # TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc
    assert c.show_address(c.token) == "TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc"
    assert c.decimals == 18 and c.finality.tag == "finalized" and c.max_block_range <= 5000
    with pytest.raises(ConfigError, match="USD1_TRON_RPC_URL"):
        load_config(path, env={k: v for k, v in env.items() if k != "USD1_TRON_RPC_URL"})


def test_tron_non_circulating_accounts_take_every_spelling() -> None:
    extra = (
        f"    non_circulating: [{{address: '{TRON_ADMIN}', label: treasury}},"
        " {address: owner, label: issuer},"
        f" {{address: '41{'ab' * 20}', label: bridge_lock}}]\n"
    )
    chain = load_config_text(tron_chain(USD1_TRON, extra), {}).chains[0]
    assert [(e.address, e.label) for e in chain.non_circulating] == [
        (TRON_ADMIN_HEX, "treasury"),
        ("owner", "issuer"),
        ("0x" + "ab" * 20, "bridge_lock"),
    ]
    bad = f"    non_circulating: [{{address: '{TRON_ADMIN[:-1]}x', label: treasury}}]\n"
    assert one_problem(tron_chain(USD1_TRON, bad)).startswith(
        "chains.0.non_circulating: entry 0: invalid Tron address"
    )


# --------------------------------------------------------------------------------------------
# Watchlists (issue #17 item 5)


def test_watchlists_load_with_the_reload_default() -> None:
    cfg = load_config_text(
        MINIMAL
        + "watchlists:\n"
        + "  - {name: ofac-eth, url: lists/sanctioned_addresses_ETH.txt, format: ofac_txt}\n"
        + "  - {name: ofac-usdt, url: 'https://example.org/usdt.json', format: ofac_json}\n"
        + "  - {name: own, url: 'file:///etc/usd1/own.csv', format: csv}\n",
        {},
    )
    assert [(w.name, w.format) for w in cfg.watchlists] == [
        ("ofac-eth", "ofac_txt"),
        ("ofac-usdt", "ofac_json"),
        ("own", "csv"),
    ]
    assert cfg.watchlist_reload_seconds == 300.0
    assert load_config_text(MINIMAL, {}).watchlists == []
    assert load_config_text(MINIMAL + "watchlist_reload_seconds: 1m\n", {}).watchlist_reload_seconds == 60.0


def test_bad_watchlist_entries_are_named() -> None:
    found = problems(
        MINIMAL
        + "watchlists:\n"
        + "  - {name: ok, url: a.txt, format: ofac_txt}\n"
        + "  - {name: Bad, url: 'ftp://x/y', format: xml}\n"
        + "  - {name: ok, url: b.txt, format: csv}\n"
        + "  - {url: c.txt, format: csv}\n"
    )
    assert found == [
        "watchlists.1.name: invalid name 'Bad': use lowercase letters, digits, '_' and '-'",
        "watchlists.1.url: invalid watchlist url 'ftp://x/y': expected a file path, file://, http:// or https://",
        "watchlists.1.format: Input should be 'ofac_txt', 'ofac_json' or 'csv'",
        "watchlists.3.name: missing (required)",
    ]
    assert (
        one_problem(
            MINIMAL + "watchlists: [{name: a, url: x, format: csv}, {name: a, url: y, format: csv}]\n"
        )
        == "watchlists: duplicate watchlist name 'a' (entries 0 and 1)"
    )
