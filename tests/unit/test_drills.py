"""Drill plans (pure): what each drill does on config/devnet.yaml, and that the alerts it promises
exist with that severity and that every inhibition it promises is a rule of alerts/alertmanager.yml."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from indexer.cli import main
from indexer.config import Config, load_config
from indexer.devnet.anvil import free_port
from indexer.drills import (
    DRILL_NAMES,
    DrillError,
    DrillOptions,
    DrillTarget,
    admin_base,
    parse_devnet_urls,
    plan_drill,
    target_from_config,
)

ROOT = Path(__file__).resolve().parents[2]
DEVNET = ROOT / "config" / "devnet.yaml"
RULES = ROOT / "alerts" / "usd1.rules.yml"
AM = ROOT / "alerts" / "alertmanager.yml"
VENUE = "devnet-univ2-usd1-usdc"


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(DEVNET)


def _severities() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["labels"]["severity"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _alertname_matches(matchers: list[str], name: str) -> bool:
    for m in matchers:
        got = re.fullmatch(r'alertname(=~|=)"(.*)"', m)
        if got:
            return re.fullmatch(got.group(2), name) is not None
    return False


def _inhibited(source: str, target: str) -> bool:
    rules: list[dict[str, Any]] = yaml.safe_load(AM.read_text())["inhibit_rules"]
    return any(
        _alertname_matches(r["source_matchers"], source) and _alertname_matches(r["target_matchers"], target)
        for r in rules
    )


def _floor(cfg: Config, floor: float) -> Config:
    doc = cfg.model_dump(mode="json")
    doc["venues"][0]["page_depth_floor_usd"] = floor
    return Config.model_validate(doc)


@pytest.mark.parametrize("name", DRILL_NAMES)
@pytest.mark.parametrize("floor", [None, 100.0])
def test_every_promised_alert_exists_and_every_promised_inhibition_is_a_rule(
    cfg: Config, name: Any, floor: float | None
) -> None:
    plan = plan_drill(name, target_from_config(cfg if floor is None else _floor(cfg, floor)))
    severities = _severities()
    assert plan.alerts, name
    for a in plan.alerts:
        assert severities.get(a.name) == a.severity, a
        if a.muted_by is not None:
            assert a.muted_by in severities, a
            assert _inhibited(a.muted_by, a.name), f"{a.muted_by} does not inhibit {a.name}"
    assert name in plan.render()


def test_depeg_pages_only_with_a_paging_floor(cfg: Config) -> None:
    alone = plan_drill("depeg", target_from_config(cfg))
    assert alone.pages == []  # one venue, no floor: Unconfirmed is a ticket
    assert [a.name for a in alone.alerts][:2] == ["USD1PegWick", "USD1PegDeviationUnconfirmed"]
    deep = plan_drill("depeg", target_from_config(_floor(cfg, 100)), DrillOptions(bps=-300))
    assert [(a.name, dict(a.labels)) for a in deep.pages] == [("USD1PegDeviationCritical", {"venue": VENUE})]
    muted = {a.name: a.muted_by for a in deep.alerts}
    assert muted["USD1PegWick"] == muted["USD1PegDeviationWarning"] == "USD1PegDeviationCritical"
    assert "0.9700" in deep.render()
    small = plan_drill("depeg", target_from_config(cfg), DrillOptions(bps=100))
    assert {a.name for a in small.alerts} >= {"USD1PegWick", "USD1PegDeviationWarning"}
    assert not {"USD1PegDeviationCritical", "USD1PegDeviationUnconfirmed"} & {a.name for a in small.alerts}
    assert {a.name: a.muted_by for a in small.alerts}["USD1PegWick"] == "USD1PegDeviationWarning"


def test_targets_and_order(cfg: Config) -> None:
    t = target_from_config(cfg)
    assert plan_drill("upgrade", t).chain is not None and plan_drill("upgrade", t).chain.name == "devnet-usd1"  # type: ignore[union-attr]
    assert plan_drill("redemption-run", t).chain.name == "devnet-usd1"  # type: ignore[union-attr]
    assert plan_drill("pool-drain", t).venue.name == VENUE  # type: ignore[union-attr]
    reorg = plan_drill("deep-reorg", t, DrillOptions(chain="devnet-b"))
    assert reorg.chain is not None and reorg.chain.confirmations == 3
    assert reorg.pages[0].name == "USD1FinalityViolation" and len(reorg.pages) == 1
    stall = plan_drill("stall", t, DrillOptions(chain="devnet-b", hold=30))
    assert [a.name for a in stall.alerts] == ["USD1LagOverBudget", "USD1ChainHeadStuck"]
    assert "automatic after 30s" in stall.render()
    sol_stall = plan_drill("stall", t, DrillOptions(chain="devnet-sol"))
    assert "devnet_setProducing false" in sol_stall.render()
    assert [a.name for a in sol_stall.alerts] == ["USD1LagOverBudget", "USD1ChainHeadStuck"]
    sol_reorg = plan_drill("deep-reorg", t, DrillOptions(chain="devnet-sol"))
    assert "belowFinalized" in sol_reorg.render() and sol_reorg.pages[0].name == "USD1FinalityViolation"
    assert plan_drill("stall", t).chain.kind == "evm"  # type: ignore[union-attr]
    outage = plan_drill("venue-outage", t)  # the devnet book (config/devnet.yaml's devnet-book)
    assert outage.skip is None and outage.venue is not None and outage.venue.name == "devnet-book"
    assert "POST http://127.0.0.1:8590/devnet/outage" in outage.render()
    assert [(a.name, a.severity) for a in outage.alerts] == [
        ("USD1VenueStale", "ticket")
    ] and not outage.pages
    assert "automatic after 60s" in plan_drill("venue-outage", t, DrillOptions(hold=60)).render()
    elsewhere = DrillTarget(
        t.chains, tuple(replace(v, url="https://exchange.example/depth") if v.url else v for v in t.venues)
    )
    far = plan_drill("venue-outage", elsewhere)
    assert far.skip is not None and "on other servers" in far.skip and "SKIPPED" in far.render()
    assert admin_base("http://localhost:8590/api/v3/depth?x=1") == "http://localhost:8590"
    assert admin_base("https://127.0.0.1:8590/") is None and admin_base("http://10.0.0.1:8590/") is None
    with pytest.raises(DrillError, match="profile usd1"):
        plan_drill("upgrade", t, DrillOptions(chain="devnet-a"))
    with pytest.raises(DrillError, match="no chain 'nope'"):
        plan_drill("stall", t, DrillOptions(chain="nope"))
    with pytest.raises(DrillError, match="no venue"):
        plan_drill("depeg", t, DrillOptions(venue="nope"))


def test_devnet_urls_and_options(cfg: Config) -> None:
    assert parse_devnet_urls("devnet-a=http://h:1, devnet-usd1=http://h:2") == {
        "devnet-a": "http://h:1",
        "devnet-usd1": "http://h:2",
    }
    assert target_from_config(cfg, {"devnet-a": "http://h:1"}).chain("devnet-a").rpc == "http://h:1"
    for bad in ("devnet-a", "devnet-a=ftp://x", "=http://x"):
        with pytest.raises(DrillError, match="CHAIN="):
            parse_devnet_urls(bad)
    assert target_from_config(cfg, {"devnet-sol": "http://h:9"}).chain("devnet-sol").kind == "solana"
    with pytest.raises(DrillError, match="does not have: nope"):
        target_from_config(cfg, {"nope": "http://h:1"})
    for kwargs in ({"hold": 0}, {"burns": 0}, {"share": 1.5}, {"fraction": 0}, {"depth": 0}, {"bps": 0}):
        with pytest.raises(DrillError):
            DrillOptions(**kwargs)  # type: ignore[arg-type]


def test_cli_dry_run_skip_and_devnet_not_running() -> None:
    runner = CliRunner()
    dry = runner.invoke(main, ["drill", "depeg", "--config", str(DEVNET), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "expected alerts, in order" in dry.output and "dry run: nothing sent" in dry.output
    # The devnet book is not running here: one line, exit 2.
    book_down = runner.invoke(main, ["drill", "venue-outage", "--config", str(DEVNET)])
    assert book_down.exit_code == 2 and "the devnet book is not answering at" in book_down.stderr
    url = f"http://127.0.0.1:{free_port()}"
    down = runner.invoke(
        main, ["drill", "upgrade", "--config", str(DEVNET), "--devnet", f"devnet-usd1={url}"]
    )
    assert down.exit_code == 2
    err = down.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: devnet chain devnet-usd1 is not answering at " + url)
    bad = runner.invoke(main, ["drill", "stall", "--config", str(DEVNET), "--chain", "nope"])
    assert bad.exit_code == 2 and "no chain 'nope'" in bad.stderr
