"""The page's "Supply by chain" chart: a stacked step-area SVG built on the server (pure functions).

`stack_geometry` turns per-chain supply series (base units, one precision) into coordinates in the
viewBox: at every point the layers lie one on another, so the top edge is the total. `stacked_svg`
draws them (one `<path class="layer sN" data-chain=...>` per chain, the value carried forward
between points as the supply is between blocks). The SVG scales to its box (viewBox, width 100%).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

PALETTE = 6  # CSS classes s0..s5 colour the layers (cycled)


@dataclass(frozen=True, slots=True)
class Box:
    """The viewBox and the plot area inside it (padding for the labels)."""

    width: int = 720
    height: int = 240
    pad_left: int = 8
    pad_right: int = 8
    pad_top: int = 22
    pad_bottom: int = 24

    @property
    def plot_width(self) -> int:
        return self.width - self.pad_left - self.pad_right

    @property
    def plot_height(self) -> int:
        return self.height - self.pad_top - self.pad_bottom

    @property
    def baseline(self) -> float:
        return float(self.pad_top + self.plot_height)


@dataclass(frozen=True, slots=True)
class Layer:
    """One chain's band: at point i it spans from `lower[i]` to `upper[i]` (viewBox y, down)."""

    name: str
    lower: list[float]
    upper: list[float]


@dataclass(frozen=True, slots=True)
class Geometry:
    xs: list[float]
    layers: list[Layer]
    top: int  # the value at the top of the plot area (base units): the largest total plus 5 %


def stack_geometry(series: Sequence[tuple[str, Sequence[int]]], box: Box = Box()) -> Geometry:
    """Layers in `series` order, bottom first. Every series has one value per point (base units,
    one precision); a negative value (never a supply) raises ValueError naming the series."""
    lengths = {len(values) for _, values in series}
    if len(lengths) > 1:
        raise ValueError(f"series of different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    for name, values in series:
        if any(v < 0 for v in values):
            raise ValueError(f"series {name!r} has a negative value")
    totals = [sum(values[i] for _, values in series) for i in range(n)]
    top = max(totals, default=0) or 1
    top += top // 20
    w, h = box.plot_width, box.plot_height

    def y(value: int) -> float:
        return box.baseline - h * value / top

    xs = [box.pad_left + (w * i / (n - 1) if n > 1 else w) for i in range(n)]
    below = [0] * n
    layers = []
    for name, values in series:
        above = [below[i] + values[i] for i in range(n)]
        layers.append(Layer(name, [y(v) for v in below], [y(v) for v in above]))
        below = above
    return Geometry(xs, layers, top)


def _path(xs: Sequence[float], layer: Layer) -> str:
    """The band as a step area: along the upper edge forward, back along the lower edge."""
    n = len(xs)
    d = [f"M{xs[0]:.2f},{layer.upper[0]:.2f}"]
    d += [f"H{xs[i]:.2f}V{layer.upper[i]:.2f}" for i in range(1, n)]
    d.append(f"V{layer.lower[n - 1]:.2f}")
    d += [f"V{layer.lower[i - 1]:.2f}H{xs[i - 1]:.2f}" for i in range(n - 1, 0, -1)]
    return "".join(d) + "Z"


def stacked_svg(
    times: Sequence[datetime],
    series: Sequence[tuple[str, Sequence[int]]],
    title: str,
    fmt: Callable[[int], str],
    box: Box = Box(),
) -> Markup:
    """The chart, or a short note when there is no point. `times`: each point's time; `fmt`
    formats the figure labelled at the top of the plot area (base units)."""
    if not times:
        return Markup('<p class="muted">No supply history yet.</p>')
    g = stack_geometry(series, box)
    if len(g.xs) != len(times):
        raise ValueError(f"{len(times)} times for {len(g.xs)} points")
    parts = [
        f'<svg viewBox="0 0 {box.width} {box.height}" role="img" aria-labelledby="chart-title"'
        f' preserveAspectRatio="none" class="chart" data-points="{len(times)}"'
        f' data-layers="{len(g.layers)}">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<line x1="{box.pad_left}" y1="{box.baseline}" x2="{box.pad_left + box.plot_width}"'
        f' y2="{box.baseline}" class="axis"/>',
        f'<line x1="{box.pad_left}" y1="{box.pad_top}" x2="{box.pad_left + box.plot_width}"'
        f' y2="{box.pad_top}" class="grid"/>',
    ]
    for i, layer in enumerate(g.layers):
        parts.append(
            f'<path d="{_path(g.xs, layer)}" class="layer s{i % PALETTE}" data-chain="{escape(layer.name)}"/>'
        )
    first, last = times[0], times[-1]
    parts += [
        f'<text x="{box.pad_left}" y="{box.pad_top - 6}" class="lbl">{escape(fmt(g.top))}</text>',
        f'<text x="{box.pad_left}" y="{box.height - 6}" class="lbl">{first:%Y-%m-%d %H:%M}</text>',
        f'<text x="{box.pad_left + box.plot_width}" y="{box.height - 6}" class="lbl"'
        f' text-anchor="end">{last:%Y-%m-%d %H:%M}</text>',
        "</svg>",
    ]
    return Markup("".join(parts))
