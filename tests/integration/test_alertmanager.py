"""Alertmanager routing and inhibition: amtool, the YAML itself, and a real alertmanager process."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alertmanager import AM_BINARY, alertmanager_process, http_json

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alerts" / "alertmanager.yml"
RULES = ROOT / "alerts" / "usd1.rules.yml"
RECEIVERS = ROOT / "alerts" / "receivers.example.yml"  # Alertmanager 0.25
RECEIVERS_026 = ROOT / "alerts" / "receivers-am026.example.yml"  # needs 0.26 for its *_file keys
RUNBOOKS = ROOT / "alerts" / "runbooks"

needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool not installed (Debian package prometheus-alertmanager)"
)


def _config() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return doc


def _alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _amtool_version() -> tuple[int, ...]:
    proc = subprocess.run(["amtool", "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"version (\d+)\.(\d+)", proc.stdout + proc.stderr)
    assert m, proc.stdout + proc.stderr
    return int(m.group(1)), int(m.group(2))


# --- amtool ----------------------------------------------------------------------------------


@needs_amtool
@pytest.mark.parametrize("path", [CONFIG, RECEIVERS], ids=["alertmanager.yml", "receivers.example.yml"])
def test_amtool_check_config(path: Path) -> None:
    proc = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@needs_amtool
def test_amtool_check_config_of_the_0_26_receivers() -> None:
    """Telegram and native Discord read their secrets from files only from Alertmanager 0.26 on."""
    if _amtool_version() < (0, 26):
        pytest.skip(f"amtool {_amtool_version()} predates the *_file keys of {RECEIVERS_026.name}")
    proc = subprocess.run(
        ["amtool", "check-config", str(RECEIVERS_026)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_receivers_cover_every_integration() -> None:
    kinds = {
        k
        for path in (RECEIVERS, RECEIVERS_026)
        for r in yaml.safe_load(path.read_text())["receivers"]
        for k in r
        if k.endswith("_configs")
    }
    assert {"pagerduty_configs", "opsgenie_configs", "slack_configs", "telegram_configs"} <= kinds
    assert {"discord_configs", "webhook_configs"} <= kinds


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


SECRET_KEYS = ("routing_key", "service_key", "api_url", "api_key", "bot_token", "password", "credentials")


@pytest.mark.parametrize("path", [CONFIG, RECEIVERS, RECEIVERS_026], ids=lambda p: p.name)
def test_no_secrets_committed(path: Path) -> None:
    receivers = yaml.safe_load(path.read_text())["receivers"]
    keys = {k for k, _ in _walk(receivers)}
    for secret in SECRET_KEYS:
        assert secret not in keys, f"{path.name}: {secret} must come from a *_file field"
    # A URL is a secret for Slack/Discord/PagerDuty-style webhooks; the generic webhook's URL may
    # be plain only when a file carries its credentials.
    for receiver in receivers:
        for hook in receiver.get("webhook_configs", []):
            assert "url_file" in hook or "credentials_file" in hook.get("http_config", {}).get(
                "authorization", {}
            )
        for kind, configs in receiver.items():
            if kind.endswith("_configs") and kind != "webhook_configs":
                assert all("url" not in c and "webhook_url" not in c for c in configs), receiver["name"]
    files = [v for k, v in _walk(receivers) if k.endswith("_file")]
    assert files and all(str(f).startswith("/etc/usd1/secrets/") for f in files)
    if path != CONFIG:
        return
    receivers = _config()["receivers"]
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
    # The consensus page mutes every single-venue market ticket of the deployment, on any venue.
    page = {"alertname": "USD1PegDeviationCritical", "venue": "v", "job": "usd1-indexer", "instance": "a"}
    for ticket in (
        "USD1PegDeviationWarning",
        "USD1PegDeviationUnconfirmed",
        "USD1PegWick",
        "USD1DexCexDivergence",
        "USD1DepthCollapse",
        "USD1PoolImbalance",
        "USD1PoolShareShift",
        "USD1PoolTvlDrop",
    ):
        for venue in ("v", "w"):
            dst = {"alertname": ticket, "venue": venue, "job": "usd1-indexer", "instance": "a"}
            assert _inhibits(page, dst), ticket
            assert not _inhibits(page, dst | {"instance": "b"}), f"{ticket}: another deployment"
    assert not _inhibits(page, {"alertname": "USD1VenueStale", "venue": "w"})  # a separate cause
    for peg in ("USD1PegDeviationUnconfirmed", "USD1PegDeviationWarning"):
        assert _inhibits({"alertname": peg, "venue": "v"}, {"alertname": "USD1DepthCollapse", "venue": "v"})
        assert _inhibits({"alertname": peg, "venue": "v"}, {"alertname": "USD1PegWick", "venue": "v"})
        assert not _inhibits(
            {"alertname": peg, "venue": "v"}, {"alertname": "USD1DepthCollapse", "venue": "w"}
        )
    # A halted follower (finality violation) or a halted chain explains its lag/stall alerts.
    for cause, effects in (
        ("USD1FinalityViolation", ("USD1LagOverBudget", "USD1IndexerStalled", "USD1ChainHeadStuck")),
        ("USD1ChainHeadStuck", ("USD1LagOverBudget",)),
    ):
        for effect in effects:
            assert _inhibits({"alertname": cause, "chain": "bsc"}, {"alertname": effect, "chain": "bsc"})
            assert not _inhibits(
                {"alertname": cause, "chain": "bsc"}, {"alertname": effect, "chain": "solana"}
            )
    # Flows and freezes: the run and the surge page once.
    surge = {"alertname": "USD1RedemptionSurge"}
    assert _inhibits(surge, {"alertname": "USD1RedemptionPace"})
    assert _inhibits(surge, {"alertname": "USD1LargeMintOrBurn", "kind": "burn", "chain": "bsc"})
    assert not _inhibits(surge, {"alertname": "USD1LargeMintOrBurn", "kind": "mint", "chain": "bsc"})
    assert _inhibits(
        {"alertname": "USD1FreezeSurge", "chain": "tron"}, {"alertname": "USD1AccountFrozen", "chain": "tron"}
    )
    # Finality violation and a supply jump are never muted; finality violation mutes only the
    # lag/stall/head alerts above.
    every = [{"alertname": n, "chain": "ethereum", "venue": "v"} for n in names]
    fv = {"alertname": "USD1FinalityViolation", "chain": "ethereum", "venue": "v"}
    jump = {"alertname": "USD1SupplyJump", "chain": "ethereum", "venue": "v"}
    for other in every:
        assert not _inhibits(other, fv), f"{other['alertname']} mutes USD1FinalityViolation"
        assert not _inhibits(other, jump), f"{other['alertname']} mutes USD1SupplyJump"
        if other["alertname"] not in {"USD1LagOverBudget", "USD1IndexerStalled", "USD1ChainHeadStuck"}:
            assert not _inhibits(fv, other), f"USD1FinalityViolation mutes {other['alertname']}"
    _assert_no_inhibition_cycle(rules, names)


def _assert_no_inhibition_cycle(rules: list[dict[str, Any]], names: set[str]) -> None:
    """Alertmanager lets an inhibited alert inhibit others: A mutes B and B mutes A would mute both."""
    edges: dict[str, set[str]] = {n: set() for n in names}
    for rule in rules:
        for src in names:
            if not _matches(
                [m for m in rule["source_matchers"] if m.startswith("alertname")], {"alertname": src}
            ):
                continue
            for dst in names:
                if dst != src and _matches(
                    [m for m in rule["target_matchers"] if m.startswith("alertname")], {"alertname": dst}
                ):
                    edges[src].add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges[start])

    for name in names:
        assert not reaches(name, name, {name}), f"inhibition cycle through {name}"


# --- a real Alertmanager ---------------------------------------------------------------------


_http = http_json

needs_alertmanager = pytest.mark.skipif(
    AM_BINARY is None, reason="alertmanager not installed (prometheus-alertmanager)"
)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager with alerts/alertmanager.yml on a loopback port; yields its base URL."""
    with alertmanager_process(CONFIG, tmp_path_factory.mktemp("alertmanager")) as base:
        yield base


