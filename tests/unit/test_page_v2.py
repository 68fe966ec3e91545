"""The transparency page's pure parts (issue #16 item 7): the stacked supply chart's geometry and
SVG, and the total -> circulating breakdown."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.api.chart import Box, stack_geometry, stacked_svg
from indexer.api.page import breakdown, depth_band, fmt_duration, market_view
from indexer.store import queries as q
from indexer.supply_classes import classify

BOX = Box()
T = datetime(2026, 3, 1, tzinfo=UTC)


@st.composite
def stacks(draw: st.DrawFn) -> list[tuple[str, list[int]]]:
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 5))
    value = st.integers(0, 10**27)  # up to a billion tokens at 18 decimals
    return [(f"c{j}", draw(st.lists(value, min_size=n, max_size=n))) for j in range(k)]


@given(stacks())
def test_stack_heights_sum_to_the_total_scaled_to_the_viewbox(series: list[tuple[str, list[int]]]) -> None:
    g = stack_geometry(series, BOX)
    n = len(series[0][1])
    totals = [sum(v[i] for _, v in series) for i in range(n)]
    assert g.top == (max(totals) or 1) + (max(totals) or 1) // 20
    h = BOX.plot_height
    for i in range(n):
        heights = [layer.lower[i] - layer.upper[i] for layer in g.layers]
        assert all(x >= 0 for x in heights)
        assert sum(heights) == pytest.approx(h * totals[i] / g.top, abs=1e-6)
        # bottom layer on the baseline, each on the one below, the top edge at the total
        assert g.layers[0].lower[i] == BOX.baseline
        for below, above in zip(g.layers, g.layers[1:], strict=False):
            assert above.lower[i] == below.upper[i]
        assert g.layers[-1].upper[i] == pytest.approx(BOX.baseline - h * totals[i] / g.top)
        assert BOX.pad_top <= g.layers[-1].upper[i] <= BOX.baseline
    assert n == 1 or (g.xs[0] == BOX.pad_left and g.xs[-1] == BOX.pad_left + BOX.plot_width)


def test_the_svg_draws_one_closed_step_area_per_chain_in_its_viewbox() -> None:
    times = [T + timedelta(hours=i) for i in range(3)]
    series = [("ethereum", [100, 200, 200]), ("bsc", [0, 50, 100])]
    svg = str(stacked_svg(times, series, "Supply by chain", lambda v: f"{v} raw"))
    assert 'viewBox="0 0 720 240"' in svg and 'data-points="3"' in svg and 'data-layers="2"' in svg
    paths = re.findall(r'<path d="([^"]+)" class="layer s(\d)" data-chain="([^"]+)"/>', svg)
    assert [(css, chain) for _, css, chain in paths] == [("0", "ethereum"), ("1", "bsc")]
    # top = 300 + 15; plot height 194 from y=22: value v at 216 - 194 * v / 315
    y = [f"{216 - 194 * v / 315:.2f}" for v in (100, 200, 250, 300)]
    top_edge = paths[1][0]
    assert top_edge.startswith(f"M8.00,{y[0]}H360.00V{y[2]}H712.00V{y[3]}V")
    assert top_edge.endswith("Z")
    assert ">315 raw</text>" in svg  # the top label, formatted by the caller
    assert "2026-03-01 00:00" in svg and "2026-03-01 02:00" in svg


def test_chart_errors_name_what_is_wrong() -> None:
    assert "No supply history" in str(stacked_svg([], [], "", str))
    with pytest.raises(ValueError, match="'bsc' has a negative value"):
        stack_geometry([("eth", [1]), ("bsc", [-1])])
    with pytest.raises(ValueError, match="different lengths"):
        stack_geometry([("eth", [1, 2]), ("bsc", [1])])


def supply(chain: str, decimals: int, total: int, labelled: dict[str, int], frozen: int) -> q.ChainSupply:
    accounts = [(f"0x{i:040x}", label) for i, label in enumerate(labelled)]
    balances = {a: labelled[label] for a, label in accounts} | {"0xf": frozen}
    classes = classify(total, accounts, balances, {"0xf": frozen})
    totals = q.Totals(1, T, total, 0)
    at = q.AsOf(chain, 1, "0x1", T, 1, T)
    return q.ChainSupply(chain, decimals, at, totals, totals, classes, classes)


def test_breakdown_sums_chains_in_the_largest_precision_and_adds_up() -> None:
    eth = supply("ethereum", 18, 10 * 10**18, {"treasury": 3 * 10**18, "bridge_lock": 2 * 10**18}, 10**18)
    sol = supply("solana", 6, 2 * 10**6, {"treasury": 500_000}, 0)  # 2 tokens bridged, 0.5 in treasury
    glob, *chains = breakdown([eth, sol])
    assert [b.scope for b in chains] == ["ethereum", "solana"]
    assert glob.scope == "all" and glob.total.exact == "12"
    assert {label: f.exact for label, f in glob.labels} == {"bridge_lock": "2", "treasury": "3.5"}
    assert glob.frozen is not None and glob.frozen.exact == "1"
    assert glob.circulating is not None and glob.circulating.exact == "5.5"
    assert glob.circulating.raw == glob.total.raw - sum(f.raw for _, f in glob.labels) - glob.frozen.raw
    s = chains[1]
    assert (s.total.exact, s.circulating and s.circulating.exact, s.total.decimals) == ("2", "1.5", 6)


def test_breakdown_has_no_global_circulating_while_a_chain_has_no_classes() -> None:
    eth = supply("ethereum", 18, 10**18, {}, 0)
    bare = q.ChainSupply("solana", 6, q.AsOf("solana"), q.Totals(), q.Totals())
    glob, *chains = breakdown([eth, bare])
    assert [b.scope for b in chains] == ["ethereum"]
    assert glob.total.exact == "1" and glob.circulating is None and glob.frozen is None and glob.labels == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (45, "45 s"),
        (600, "10 min"),
        (725, "12 min 5 s"),
        (3600, "1 h"),
        (12000, "3 h 20 min"),
        (30 * 86400, "30 d"),
        (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"),
    ],
)
def test_durations_read_short(seconds: int, shown: str) -> None:
    assert fmt_duration(Decimal(seconds)) == shown


def test_market_view_sums_live_venues_within_one_cent() -> None:
    from indexer.market.service import VenueSnapshot

    up = VenueSnapshot(
        "a",
        "orderbook",
        True,
        Decimal("0.9990"),
        Decimal("-10"),
        {"bid": {"100bps": Decimal("5"), "50bps": Decimal(1)}, "ask": {"100bps": Decimal("7.5")}},
    )
    odd = VenueSnapshot(
        "b",
        "uniswap_v3",
        True,
        Decimal("1.0001"),
        Decimal("1"),
        {"bid": {"100bps": Decimal(2)}},
        depth_complete=False,
    )
    down = VenueSnapshot(
        "c", "uniswap_v2", False, Decimal("0.9"), Decimal("-1000"), {"bid": {"100bps": Decimal(99)}}
    )
    never = VenueSnapshot("d", "orderbook", False)
    m = market_view({v.name: v for v in (up, odd, down, never)}, [10, 50, 100])
    assert (m.band_bps, m.depth, m.complete, m.median_deviation) == (100, Decimal("14.5"), False, "-4.5")
    assert [(r.name, r.depth, r.deviation) for r in m.venues] == [
        ("a", Decimal("12.5"), "-10.0"),
        ("b", Decimal(2), "+1.0"),
        ("c", Decimal(99), "-1000.0"),
        ("d", None, "—"),
    ]
    assert depth_band([10, 50]) == 50 and depth_band([200, 500]) == 200 and depth_band([100, 200]) == 100
