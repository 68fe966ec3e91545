"""Grafana dashboards: grafanalib sources (dashboards/*.dashboard.py) -> deterministic JSON.

`build(out_dir)` renders every `*.dashboard.py` (grafanalib's convention: a module-level
`dashboard` object) to `out_dir/<name>.json` with sorted keys, so the checked-in files in
dashboards/build/ only change when a source does. `expressions(dashboard_json)` lists every PromQL
expression of a rendered dashboard, for tests that evaluate them against a real Prometheus; pass
`variables=` (e.g. `DEFAULT_VARIABLES`) to substitute Grafana's `$chain`, `$__rate_interval`, ...

The panel helpers below are shared by the dashboard sources, so every panel gets a datasource
from the `$datasource` variable, a description, a unit and thresholds in the same way.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

__all__ = [
    "DATASOURCE",
    "DEFAULT_SOURCE_DIR",
    "DEFAULT_VARIABLES",
    "build",
    "chain_variable",
    "dashboard",
    "datasource_variable",
    "expressions",
    "layout",
    "load",
    "metric_names",
    "panels",
    "render",
    "stat",
    "state_timeline",
    "substitute",
    "target",
    "timeseries",
    "variable_names",
    "venue_variable",
]

SUFFIX = ".dashboard.py"
DEFAULT_SOURCE_DIR = Path(__file__).resolve().parent.parent / "dashboards"

# Every panel and variable queries the Prometheus chosen in the `datasource` variable, so the
# JSON imports into any Grafana without editing datasource UIDs.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

# Values for Grafana's variables when an expression is sent to Prometheus directly: all chains and
# venues, and windows that hold at least two samples at a 15 s scrape interval.
DEFAULT_VARIABLES: dict[str, str] = {
    "chain": ".*",
    "venue": ".*",
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
}

Thresholds = Sequence[tuple[str, float | None]]
GREEN_ONLY: Thresholds = (("green", None),)


# --- variables -------------------------------------------------------------------------------


def datasource_variable() -> g.Template:
    return g.Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        regex="",
    )


def _query_variable(name: str, label: str, query: str) -> g.Template:
    return g.Template(
        name=name,
        label=label,
        query=query,
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".*",
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_ASC,
    )


def chain_variable() -> g.Template:
    return _query_variable("chain", "Chain", "label_values(usd1_block_number, chain)")


def venue_variable() -> g.Template:
    return _query_variable("venue", "Venue", "label_values(usd1_venue_up, venue)")


# --- panels ----------------------------------------------------------------------------------


def target(expr: str, legend: str = "", *, instant: bool = False) -> g.Target:
    """A Prometheus query; refIds are assigned per panel by the panel helpers."""
    return g.Target(expr=expr, legendFormat=legend, instant=instant, datasource=DATASOURCE)


def _with_ref_ids(targets: Sequence[g.Target]) -> list[g.Target]:
    out = []
    for i, t in enumerate(targets):
        t.refId = chr(ord("A") + i)
        t.datasource = DATASOURCE
        out.append(t)
    return out


def _steps(thresholds: Thresholds) -> list[dict[str, Any]]:
    return [{"color": color, "value": value} for color, value in thresholds]


def _value_mappings(mappings: Mapping[str, tuple[str, str]] | None) -> list[dict[str, Any]]:
    """{"1": ("UP", "green")} -> Grafana value mappings."""
    if not mappings:
        return []
    options = {
        value: {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(mappings.items())
    }
    return [{"type": "value", "options": options}]


def timeseries(
    title: str,
    description: str,
    targets: Sequence[g.Target],
    *,
    unit: str,
    thresholds: Thresholds = GREEN_ONLY,
    show_thresholds: bool = False,
    bars: bool = False,
    stacked: bool = False,
    decimals: int | None = None,
    min_value: int | None = None,
) -> g.TimeSeries:
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_with_ref_ids(targets),
        unit=unit,
        thresholds=_steps(thresholds),
        thresholdsStyleMode="line" if show_thresholds else "off",
        drawStyle="bars" if bars else "line",
        fillOpacity=60 if bars else 10,
        stacking={"mode": "normal", "group": "A"} if stacked else {},
        valueDecimals=decimals,
        valueMin=min_value,
        legendDisplayMode="table",
        legendPlacement="bottom",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        maxDataPoints=500,
    )


def stat(
    title: str,
    description: str,
    targets: Sequence[g.Target],
    *,
    unit: str,
    thresholds: Thresholds = GREEN_ONLY,
    mappings: Mapping[str, tuple[str, str]] | None = None,
    decimals: int | None = None,
    text_mode: str = "auto",
    color_mode: str = "value",
) -> g.Stat:
    return g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_with_ref_ids(targets),
        format=unit,
        thresholds=_steps(thresholds),
        mappings=_value_mappings(mappings),
        decimals=decimals,
        reduceCalc="lastNotNull",
        graphMode="none" if mappings else "area",
        textMode=text_mode,
        colorMode=color_mode,
        noValue="no data",
    )


def state_timeline(
    title: str,
    description: str,
    targets: Sequence[g.Target],
    *,
    mappings: Mapping[str, tuple[str, str]],
    unit: str = "none",
) -> g.StateTimeline:
    return g.StateTimeline(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_with_ref_ids(targets),
        mappings=_value_mappings(mappings),
        colorMode="fixed",
        extraJson={"fieldConfig": {"defaults": {"unit": unit, "color": {"mode": "thresholds"}}}},
        thresholds=_steps(GREEN_ONLY),
    )


def layout(sections: Sequence[tuple[str, Sequence[Sequence[g.Panel]]]], height: int = 8) -> list[g.Panel]:
    """[(row title, [[panel, ...], ...])] -> panels with gridPos; each inner list fills 24 columns."""
    out: list[g.Panel] = []
    y = 0
    for title, rows in sections:
        out.append(g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for row in rows:
            width = 24 // len(row)
            for i, panel in enumerate(row):
                h = 4 if isinstance(panel, g.Stat) else height
                panel.gridPos = g.GridPos(h=h, w=width, x=i * width, y=y)
            y += max(4 if isinstance(p, g.Stat) else height for p in row)
            out.extend(row)
    return out


def dashboard(
    *,
    title: str,
    uid: str,
    description: str,
    sections: Sequence[tuple[str, Sequence[Sequence[g.Panel]]]],
    variables: Sequence[g.Template],
    tags: Sequence[str] = ("usd1",),
) -> g.Dashboard:
    return g.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=list(tags),
        timezone="utc",
        refresh="30s",
        time=g.Time("now-6h", "now"),
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        schemaVersion=36,
        templating=g.Templating(list=[datasource_variable(), *variables]),
        panels=layout(sections),
    ).auto_panel_ids()


# --- build -----------------------------------------------------------------------------------


def load(path: Path) -> g.Dashboard:
    """Execute a *.dashboard.py file and return its module-level `dashboard`."""
    name = path.name.removesuffix(SUFFIX)
    spec = importlib.util.spec_from_file_location(f"usd1_dashboard_{name}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    board = getattr(module, "dashboard", None)
    if not isinstance(board, g.Dashboard):
        raise ValueError(f"{path}: must define a module-level `dashboard` (grafanalib Dashboard)")
    return board


def render(board: g.Dashboard) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(board.to_json_data(), sort_keys=True, indent=2, cls=DashboardEncoder) + "\n"


def build(out_dir: Path, src_dir: Path | None = None) -> list[Path]:
    """Render every `<name>.dashboard.py` in src_dir (default: the repo's dashboards/) to
    `out_dir/<name>.json`; returns the written paths, sorted. Files are rewritten only if changed."""
    src = DEFAULT_SOURCE_DIR if src_dir is None else src_dir
    sources = sorted(src.glob(f"*{SUFFIX}"))
    if not sources:
        raise FileNotFoundError(f"no *{SUFFIX} files in {src}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        text = render(load(path))
        dest = out_dir / f"{path.name.removesuffix(SUFFIX)}.json"
        if not dest.exists() or dest.read_text() != text:
            dest.write_text(text)
        written.append(dest)
    return written


# --- inspection ------------------------------------------------------------------------------


def panels(dashboard_json: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in (collapsed) rows, in document order."""
    stack = list(reversed(dashboard_json.get("panels") or []))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels") or []))


def variable_names(dashboard_json: Mapping[str, Any]) -> set[str]:
    return {v["name"] for v in (dashboard_json.get("templating") or {}).get("list", [])}


_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace $name, ${name}, ${name:fmt} and [[name]]; unknown names are left as they are."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return variables.get(name, m.group(0))

    return _VAR_RE.sub(repl, expr)


def expressions(dashboard_json: Mapping[str, Any], variables: Mapping[str, str] | None = None) -> list[str]:
    """Every PromQL expression of the dashboard's panels, in document order (duplicates kept).

    Template-variable queries (`label_values(...)`) are Grafana functions, not PromQL, and are
    not included. With `variables`, Grafana variables are substituted (see DEFAULT_VARIABLES).
    """
    out = []
    for panel in panels(dashboard_json):
        for t in panel.get("targets") or []:
            expr = t.get("expr")
            if expr:
                out.append(substitute(expr, variables) if variables is not None else expr)
    return out


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING_RE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT_RE = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right bool and or unless offset inf nan".split()
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical scan, enough for our own expressions):
    identifiers that are not functions, keywords, label names, strings or durations."""
    text = _STRING_RE.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING_RE.sub(" ", text)
    names = set()
    for m in _IDENT_RE.finditer(text):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in _KEYWORDS:
            continue
        names.add(ident)
    return names
