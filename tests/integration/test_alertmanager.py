"""Alertmanager routing and inhibition: amtool, the YAML itself, and a real alertmanager process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alerts" / "alertmanager.yml"
RULES = ROOT / "alerts" / "usd1.rules.yml"

needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool not installed (Debian package prometheus-alertmanager)"
)
AM_BINARY = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


def _config() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return doc


def _alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


# --- amtool ----------------------------------------------------------------------------------


@needs_amtool
def test_amtool_check_config() -> None:
    proc = subprocess.run(["amtool", "check-config", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _route(labels: dict[str, str], expect: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={expect}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


ROUTE_CASES = [
    ({"severity": "page", "alertname": "USD1IndexerStalled", "chain": "ethereum"}, "usd1-pager"),
    ({"severity": "page", "alertname": "USD1FinalityViolation", "chain": "solana"}, "usd1-pager"),
    ({"severity": "page", "alertname": "USD1PegDeviationCritical", "venue": "univ2"}, "usd1-pager"),
    ({"severity": "page", "alertname": "USD1IndexerDown"}, "usd1-pager"),
    ({"severity": "ticket", "alertname": "USD1LagOverBudget", "chain": "bsc"}, "usd1-chat"),
    ({"severity": "ticket", "alertname": "USD1VenueStale", "venue": "okx"}, "usd1-chat"),
    ({"severity": "ticket", "alertname": "USD1DeepReorg", "chain": "ethereum"}, "usd1-chat"),
    # Unknown or missing severity is never dropped: it lands in chat.
    ({"severity": "warning", "alertname": "SomethingElse"}, "usd1-chat"),
    ({"alertname": "NoSeverity", "chain": "ethereum"}, "usd1-chat"),
]


@needs_amtool
@pytest.mark.parametrize(("labels", "receiver"), ROUTE_CASES)
def test_amtool_routes(labels: dict[str, str], receiver: str) -> None:
    proc = _route(labels, receiver)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


@needs_amtool
def test_every_alert_routes_by_its_severity() -> None:
    expected = {"page": "usd1-pager", "ticket": "usd1-chat"}
    for name, rule in _alerts().items():
        severity = rule["labels"]["severity"]
        proc = _route({"alertname": name, "severity": severity, "chain": "ethereum"}, expected[severity])
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


@needs_amtool
def test_a_wrong_receiver_is_detected() -> None:
    """The check above is meaningful: amtool fails when the receiver differs."""
    proc = _route({"severity": "page", "alertname": "X"}, "usd1-chat")
    assert proc.returncode != 0


# --- the YAML --------------------------------------------------------------------------------


def test_grouping_and_timings() -> None:
    route = _config()["route"]
    assert route["group_by"] == ["alertname", "chain"]
    by_sev = {}
    for child in route["routes"]:
        (matcher,) = child["matchers"]
        by_sev[matcher] = child
    page, ticket = by_sev['severity="page"'], by_sev['severity="ticket"']
    assert page["receiver"] == "usd1-pager" and ticket["receiver"] == "usd1-chat"

    def secs(v: str) -> int:
        units = {"s": 1, "m": 60, "h": 3600}
        return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", v))

    assert secs(page["group_wait"]) <= 60 < secs(ticket["group_wait"])
    assert secs(page["repeat_interval"]) < secs(ticket["repeat_interval"])
    assert secs(page["group_interval"]) <= secs(ticket["group_interval"])


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_no_secrets_committed() -> None:
    receivers = _config()["receivers"]
    keys = {k for k, _ in _walk(receivers)}
    for secret in ("routing_key", "service_key", "api_url", "url", "api_key", "bot_token", "password"):
        assert secret not in keys, f"{secret} must come from a *_file field"
    files = [v for k, v in _walk(receivers) if k.endswith("_file")]
    assert files and all(str(f).startswith("/etc/usd1/secrets/") for f in files)
    pager = next(r for r in receivers if r["name"] == "usd1-pager")
    assert pager["pagerduty_configs"][0]["routing_key_file"]
    chat = next(r for r in receivers if r["name"] == "usd1-chat")
    assert chat["slack_configs"][0]["api_url_file"]


_MATCHER_RE = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for text in matchers:
        m = _MATCHER_RE.match(text)
        assert m, f"unparsable matcher {text!r}"
        name, op, value = m.groups()
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def _inhibits(source: dict[str, str], target: dict[str, str]) -> bool:
    """Alertmanager's rule: source and target matchers match, and the `equal` labels are equal."""
    for rule in _config()["inhibit_rules"]:
        if (
            _matches(rule["source_matchers"], source)
            and _matches(rule["target_matchers"], target)
            and all(source.get(lbl, "") == target.get(lbl, "") for lbl in rule.get("equal", []))
        ):
            return True
    return False


