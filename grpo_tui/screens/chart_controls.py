"""The dashboard's chart controls: cursor, zoom, log scale, EMA, maximise, metric choice,
the grid's layout and the hint line under it.

Every chart on a tab shares one :class:`ChartView` (the same step range, the same cursor
step), so charts stay aligned by step while the user reads across them. Kept out of
dashboard.py, which owns the run controls and the panes.
"""

from __future__ import annotations

import math
from dataclasses import replace

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static

from grpo_tui.model import chart_prefs
from grpo_tui.widgets.charts.chart import MetricChart
from grpo_tui.widgets.charts.figure import MARKERS, ChartView, data_range, markers_at
from grpo_tui.widgets.charts.plot_render import colour_style

EMA_STRENGTHS = (0.1, 0.3, 0.03)  # weight of the newest point; `M` steps through them
MIN_CHART_W = 34  # narrower and the step labels crowd
MIN_CHART_H = 11  # shorter and a chart has too few rows to read
MIN_ZOOM_STEPS = 4

CHART_BINDINGS = [
    Binding("left_square_bracket", "cursor(-1)", "Cursor", id="dashboard.cursor_left", show=False,
            tooltip="Move the chart cursor one step left (← on a focused chart)"),
    Binding("right_square_bracket", "cursor(1)", "Cursor", id="dashboard.cursor_right", show=False,
            tooltip="Move the chart cursor one step right (→ on a focused chart)"),
    Binding("left_curly_bracket", "marker(-1)", "Prev marker", id="dashboard.marker_prev", show=False,
            tooltip="Put the cursor on the previous marker and say what it was"),
    Binding("right_curly_bracket", "marker(1)", "Next marker", id="dashboard.marker_next", show=False,
            tooltip="Put the cursor on the next marker and say what it was"),
    Binding("plus,equals_sign", "zoom(0.5)", "Zoom in", id="dashboard.zoom_in", show=False,
            tooltip="Zoom the charts in on the cursor (or the middle)"),
    Binding("minus", "zoom(2)", "Zoom out", id="dashboard.zoom_out", show=False, tooltip="Zoom the charts out"),
    Binding("0", "zoom_reset", "All steps", id="dashboard.zoom_reset", show=False,
            tooltip="Show every step again (zoom reset)"),
    Binding("L", "log_y", "Log y", id="dashboard.log_y", show=False, tooltip="Toggle a log scale on the charts' y axes"),
    Binding("z", "maximise", "Maximise", id="dashboard.maximise", show=False,
            tooltip="Maximise the focused chart (Enter on a chart; Esc back)"),
    Binding("e", "pick_metrics", "Metrics", id="dashboard.pick_metrics", show=False,
            tooltip="Choose the metrics the focused chart shows"),
    Binding("M", "ema_strength", "EMA strength", id="dashboard.ema_strength", show=False,
            tooltip="Change the EMA strength (0.1, 0.3, 0.03) and turn smoothing on"),
    Binding("escape", "back", "Back", id="dashboard.back", show=False),
    Binding("pagedown", "scroll_charts(1, 'page')", "Charts down", id="dashboard.charts_page_down", show=False,
            tooltip="Scroll the tab's charts down a page (where more rows than fit)"),
    Binding("pageup", "scroll_charts(-1, 'page')", "Charts up", id="dashboard.charts_page_up", show=False,
            tooltip="Scroll the tab's charts up a page"),
    Binding("down", "scroll_charts(1, 'row')", "Charts down", id="dashboard.charts_down", show=False),
    Binding("up", "scroll_charts(-1, 'row')", "Charts up", id="dashboard.charts_up", show=False),
]


