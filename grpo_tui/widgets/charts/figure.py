"""What one chart draws: its series in a step range, its axes, its markers and a header.

Separate from the widget so the drawing decisions (which points, which ticks, which
labels) are plain functions of the model and the view settings, and the widget only
owns its size, focus and timing. The header row (title, a legend with each series'
value, the marker kinds, EMA and log flags) is drawn by the widget above the plot, so
the legend never covers the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from grpo_tui.model.run_model import EMA_ALPHA, MARKER_KINDS, RunModel
from grpo_tui.widgets.charts.downsample import downsample, ema, value_at, window
from grpo_tui.widgets.charts.ticks import flat_range, format_ticks, format_value, step_ticks, value_ticks

if TYPE_CHECKING:
    from grpo_tui.widgets.charts.chart import ChartSpec

SERIES_COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue")
# kind: (glyph, plotext colour, legend word); in MARKER_KINDS order, which is also the
# order of precedence when two markers share a step (the first listed kind wins).
MARKERS = {
    "fault": ("F", "red+", "fault"),
    "handover": ("H", "magenta+", "handover"),
    "pause": ("P", "blue+", "pause"),
    "resume": ("R", "green+", "resume"),
    "adjust": ("A", "orange+", "adjust"),
    "checkpoint": ("C", "gray+", "ckpt"),
}
assert set(MARKERS) == set(MARKER_KINDS)
CURSOR_COLOUR = "white"
Y_LABEL_WIDTH = 5  # y labels are padded to this, so the x axis's "step" fits below them


@dataclass(frozen=True)
class ChartView:
    """How the dashboard asks every chart to draw: the same for all charts on a tab."""

    smooth: bool = False
    alpha: float = EMA_ALPHA
    log_y: bool = False
    zoom: tuple[int, int] | None = None  # a step range, both ends included
    cursor: int | None = None  # the step whose values the headers read out


@dataclass
class Entry:
    """One series in the header: its label, colour, and the value to show."""

    label: str
    colour: str
    value: str = ""
    same_as: str = ""  # the label of an earlier series with the same points


@dataclass
class Header:
    title: str
    entries: list[Entry] = field(default_factory=list)
    marker_kinds: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    cursor: int | None = None
    empty: bool = False


_EMA_CACHE: dict[tuple[int, int, float], list[float]] = {}


def _smoothed(series, alpha: float) -> list[float]:
    if alpha == EMA_ALPHA:
        return list(series.ema)
    key = (id(series), len(series), alpha)
    cached = _EMA_CACHE.get(key)
    if cached is None:
        if len(_EMA_CACHE) > 64:
            _EMA_CACHE.clear()
        cached = _EMA_CACHE[key] = ema(series.values, alpha)
    return cached


def data_range(model: RunModel, names: list[str]) -> tuple[int, int] | None:
    """First and last step over the named series (None before any point)."""
    ends = [(s.steps[0], s.steps[-1]) for s in (model.series.get(n) for n in names) if s is not None and len(s)]
    if not ends:
        return None
    return min(e[0] for e in ends), max(e[1] for e in ends)


def build(plt, spec: "ChartSpec", model: RunModel, view: ChartView, width: int, height: int) -> Header:
    """Draw ``spec`` into the (cleared) plotext figure ``plt`` of ``width`` x ``height``
    cells and return the header to show above it."""
    series = spec.expand(model)
    flags = ([f"EMA {view.alpha:g}"] if view.smooth else []) + (["log"] if view.log_y else [])
    header = Header(spec.title, flags=flags, cursor=view.cursor)
    span = view.zoom or data_range(model, [name for name, _ in series])
    if span is None:
        header.empty = True
        return header
    lo, hi = span
    plot_cols = max(4, width - Y_LABEL_WIDTH - 3)
    plot_rows = max(2, height - 3)
    drawn: list[tuple[list, list, str]] = []
    raw_windows: list[tuple[list, list, str]] = []
    for i, (name, label) in enumerate(series):
        s = model.series[name]
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        ys_all = _smoothed(s, view.alpha) if view.smooth else s.values
        xs, ys = window(s.steps, ys_all, lo, hi)
        entry = Entry(label, colour)
        header.entries.append(entry)
        reading = value_at(xs, ys, view.cursor) if view.cursor is not None else (
            (xs[-1], ys[-1]) if xs else None)
        if reading is not None:
            entry.value = format_value(reading[1])
        for other_xs, other_ys, other_label in raw_windows:
            if other_xs == xs and other_ys == ys and xs:
                entry.same_as = other_label
                break
        raw_windows.append((xs, ys, label))
        if view.log_y:
            pairs = [(x, math.log10(y)) for x, y in zip(xs, ys) if math.isfinite(y) and y > 0]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
        xs, ys = downsample(xs, ys, plot_cols)
        if xs and not entry.same_as:  # a copy would hide the line it copies (the header says "= total")
            drawn.append((xs, ys, colour))
    values = [y for _, ys, _ in drawn for y in ys]
    if not values:
        header.empty = True
        return header
    y_lo, y_hi = min(values), max(values)
    if view.log_y:
        ticks = [float(k) for k in range(math.floor(y_lo), math.ceil(y_hi) + 1)]
        if len(ticks) == 1:
            ticks.append(ticks[0] + 1)
        while len(ticks) > max(2, plot_rows // 2 + 1):
            ticks = ticks[::2]
        labels = [format_value(10**t, 2) for t in ticks]
        y_lim = (math.floor(y_lo), max(ticks[-1], math.ceil(y_hi)))
    elif y_hi == y_lo:
        ticks, labels, y_lim = [y_lo], format_ticks([y_lo]), flat_range(y_lo)
    else:
        ticks = value_ticks(y_lo, y_hi, max(2, min(6, plot_rows // 2)))
        labels, y_lim = format_ticks(ticks), (ticks[0], ticks[-1])
    plt.ylim(*y_lim)
    plt.yticks(ticks, [label.rjust(Y_LABEL_WIDTH) for label in labels])
    x_lo, x_hi = (lo - 1, hi + 1) if hi == lo else (lo, hi)
    plt.xlim(x_lo, x_hi)
    x_ticks = step_ticks(lo, hi, max(2, plot_cols // 8))
    plt.xticks(x_ticks, [str(t) for t in x_ticks])
    shown = _markers_in(model, lo, hi)
    header.marker_kinds = [k for k in MARKER_KINDS if k in {m.kind for m in shown.values()}]
    for step, marker in shown.items():
        plt.vline(step, MARKERS[marker.kind][1])
    if view.cursor is not None and lo <= view.cursor <= hi:
        plt.vline(view.cursor, CURSOR_COLOUR)
    for xs, ys, colour in drawn:
        if len(xs) == 1:
            plt.scatter(xs, ys, color=colour, marker="dot")
        else:
            plt.plot(xs, ys, color=colour, marker="braille")
    for step, marker in shown.items():
        glyph, colour, _ = MARKERS[marker.kind]
        plt.text(glyph, step, y_lim[1], color=colour, alignment="center")
    return header


def _markers_in(model: RunModel, lo: int, hi: int) -> dict:
    """The marker drawn at each step in range: where several share a step, the kind listed
    first in MARKERS (a fault over the pause it causes)."""
    order = list(MARKERS)
    shown: dict = {}
    for marker in model.markers:
        if lo <= marker.step <= hi and marker.kind in MARKERS:
            current = shown.get(marker.step)
            if current is None or order.index(marker.kind) < order.index(current.kind):
                shown[marker.step] = marker
    return shown


def markers_at(model: RunModel, step: int) -> list:
    """Every marker at ``step``, for the cursor's read-out."""
    return [m for m in model.markers if m.step == step]