def test_inhibition_rules() -> None:
    rules = _config()["inhibit_rules"]
    for rule in rules:
        assert rule.get("equal"), f"inhibit rule without equal mutes across chains: {rule}"
    names = set(_alerts())
    # Every alertname the matchers mention exists (no typo silently disables a rule).
    for rule in rules:
        for text in rule["source_matchers"] + rule["target_matchers"]:
            m = _MATCHER_RE.match(text)
            assert m
            if m.group(1) == "alertname":
                for alt in m.group(3).split("|"):
                    assert alt in names, f"{alt} in {text!r} is not an alert"

    for cause in ("USD1IndexerStalled", "USD1RpcAllEndpointsDown"):
        for effect in ("USD1LagOverBudget", "USD1SupplyMismatch", "USD1ChainHeadStuck"):
            src = {"alertname": cause, "chain": "ethereum", "severity": "page"}
            dst = {"alertname": effect, "chain": "ethereum", "severity": "page"}
            assert _inhibits(src, dst), f"{cause} should mute {effect} on the same chain"
            assert not _inhibits(src, dst | {"chain": "solana"}), "must not mute other chains"
        stalled_rule = [
            r
            for r in rules
            if _matches(r["source_matchers"], {"alertname": cause})
            and _matches(r["target_matchers"], {"alertname": "USD1LagOverBudget"})
        ]
        assert stalled_rule and all(r["equal"] == ["chain"] for r in stalled_rule)
    assert _inhibits(
        {"alertname": "USD1RpcAllEndpointsDown", "chain": "bsc"},
        {"alertname": "USD1IndexerStalled", "chain": "bsc"},
    )
    assert _inhibits(
        {"alertname": "USD1PegDeviationCritical", "venue": "v"},
        {"alertname": "USD1PegDeviationWarning", "venue": "v"},
    )
    for peg in ("USD1PegDeviationCritical", "USD1PegDeviationWarning"):
        assert _inhibits({"alertname": peg, "venue": "v"}, {"alertname": "USD1DepthCollapse", "venue": "v"})
        assert not _inhibits(
            {"alertname": peg, "venue": "v"}, {"alertname": "USD1DepthCollapse", "venue": "w"}
        )
    # Finality violation is never muted and never mutes; a supply jump is never muted.
    every = [{"alertname": n, "chain": "ethereum", "venue": "v"} for n in names]
    fv = {"alertname": "USD1FinalityViolation", "chain": "ethereum", "venue": "v"}
    jump = {"alertname": "USD1SupplyJump", "chain": "ethereum", "venue": "v"}
    for other in every:
        assert not _inhibits(other, fv), f"{other['alertname']} mutes USD1FinalityViolation"
        assert not _inhibits(fv, other), f"USD1FinalityViolation mutes {other['alertname']}"
        assert not _inhibits(other, jump), f"{other['alertname']} mutes USD1SupplyJump"


# --- a real Alertmanager ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(url: str, data: Any = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip() else None


@pytest.mark.skipif(AM_BINARY is None, reason="alertmanager not installed (prometheus-alertmanager)")
def test_live_alertmanager_inhibits(tmp_path: Path) -> None:
    assert AM_BINARY is not None
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        now = datetime.now(UTC)
        ends = (now + timedelta(minutes=10)).isoformat()

        def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
            return {
                "labels": {"alertname": name, "severity": severity, **labels},
                "annotations": {"summary": name},
                "startsAt": now.isoformat(),
                "endsAt": ends,
            }

        _http(
            f"{base}/api/v2/alerts",
            [
                alert("USD1IndexerStalled", "page", chain="ethereum"),
                alert("USD1LagOverBudget", "ticket", chain="ethereum"),
                alert("USD1SupplyMismatch", "page", chain="ethereum"),
                alert("USD1LagOverBudget", "ticket", chain="solana"),
                alert("USD1FinalityViolation", "page", chain="ethereum"),
                alert("USD1PegDeviationCritical", "page", venue="univ2"),
                alert("USD1PegDeviationWarning", "ticket", venue="univ2"),
                alert("USD1PegDeviationWarning", "ticket", venue="okx"),
            ],
        )
        expected = {
            ("USD1IndexerStalled", "ethereum"): "active",
            ("USD1LagOverBudget", "ethereum"): "suppressed",
            ("USD1SupplyMismatch", "ethereum"): "suppressed",
            ("USD1LagOverBudget", "solana"): "active",
            ("USD1FinalityViolation", "ethereum"): "active",
            ("USD1PegDeviationCritical", "univ2"): "active",
            ("USD1PegDeviationWarning", "univ2"): "suppressed",
            ("USD1PegDeviationWarning", "okx"): "active",
        }
        deadline = time.monotonic() + 15
        while True:
            got: dict[tuple[str, str], dict[str, Any]] = {}
            for a in _http(f"{base}/api/v2/alerts"):
                lbl = a["labels"]
                got[(lbl["alertname"], lbl.get("chain") or lbl.get("venue", ""))] = a["status"]
            states = {k: v["state"] for k, v in got.items()}
            if states == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert states == expected
        assert got[("USD1LagOverBudget", "ethereum")]["inhibitedBy"]
        assert not got[("USD1FinalityViolation", "ethereum")]["inhibitedBy"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