def _post_alerts(base: str, alerts: list[tuple[str, str, dict[str, str]]]) -> None:
    now = datetime.now(UTC)
    ends = (now + timedelta(minutes=10)).isoformat()
    _http(
        f"{base}/api/v2/alerts",
        [
            {
                "labels": {"alertname": name, "severity": severity, **labels},
                "annotations": {"summary": name},
                "startsAt": now.isoformat(),
                "endsAt": ends,
            }
            for name, severity, labels in alerts
        ],
    )


def _states(base: str, expected: dict[tuple[str, str], str], key: str) -> dict[tuple[str, str], Any]:
    """Poll the alerts until their states are `expected` (15 s at most); (alertname, labels[key]
    or chain or venue) -> the alert's status."""
    deadline = time.monotonic() + 15
    while True:
        got: dict[tuple[str, str], dict[str, Any]] = {}
        for a in _http(f"{base}/api/v2/alerts"):
            lbl = a["labels"]
            ident = (lbl["alertname"], lbl.get(key) or lbl.get("chain") or lbl.get("venue", ""))
            if ident in expected:
                got[ident] = a["status"]
        states = {k: v["state"] for k, v in got.items()}
        if states == expected or time.monotonic() > deadline:
            assert states == expected
            return got
        time.sleep(0.2)