class ChartControls:
    """Mixed into the dashboard screen, which provides ``model``, ``_tabs``,
    ``visible_charts()``, ``redraw()`` and ``action_launcher()``."""

    view = ChartView()
    _maximised: MetricChart | None = None
    _prefs_applied = False

    # -- helpers ---------------------------------------------------------------
    def _step_range(self) -> tuple[int, int] | None:
        return data_range(self.model, list(self.model.series))

    def _set_view(self, **changes) -> None:
        self.view = replace(self.view, **changes)
        self.redraw()

    def _target_chart(self) -> MetricChart | None:
        """The chart a chart action acts on: the focused one, else the maximised one, else
        the first on the tab."""
        focused = self.focused
        if isinstance(focused, MetricChart):
            return focused
        charts = self.visible_charts()
        return self._maximised if self._maximised in charts else (charts[0] if charts else None)

    # -- actions -----------------------------------------------------------------
    def action_smooth(self) -> None:
        self._set_view(smooth=not self.view.smooth)
        self.notify(f"EMA smoothing {'on, strength ' + format(self.view.alpha, 'g') if self.view.smooth else 'off'}",
                    timeout=1.5)

    def action_ema_strength(self) -> None:
        index = EMA_STRENGTHS.index(self.view.alpha) if self.view.alpha in EMA_STRENGTHS else -1
        self._set_view(smooth=True, alpha=EMA_STRENGTHS[(index + 1) % len(EMA_STRENGTHS)])
        self.notify(f"EMA strength {self.view.alpha:g} (weight of the newest step)", timeout=1.5)

    def action_log_y(self) -> None:
        self._set_view(log_y=not self.view.log_y)

    def action_cursor(self, delta: int) -> None:
        span = self.view.zoom or self._step_range()
        if span is None:
            return
        if self.view.cursor is None:
            cursor = span[1] if delta < 0 else span[0]
        else:
            cursor = min(span[1], max(span[0], self.view.cursor + delta))
        self._set_view(cursor=cursor)

    def action_marker(self, delta: int) -> None:
        steps = sorted({m.step for m in self.model.markers})
        if not steps:
            self.notify("No markers yet (adjustments, checkpoints, pauses, faults)", timeout=2)
            return
        here = self.view.cursor
        if here is None:
            target = steps[-1] if delta < 0 else steps[0]
        else:
            ahead = [s for s in steps if (s > here if delta > 0 else s < here)]
            target = (ahead[0] if delta > 0 else ahead[-1]) if ahead else here
        zoom = self.view.zoom
        if zoom is not None and not zoom[0] <= target <= zoom[1]:
            zoom = None
        self._set_view(cursor=target, zoom=zoom)

    def action_zoom(self, factor: float) -> None:
        full = self._step_range()
        if full is None:
            return
        lo, hi = self.view.zoom or full
        centre = self.view.cursor if self.view.cursor is not None else (lo + hi) / 2
        half = max(MIN_ZOOM_STEPS / 2, (hi - lo) * factor / 2)
        new_lo, new_hi = math.floor(centre - half), math.ceil(centre + half)
        if new_lo < full[0]:
            new_lo, new_hi = full[0], new_hi + (full[0] - new_lo)
        if new_hi > full[1]:
            new_lo, new_hi = max(full[0], new_lo - (new_hi - full[1])), full[1]
        self._set_view(zoom=None if (new_lo, new_hi) == full or new_hi - new_lo >= full[1] - full[0]
                       else (new_lo, new_hi))

    def action_zoom_reset(self) -> None:
        self._set_view(zoom=None)

    def action_maximise(self) -> None:
        if self._maximised is not None:
            chart, self._maximised = self._maximised, None
        else:
            chart = self._maximised = self._target_chart()
            if chart is None:
                return
        self.fit_grids()
        self.call_after_refresh(chart.focus)
        self.call_after_refresh(self.redraw)

    def action_back(self) -> None:
        """Esc: the cursor off, else the maximised chart back into the grid, else the launcher."""
        if self.view.cursor is not None:
            self._set_view(cursor=None)
        elif self._maximised is not None:
            self.action_maximise()
        else:
            self.action_launcher()

    def action_pick_metrics(self) -> None:
        from grpo_tui.screens.metric_picker import DEFAULTS, MetricPickerScreen

        chart = self._target_chart()
        if chart is None:
            self.notify("Open the Overview or Training tab to choose a chart's metrics", timeout=3)
            return
        current = [name for name, _ in chart.spec.expand(self.model)]

        def done(answer) -> None:
            if answer is None:
                return
            chart.set_metrics(None if answer == DEFAULTS else answer)
            try:
                chart_prefs.save(self._preset(), chart.default_spec.title, None if answer == DEFAULTS else answer)
            except OSError as err:
                self.notify(str(err), severity="warning", timeout=6)
            self.redraw()

        self.app.push_screen(MetricPickerScreen(chart.default_spec.title, sorted(self.model.series), current), done)

    def _preset(self) -> str:
        return chart_prefs.preset_key(self.model.config, self.model.run_dir)

    def apply_chart_prefs(self) -> None:
        """Each chart's saved metrics for this run's preset (once the config is known)."""
        if self._prefs_applied or not (self.model.config or self.model.run_dir):
            return
        self._prefs_applied = True
        saved = chart_prefs.load(self._preset())
        for chart in self.query(MetricChart):
            if chart.default_spec.title in saved:
                chart.set_metrics(saved[chart.default_spec.title] or None)

    # -- layout ------------------------------------------------------------------
    def fit_grids(self) -> None:
        """Columns as many as fit MIN_CHART_W, rows as tall as the grid allows; where the
        charts need more rows than fit, whole rows per page (the hint says the grid scrolls)."""
        for grid in self.query(".chart-grid"):
            charts = list(grid.query(MetricChart))
            width, height = grid.size
            if width < 2 or height < 2:
                continue
            maximised = self._maximised if self._maximised in charts else None
            for chart in charts:
                chart.display = maximised is None or chart is maximised
            shown = [maximised] if maximised else charts
            cols = max(1, min(3, (width + 1) // (MIN_CHART_W + 1), len(shown)))
            first_wide = maximised is None and cols in (2, 3) and charts[0].id == "chart-o0"
            for chart in charts:
                chart.styles.column_span = 2 if first_wide and chart is charts[0] else 1
            rows = math.ceil((len(shown) + (1 if first_wide else 0)) / cols)
            per_page = max(1, min(rows, height // MIN_CHART_H))
            grid.styles.grid_size_columns = cols
            grid.styles.grid_rows = "1fr" if per_page >= rows else str(height // per_page)
            grid.pages = (per_page, rows)

    def action_scroll_charts(self, direction: int, by: str) -> None:
        """Scroll the shown tab's chart grid by a row of charts or a page of them: the keys
        reach here when the focus is on something that does not scroll (the tab bar); a
        focused grid or chart scrolls itself."""
        active = self._tabs.active
        grids = [g for g in self.query(".chart-grid") if g.parent is not None and g.parent.id == active]
        if not grids:
            return
        grid = grids[0]
        per_page, _ = getattr(grid, "pages", (1, 1))
        step = grid.size.height if by == "page" else max(1, grid.size.height // max(1, per_page))
        grid.scroll_to(y=grid.scroll_y + direction * step, animate=False)
        self.call_after_refresh(self.update_hints)  # the hint says how many rows are above and below

    # -- the hint line -------------------------------------------------------------
    def update_hints(self) -> None:
        """Redraw the hint lines whose text changed; a hint is one row whatever it says, so the
        update never asks for a layout of the screen (at 200x60 one costs ~20 ms of the UI
        thread, and with it the GIL the training thread needs)."""
        for hint in self.query(".chart-hint"):
            text = self.hint_text(hint.size.width or 80, hint.grid)
            if text != getattr(hint, "_shown", None):
                hint._shown = text
                hint.update(text, layout=False)

    def hint_text(self, width: int, grid) -> Text:
        """What the charts' markers mean and what the cursor is on, then the keys, as many as fit."""
        view, parts = self.view, []
        if view.cursor is not None:
            here = markers_at(self.model, view.cursor)
            if here:
                for marker in here:
                    glyph, colour, _ = MARKERS.get(marker.kind, ("?", "gray", marker.kind))
                    parts.append(Text.assemble((glyph, colour_style(colour)), " ", marker.label))
            else:
                parts.append(Text(f"cursor at step {view.cursor}"))
            parts.append(Text("{ } markers · esc cursor off", style="dim"))
        else:
            kinds = {m.kind for m in self.model.markers}
            for kind, (glyph, colour, word) in MARKERS.items():
                if kind in kinds:
                    parts.append(Text.assemble((glyph, colour_style(colour)), f" {word}"))
        if view.zoom is not None:
            parts.append(Text(f"steps {view.zoom[0]}–{view.zoom[1]} (0: all)", style="bold"))
        per_page, rows = getattr(grid, "pages", (1, 1))
        if per_page < rows and self._maximised is None:
            row_h = max(1, grid.size.height // per_page)
            above = min(rows - per_page, round(grid.scroll_y / row_h))
            below = rows - per_page - above
            if below:
                parts.append(Text(f"PgDn/↓: {below} more row{'s' if below > 1 else ''} of charts", style="bold"))
            if above:
                parts.append(Text(f"PgUp/↑: {above} row{'s' if above > 1 else ''} above", style="bold"))
        if self._maximised is not None:
            parts.append(Text("esc: all charts", style="bold"))
        keys = ["[ ] cursor", "+/- zoom", "L log", "z maximise", "e metrics", "m EMA"]
        line = Text()
        for part in parts + [Text(k, style="dim") for k in keys]:
            if not line and part.cell_len > width:
                part.truncate(width, overflow="ellipsis")
            addition = (2 if line else 0) + part.cell_len
            if line.cell_len + addition > width:
                if part.style == "dim":
                    break
                continue
            if line:
                line.append("  ")
            line.append_text(part)
        return line


class ChartHint(Static):
    """The line under a tab's chart grid (see :meth:`ChartControls.hint_text`)."""

    DEFAULT_CSS = "ChartHint { height: 1; padding: 0 1; }"

    def __init__(self, grid_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grid_id = grid_id

    @property
    def grid(self):
        return self.screen.query_one(f"#{self.grid_id}")
