"""One metric chart (plotext): a few series over steps, with adjust/checkpoint markers.

Charts never redraw per event: the dashboard calls :meth:`MetricChart.update_from`
on a timer and the chart rebuilds only when the model, its size or the smoothing
changed, with every series downsampled to the plot's width.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from grpo_tui.widgets.charts.downsample import downsample
from grpo_tui.model.run_model import RunModel
from grpo_tui.widgets.charts.plot_render import render_figure

Y_AXIS_COLUMNS = 8  # room plotext keeps for the y tick labels
SERIES_COLOURS = ("cyan", "orange", "green", "magenta", "red", "blue")
MARKER_COLOURS = {"adjust": "orange", "checkpoint": "gray"}


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
                out.append((metric, label))
        return out


class MetricChart(PlotextPlot):
    """A chart for one :class:`ChartSpec`; redrawn from the model on demand."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; width: 1fr; min-height: 6; }
    """

    def __init__(self, spec: ChartSpec, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.spec = spec
        self._drawn_key: tuple | None = None
        self.last_cost = 0.02  # seconds the last build took (the dashboard's CPU budget uses it)

    def update_from(self, model: RunModel, smooth: bool) -> None:
        if not self.needs_redraw(model, smooth):
            return
        key = (model.chart_version, self.size.width, self.size.height, smooth)
        self._drawn_key = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        width = max(10, self.size.width - Y_AXIS_COLUMNS)
        series = self.spec.expand(model)
        legend = len(series) > 1 and self.size.height >= 12
        if len(series) > 1 and not legend:
            plt.title(f"{self.spec.title}: " + ", ".join(label for _, label in series))
        else:
            plt.title(self.spec.title)
        drawn = False
        lo_x: float | None = None
        hi_x: float | None = None
        for i, (name, label) in enumerate(series):
            s = model.series[name]
            ys = s.ema if smooth else s.values
            xs, ys = downsample(s.steps, ys, width)
            if not xs:
                continue
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            if len(xs) == 1:
                plt.scatter(xs, ys, label=label if legend else None, color=colour, marker="dot")
            else:
                plt.plot(xs, ys, label=label if legend else None, color=colour, marker="braille")
            lo_x = xs[0] if lo_x is None else min(lo_x, xs[0])
            hi_x = xs[-1] if hi_x is None else max(hi_x, xs[-1])
            drawn = True
        if drawn and lo_x is not None and hi_x is not None:
            for marker in model.markers:
                if lo_x <= marker.step <= hi_x:
                    plt.vline(marker.step, MARKER_COLOURS.get(marker.kind, "gray"))
            if self.spec.ylim:
                plt.ylim(*self.spec.ylim)
        else:
            plt.title(f"{self.spec.title} (no data yet)")
        self.refresh()

    def render(self):
        started = time.perf_counter()
        try:
            # textual-plotext's render, with the figure turned into segments directly
            plot, (width, height) = self.plt, self.size
            plot.plotsize(width, height)
            plot._set_size(width, height)
            plot.theme(self._get_plotext_theme_name(self.app.theme))
            return render_figure(plot)
        except Exception as err:  # noqa: BLE001 - plotext on odd data must not end the app
            return f"{self.spec.title}: cannot draw ({type(err).__name__})"
        finally:
            self.last_cost = time.perf_counter() - started

    def needs_redraw(self, model: RunModel, smooth: bool) -> bool:
        key = (model.chart_version, self.size.width, self.size.height, smooth)
        return key != self._drawn_key and self.size.width >= 10

    @property
    def has_data(self) -> bool:
        return self._drawn_key is not None
