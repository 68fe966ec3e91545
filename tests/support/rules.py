"""The alert rules file as data, for the tests that check it (promtool, Alertmanager, dashboards, e2e).

- `alert_rules()` / `recording_rules()`: the rules of alerts/usd1.rules.yml.
- `exported_metrics()`: every series name the daemon can export (a fresh `Metrics()` registry,
  counters with `_total`/`_created`, histograms with their parts) plus `up`.
- `PENDING_METRICS`: metrics the rules and dashboards use before indexer/metrics.py creates them,
  each owned by another piece of work; an expression on them must parse but may find no series.
- `source_metrics(expr)`: the metrics an expression is built from, with recorded series
  (`level:metric:operation`) expanded to the metrics of their recording rules.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

from indexer.dashboards import metric_names
from indexer.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "usd1.rules.yml"
RUNBOOK_BASE = "https://github.com/usd1-indexer/usd1-indexer/blob/main/alerts/runbooks/"

# Used by alerts/usd1.rules.yml and dashboards/ before the daemon exports them (names fixed in
# DESIGN.md section 3). Remove a name here when indexer/metrics.py gains it.
PENDING_METRICS: frozenset[str] = frozenset()


# Exported by the daemon, but without series on the devnet the e2e test runs (no chain of it has
# the families that export them). The devnet runs a USD1 chain (devnet-usd1, profile usd1) that
# exports every control metric; its config lists no watchlist, so there is no (chain, list) series
# of the watchlist counters, and no bridge. Add a name when a metric needs something the devnet lacks.
NOT_ON_DEVNET: frozenset[str] = frozenset(
    {
        "usd1_watchlist_transfers_total",
        "usd1_watchlist_tokens_total",
        "usd1_bridge_backing_gap_tokens",  # the devnet configures no bridge (README "Bridges")
        "usd1_supply_check_skipped_total",  # latest-only (Tron) chains skip checks; the devnet has none
    }
)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def all_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [r for r in all_rules() if "alert" in r]


def recording_rules() -> dict[str, str]:
    """Recorded series name -> its expression."""
    return {r["record"]: r["expr"] for r in all_rules() if "record" in r}


@cache
def exported_metrics() -> frozenset[str]:
    names = {"up"}
    families: list[Metric] = list(Metrics().registry.collect())
    for fam in families:
        names.add(fam.name)
        if fam.type == "counter":
            names |= {f"{fam.name}_total", f"{fam.name}_created"}
        elif fam.type == "histogram":
            names |= {f"{fam.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        elif fam.type == "summary":
            names |= {f"{fam.name}_{s}" for s in ("count", "sum", "created")}
    return frozenset(names)


def source_metrics(expr: str, records: dict[str, str] | None = None) -> set[str]:
    """Metric names `expr` selects, recorded series replaced by what their rules select."""
    records = recording_rules() if records is None else records
    out: set[str] = set()
    todo, seen = list(metric_names(expr)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in records:
            todo.extend(metric_names(records[name]))
        else:
            out.add(name)
    return out


__all__ = [
    "PENDING_METRICS",
    "ROOT",
    "RULES",
    "RUNBOOK_BASE",
    "alert_rules",
    "all_rules",
    "exported_metrics",
    "recording_rules",
    "rule_groups",
    "source_metrics",
]
