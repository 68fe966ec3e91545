"""Dashboards: deterministic build matching dashboards/build/, panel hygiene, metric contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer import dashboards
from tests.support.rules import PENDING_METRICS, exported_metrics

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "dashboards" / "build"
EXPECTED = {"supply", "peg", "health", "risk"}


def defined_metric_names() -> set[str]:
    """Every series name the daemon can export (a fresh Metrics() registry, plus `up`), and the
    pending ones other work adds (tests/support/rules.py)."""
    return set(exported_metrics() | PENDING_METRICS)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dashboards")
    paths = dashboards.build(out)
    return {p.stem: json.loads(p.read_text()) for p in paths}


def test_build_writes_one_json_per_source(tmp_path: Path) -> None:
    paths = dashboards.build(tmp_path)
    assert {p.name for p in paths} == {f"{n}.json" for n in EXPECTED}
    assert all(p.parent == tmp_path for p in paths)


def test_build_is_deterministic_and_matches_checked_in_json(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in dashboards.build(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in dashboards.build(tmp_path / "b")}
    assert first == second
    checked_in = {p.name: p.read_bytes() for p in BUILD.glob("*.json")}
    assert set(checked_in) == set(first), "dashboards/build/ has missing or extra files"
    for name, data in first.items():
        assert checked_in[name] == data, (
            f"dashboards/build/{name} is out of date: run `usd1-indexer dashboards build` "
            "(or `make dashboards`) and commit the result"
        )


def test_json_is_sorted_and_uids_stable(built: dict[str, dict[str, Any]]) -> None:
    for name, board in built.items():
        assert board["uid"] == f"usd1-{name}"
        text = (BUILD / f"{name}.json").read_text()
        assert text == json.dumps(board, sort_keys=True, indent=2) + "\n", f"{name}: keys not sorted"
        ids = [p["id"] for p in dashboards.panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


def _data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboards.panels(board) if p.get("type") != "row"]


def test_every_panel_has_description_unit_thresholds_and_datasource(
    built: dict[str, dict[str, Any]],
) -> None:
    for name, board in built.items():
        assert board["description"], name
        for panel in _data_panels(board):
            where = f"{name}: panel {panel['title']!r}"
            assert (panel.get("description") or "").strip(), f"{where} has no description"
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("unit"), f"{where} has no unit"
            steps = defaults["thresholds"]["steps"]
            assert steps and steps[0]["value"] is None, f"{where} has no thresholds base step"
            assert panel["datasource"] == dashboards.DATASOURCE, where
            assert panel["targets"], f"{where} has no query"
            for t in panel["targets"]:
                assert t["datasource"] == dashboards.DATASOURCE, where
                assert t["expr"].strip(), where
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where


def test_required_panels_exist(built: dict[str, dict[str, Any]]) -> None:
    exprs = {name: " ".join(dashboards.expressions(board)) for name, board in built.items()}
    for metric in (
        "usd1_supply",
        "usd1_supply_total",
        "usd1_minted_tokens_total",
        "usd1_burned_tokens_total",
        "usd1_supply_mismatch_tokens",
        "usd1_backing_ratio_at_as_of",
        "usd1_backing_coverage",
    ):
        assert metric in exprs["supply"], metric
    for metric in (
        "usd1_price_usd",
        "usd1_peg_deviation_bps",
        "usd1_depth_usd",
        "usd1_venue_up",
        "usd1_venue_last_success_timestamp_seconds",
    ):
        assert metric in exprs["peg"], metric
    for metric in (
        "usd1_block_number",
        "usd1_lag_seconds",
        "usd1_chain_state",
        "usd1_reorgs_total",
        "usd1_reorg_depth_blocks_bucket",
        "usd1_rpc_requests_total",
        "usd1_rpc_request_seconds_bucket",
        "usd1_events_total",
        "usd1_database_up",
    ):
        assert metric in exprs["health"], metric
    for metric in (
        "usd1_control_info",
        "usd1_paused",
        "usd1_frozen_accounts",
        "usd1_frozen_tokens",
        "usd1_control_events_total",
        "usd1_last_control_event_timestamp_seconds",
        "usd1_pool_token_share",
        "usd1_pool_tvl_usd",
        "usd1_large_events_total",
        "usd1_watchlist_transfers_total",
        "usd1_venue_info",
    ):
        assert metric in exprs["risk"], metric
    rows = [p["title"] for p in built["risk"]["panels"] if p.get("type") == "row"]
    assert rows == ["Controls", "Market risk"]


def test_expressions_reference_only_defined_metrics(built: dict[str, dict[str, Any]]) -> None:
    defined = defined_metric_names()
    for name, board in built.items():
        exprs = dashboards.expressions(board)
        assert exprs, name
        for expr in exprs:
            used = dashboards.metric_names(expr)
            assert used, f"{name}: {expr!r} selects no metric"
            unknown = used - defined
            assert not unknown, f"{name}: {expr!r} uses metrics not in indexer/metrics.py: {unknown}"
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"])
                assert m and m.group(1) in defined, var["query"]


def test_variables_used_are_defined(built: dict[str, dict[str, Any]]) -> None:
    for name, board in built.items():
        defined = dashboards.variable_names(board)
        ds = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
        assert ds and ds[0]["type"] == "datasource" and ds[0]["query"] == "prometheus", name
        texts = list(dashboards.expressions(board))
        texts += [json.dumps(p.get("datasource")) for p in dashboards.panels(board)]
        for text in texts:
            for m in re.finditer(r"\$\{?(\w+)", text):
                var = m.group(1)
                if var.startswith("__"):  # Grafana built-ins: $__rate_interval, $__range, ...
                    continue
                assert var in defined, f"{name}: ${var} used but not defined ({text!r})"
    assert "chain" in dashboards.variable_names(built["supply"])
    assert "chain" in dashboards.variable_names(built["health"])
    assert "venue" in dashboards.variable_names(built["peg"])


def test_expressions_helper_substitutes_variables(built: dict[str, dict[str, Any]]) -> None:
    raw = dashboards.expressions(built["health"])
    assert any("$chain" in e for e in raw)
    assert any("$__rate_interval" in e for e in raw)
    resolved = dashboards.expressions(built["health"], variables=dashboards.DEFAULT_VARIABLES)
    assert len(resolved) == len(raw)
    assert not any("$" in e for e in resolved)
    assert dashboards.substitute('x{a=~"${chain}"}[$__range]', {"chain": "eth", "__range": "1h"}) == (
        'x{a=~"eth"}[1h]'
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt prometheus)")
def test_expressions_are_valid_promql(built: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Each expression, with Grafana variables substituted, parses as PromQL (promtool check rules)."""
    rules = []
    for name, board in built.items():
        for i, expr in enumerate(dashboards.expressions(board, variables=dashboards.DEFAULT_VARIABLES)):
            rules.append({"record": f"dashboard:{name}:{i}", "expr": expr})
    path = tmp_path / "dashboard-exprs.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_load_rejects_a_source_without_dashboard(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dashboard.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ValueError, match="dashboard"):
        dashboards.build(tmp_path / "out", src_dir=tmp_path)