@needs_alertmanager
def test_live_alertmanager_inhibits(alertmanager: str) -> None:
    _post_alerts(
        alertmanager,
        [
            ("USD1IndexerStalled", "page", {"chain": "ethereum"}),
            ("USD1LagOverBudget", "ticket", {"chain": "ethereum"}),
            ("USD1SupplyMismatch", "page", {"chain": "ethereum"}),
            ("USD1LagOverBudget", "ticket", {"chain": "solana"}),
            ("USD1FinalityViolation", "page", {"chain": "bsc"}),
            ("USD1LagOverBudget", "ticket", {"chain": "bsc"}),
            ("USD1PegDeviationCritical", "page", {"venue": "univ2", "job": "usd1-indexer"}),
            ("USD1PegDeviationWarning", "ticket", {"venue": "univ2", "job": "usd1-indexer"}),
            ("USD1PegDeviationWarning", "ticket", {"venue": "okx", "job": "usd1-indexer"}),
            ("USD1PoolImbalance", "ticket", {"venue": "univ3", "job": "usd1-indexer"}),
            ("USD1PegWick", "ticket", {"venue": "curve", "job": "other-deployment"}),
        ],
    )
    got = _states(
        alertmanager,
        {
            ("USD1IndexerStalled", "ethereum"): "active",
            ("USD1LagOverBudget", "ethereum"): "suppressed",
            ("USD1SupplyMismatch", "ethereum"): "suppressed",
            ("USD1LagOverBudget", "solana"): "active",
            ("USD1FinalityViolation", "bsc"): "active",
            ("USD1LagOverBudget", "bsc"): "suppressed",  # the halted follower's lag
            # the consensus page mutes every single-venue ticket of its deployment, not another's
            ("USD1PegDeviationCritical", "univ2"): "active",
            ("USD1PegDeviationWarning", "univ2"): "suppressed",
            ("USD1PegDeviationWarning", "okx"): "suppressed",
            ("USD1PoolImbalance", "univ3"): "suppressed",
            ("USD1PegWick", "curve"): "active",
        },
        key="venue",
    )
    assert got[("USD1LagOverBudget", "ethereum")]["inhibitedBy"]
    assert not got[("USD1FinalityViolation", "bsc")]["inhibitedBy"]
    assert got[("USD1LagOverBudget", "bsc")]["inhibitedBy"]


def _runbook_commands(name: str) -> list[str]:
    """The `amtool silence add` commands of a runbook's code blocks (continuations joined)."""
    text = (RUNBOOKS / f"{name}.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    joined = [re.sub(r"\\\n\s*", " ", b) for b in blocks]
    return [
        line.strip()
        for b in joined
        for line in b.splitlines()
        if line.strip().startswith("amtool silence add")
    ]


def _future(text: str) -> str:
    """Move every RFC 3339 time of a command to the same time of day tomorrow (a silence may not end
    in the past), keeping the window's length."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    return re.sub(r"\d{4}-\d{2}-\d{2}T", f"{tomorrow}T", text)


@needs_amtool
@needs_alertmanager
def test_runbook_silence_for_a_planned_upgrade_works_on_a_real_alertmanager(alertmanager: str) -> None:
    """The runbook's `amtool silence add` lines run as written (real amtool, real Alertmanager):
    each silences exactly USD1ImplementationUpgraded on the named chain for the stated window."""
    commands = _runbook_commands("USD1ImplementationUpgraded")
    assert len(commands) == 2, commands  # starting now, and a window scheduled ahead
    for command in commands:
        argv = shlex.split(_future(command).replace("$AM", alertmanager).replace("$USER", "test"))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
    silences = [s for s in _http(f"{alertmanager}/api/v2/silences") if s["status"]["state"] != "expired"]
    assert len(silences) == 2, silences
    for silence in silences:
        matchers = {(m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in silence["matchers"]}
        assert matchers == {
            ("alertname", "USD1ImplementationUpgraded", True, False),
            ("chain", "ethereum", True, False),
        }
        assert "Planned upgrade" in silence["comment"]
        start = datetime.fromisoformat(silence["startsAt"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
        assert abs(end - start - timedelta(hours=3)) < timedelta(seconds=5), (start, end)
    assert {s["status"]["state"] for s in silences} == {"active", "pending"}
    # The active one silences the upgrade page on ethereum only.
    _post_alerts(
        alertmanager,
        [
            ("USD1ImplementationUpgraded", "page", {"chain": "ethereum", "kind": "upgraded"}),
            ("USD1ImplementationUpgraded", "page", {"chain": "bsc", "kind": "upgraded"}),
            ("USD1ProxyAdminChanged", "page", {"chain": "ethereum", "kind": "admin_changed"}),
        ],
    )
    got = _states(
        alertmanager,
        {
            ("USD1ImplementationUpgraded", "ethereum"): "suppressed",
            ("USD1ImplementationUpgraded", "bsc"): "active",
            ("USD1ProxyAdminChanged", "ethereum"): "active",
        },
        key="chain",
    )
    assert got[("USD1ImplementationUpgraded", "ethereum")]["silencedBy"]
