"""Alert rules: promtool check/test, and every alert has firing and quiet tests and a runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.dashboards import metric_names
from tests.support.rules import (
    PENDING_METRICS,
    ROOT,
    RULES,
    RUNBOOK_BASE,
    alert_rules,
    all_rules,
    exported_metrics,
    recording_rules,
    source_metrics,
)

ALERTS = ROOT / "alerts"
TESTS = sorted((ALERTS / "tests").glob("*.yml"))

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)


def _rules() -> list[dict[str, Any]]:
    return alert_rules()


def _duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def _promtool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = _promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in proc.stdout


@needs_promtool
@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    """One promtool run per file (the replays evaluate every rule over days of series: seconds each)."""
    proc = _promtool("test", "rules", str(path), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 1, proc.stdout


def test_promtool_tests_exist() -> None:
    names = {p.name for p in TESTS}
    assert {"controls.test.yml", "flows.test.yml", "pools.test.yml", "episodes.test.yml"} <= names, names


def test_every_alert_is_labelled_annotated_and_has_a_runbook() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"USD1[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        ann = rule["annotations"]
        assert ann["summary"].strip() and ann["description"].strip(), name
        # The description carries values: $value, $labels or a templated query.
        assert re.search(r"\$value|\$labels|\| query|query `", ann["description"]), name
        assert ann["runbook_url"] == f"{RUNBOOK_BASE}{name}.md", name
        runbook = ALERTS / "runbooks" / f"{name}.md"
        assert runbook.is_file(), f"missing runbook {runbook}"
        text = runbook.read_text()
        assert text.startswith(f"# {name}"), runbook
        for section in ("## Meaning", "## Confirm", "## Act", "## Escalate"):
            assert section in text, f"{runbook}: missing {section!r}"
    runbooks = {p.stem for p in (ALERTS / "runbooks").glob("*.md")}
    assert runbooks == set(names), f"runbooks without an alert: {runbooks - set(names)}"


def test_required_alerts_exist() -> None:
    names = {r["alert"] for r in _rules()}
    required = {
        "USD1PegDeviationWarning",
        "USD1PegDeviationCritical",
        "USD1DepthCollapse",
        "USD1SupplyMismatch",
        "USD1SupplyJump",
        "USD1BackingRatioBelowOne",
        "USD1IndexerStalled",
        "USD1LagOverBudget",
        "USD1FinalityViolation",
        "USD1DeepReorg",
        "USD1RpcAllEndpointsDown",
        "USD1VenueStale",
        "USD1IndexerDown",
    }
    assert required <= names, required - names
    down = next(r for r in _rules() if r["alert"] == "USD1IndexerDown")
    assert 'absent(up{job="usd1-indexer"}' in down["expr"]


def test_every_alert_has_firing_and_quiet_promtool_cases() -> None:
    firing: dict[str, set[str]] = defaultdict(set)
    quiet: dict[str, set[str]] = defaultdict(set)
    for path in TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../usd1.rules.yml"], path
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                bucket = firing if check.get("exp_alerts") else quiet
                bucket[check["alertname"]].add(f"{path.name}: {case['name']}")
                for exp in check.get("exp_alerts") or []:
                    # promtool compares annotations exactly: a firing case must state them.
                    assert set(exp.get("exp_annotations", {})) == {
                        "summary",
                        "description",
                        "runbook_url",
                    }, f"{case['name']}: {check['alertname']} needs exp_annotations"
    for rule in _rules():
        name = rule["alert"]
        assert firing[name], f"{name} has no promtool case where it fires"
        # Quiet on normal traffic; and, when it has a `for:`, also on a blip shorter than it.
        needed = 2 if _duration_seconds(rule.get("for", "0s")) > 0 else 1
        assert len(quiet[name]) >= needed, f"{name} needs {needed} quiet cases, has {sorted(quiet[name])}"


def test_rules_use_only_exported_metrics() -> None:
    defined = exported_metrics() | PENDING_METRICS
    records = recording_rules()
    for name, expr in records.items():
        assert re.fullmatch(r"[a-z_]+:usd1_[a-z0-9_]+:[a-z0-9_]+", name), f"recorded name {name!r}"
        assert source_metrics(expr) <= defined, f"{name}: unknown metrics {source_metrics(expr) - defined}"
    for rule in _rules():
        used = source_metrics(rule["expr"], records)
        assert used, rule["alert"]
        assert used <= defined, f"{rule['alert']}: unknown metrics {used - defined}"
    # Every recorded series is used by an alert or another recording rule.
    used_names = set().union(*(metric_names(r["expr"]) for r in all_rules()))
    assert set(records) <= used_names, set(records) - used_names


def test_pending_metrics_are_not_yet_exported() -> None:
    """A name leaves PENDING_METRICS when indexer/metrics.py creates it (keeps the list honest)."""
    assert not PENDING_METRICS & exported_metrics(), PENDING_METRICS & exported_metrics()


def test_readme_documents_job_name_and_thresholds() -> None:
    text = (ALERTS / "README.md").read_text()
    assert "job_name: usd1-indexer" in text
    for rule in _rules():
        assert rule["alert"] in text, f"alerts/README.md does not list {rule['alert']}"
