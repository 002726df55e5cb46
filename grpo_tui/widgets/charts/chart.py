"""One metric chart (plotext): a header row, then a few series over steps with markers.

Charts never redraw per event: the dashboard calls :meth:`MetricChart.update_from`
on a timer and the chart rebuilds only when the model, its size, its metrics or the
view (smoothing, log scale, zoom, cursor) changed, with every series downsampled to
the plot's width. The header row is drawn here rather than by plotext, so the legend
sits above the data in the series' colours and carries each series' value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rich.text import Text
from textual.binding import Binding
from textual_plotext import PlotextPlot

from grpo_tui.model.run_model import RunModel
from grpo_tui.widgets.charts.figure import MARKERS, ChartView, Header, build
from grpo_tui.widgets.charts.plot_render import PlotLines, colour_style, render_figure


@dataclass(frozen=True)
class ChartSpec:
    """What one chart shows. ``rewards/*/mean`` expands to every reward function."""

    title: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...] = ()
    ylim: tuple[float, float] | None = None

    def expand(self, model: RunModel) -> list[tuple[str, str]]:
        """(metric name, legend label) pairs present in the model."""
        out: list[tuple[str, str]] = []
        labels = self.labels or self.metrics
        for metric, label in zip(self.metrics, labels):
            if "*" in metric:
                prefix, suffix = metric.split("*", 1)
                for name in sorted(model.series):
                    if name.startswith(prefix) and name.endswith(suffix):
                        out.append((name, name[len(prefix) : len(name) - len(suffix)]))
            elif metric in model.series:
                out.append((metric, label or metric))
        return out

    def with_metrics(self, metrics: list[str]) -> "ChartSpec":
        """The same chart showing ``metrics`` (its default labels kept where they apply)."""
        known = dict(zip(self.metrics, self.labels or self.metrics))
        return replace(self, metrics=tuple(metrics), labels=tuple(known.get(m, m) for m in metrics))


class MetricChart(PlotextPlot, can_focus=True):
    """A chart for one :class:`ChartSpec`; redrawn from the model on demand. Focused, the
    arrow keys move the cursor and Enter maximises it."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; width: 1fr; min-height: 6; }
    """
    BINDINGS = [
        Binding("left", "screen.cursor(-1)", "Cursor", show=False),
        Binding("right", "screen.cursor(1)", "Cursor", show=False),
        Binding("enter", "screen.maximise", "Maximise", show=False),
    ]

    def __init__(self, spec: ChartSpec, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.default_spec = spec
        self.spec = spec
        self._drawn_key: tuple | None = None
        self._header = Header(spec.title, empty=True)
        self._last: tuple[RunModel, ChartView] | None = None
        self.last_cost = 0.02  # seconds the last build and render took (the dashboard's CPU budget uses it)
        self._build_cost = 0.0

    def set_metrics(self, metrics: list[str] | None) -> None:
        """Show ``metrics`` instead of the default ones (None: the defaults again)."""
        self.spec = self.default_spec.with_metrics(metrics) if metrics else self.default_spec
        self._drawn_key = None

    def _key(self, model: RunModel, view: ChartView) -> tuple:
        return (model.chart_version, self.size.width, self.size.height, view, self.spec)

    def update_from(self, model: RunModel, view: ChartView) -> None:
        if not self.needs_redraw(model, view):
            return
        started = time.perf_counter()
        self._drawn_key = self._key(model, view)
        self._last = (model, view)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme(self._get_plotext_theme_name(self.app.theme))  # marker glyphs take its canvas colour
        self._header = build(plt, self.spec, model, view, self.size.width, max(1, self.size.height - 1))
        self._build_cost = time.perf_counter() - started  # counted with the render it causes
        self.refresh()

    def on_resize(self) -> None:
        """A new size draws at once with the last model and view (ticks and rows depend on it)."""
        if self._last is not None:
            self.update_from(*self._last)

    def needs_redraw(self, model: RunModel, view: ChartView) -> bool:
        return self._key(model, view) != self._drawn_key and self.size.width >= 10

    @property
    def has_data(self) -> bool:
        return self._drawn_key is not None

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render(self):
        started = time.perf_counter()
        width, height = self.size
        header = self.header_text(width)
        try:
            if self._header.empty or height < 3:
                return Text("\n").join([header, Text("no data yet", style="dim", justify="center")])
            # textual-plotext's render, with the figure turned into segments directly
            plot = self.plt
            plot.plotsize(width, height - 1)
            plot._set_size(width, height - 1)
            plot.theme(self._get_plotext_theme_name(self.app.theme))
            figure = render_figure(plot, x_label="step")
            if isinstance(figure, PlotLines):
                figure.lines.insert(0, list(header.render(self.app.console)))
                return figure
            return Text("\n").join([header, figure])
        except Exception as err:  # noqa: BLE001 - plotext on odd data must not end the app
            return f"{self.spec.title}: cannot draw ({type(err).__name__})"
        finally:
            self.last_cost = time.perf_counter() - started + self._build_cost

    def header_text(self, width: int) -> Text:
        """Title, the legend with each series' value (or "= other" for a copy), the marker
        kinds drawn, and the EMA/log flags; shortened to ``width``: the marker kinds go
        first, then the values."""
        h = self._header
        title = Text(h.title, style="bold reverse" if self.has_focus else "bold")
        if h.cursor is not None and not h.empty:
            title.append(f" @{h.cursor}", style="bold")
        for with_values, with_glyphs in ((True, True), (True, False), (False, False)):
            right = Text()
            for kind in h.marker_kinds if with_glyphs else []:  # the hint line under the grid says them too
                glyph, colour, _ = MARKERS[kind]
                right.append(f" {glyph}", style=colour_style(colour))
            for flag in h.flags:
                right.append(f" {flag}", style="italic")
            line = title.copy()
            for entry in h.entries if len(h.entries) > 1 or with_values else []:
                line.append("  ━", style=colour_style(entry.colour))
                line.append(entry.label if len(h.entries) > 1 else "", style=colour_style(entry.colour))
                if entry.same_as:
                    line.append(f" = {entry.same_as}", style="dim")
                elif with_values and entry.value:
                    line.append(f" {entry.value}")
            if line.cell_len + right.cell_len <= width:
                break
        line.truncate(max(1, width - right.cell_len), overflow="ellipsis")
        line.append(" " * max(0, width - line.cell_len - right.cell_len))
        line.append_text(right)
        line.truncate(width)
        return line
