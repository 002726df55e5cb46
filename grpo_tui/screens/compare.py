"""Two or more runs side by side: their main metrics overlaid on one step axis, a legend of
run names, and the settings that differ between their resolved configs.

Each run is read as the dashboard reads a run it does not train (:func:`open_run_dir`: one
:class:`RunModel` per run), and its follower is polled on an interval, so a run still
training keeps moving here while finished ones stay as they ended. Series are plotted
against their own step numbers, which aligns runs of different lengths and resumed runs.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from grpo_tui.commands import ScreenBindingCommands
from grpo_tui.model.config_diff import adjusted, config_diff, show_value
from grpo_tui.model.follow import RunFollower, open_run_dir
from grpo_tui.model.run_model import RunModel
from grpo_tui.widgets.charts.downsample import downsample
from grpo_tui.widgets.footer import ResponsiveFooter

# (metric in metrics.jsonl, chart title); a chart shows only when some run has the metric
METRICS = (
    ("reward", "reward"),
    ("kl", "KL"),
    ("entropy", "entropy (nats)"),
    ("entropy_coef", "entropy coefficient"),
    ("completions/mean_length", "mean completion length (tokens)"),
    ("advantage/std", "advantage std"),
    ("grad_norm", "grad norm"),
    ("eval/accuracy", "eval accuracy"),
    ("learning_rate", "learning rate"),
)
# one colour per run: plotext's name for the lines, the same colour for the legend
RUN_COLOURS = (("cyan", "ansi_cyan"), ("orange", "darkorange"), ("magenta", "ansi_magenta"), ("green", "ansi_green"),
               ("red", "ansi_red"), ("blue", "ansi_blue"))
Y_AXIS_COLUMNS = 8  # room plotext keeps for the y tick labels
POLL_S = 1.0
WIDE = 120  # from this width the charts go two to a row


def run_labels(paths: list[Path]) -> list[str]:
    """Each run's folder name; with its parent too where two runs share a name."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def read_config(run_dir: Path) -> dict:
    """The run's config.yaml, {} when it cannot be read (the diff then shows what the model holds)."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def step_ticks(first: int, last: int, most: int = 5) -> list[int]:
    """At most ``most`` whole steps from ``first`` to ``last``, both ends included."""
    if last <= first:
        return [first]
    return sorted({round(first + (last - first) * i / (most - 1)) for i in range(most)})


class OverlayChart(PlotextPlot):
    """One metric of every run on a shared step axis, each run in its colour."""

    DEFAULT_CSS = "OverlayChart { height: 13; }"

    def __init__(self, metric: str, title: str) -> None:
        super().__init__(classes="cmp-chart")
        self.metric = metric
        self.title = title
        self._drawn: tuple | None = None
        self.runs_drawn = 0  # how many runs have a line on the chart
        self._asked: tuple[list[RunModel], bool] | None = None  # what the last draw was asked to show

    def on_resize(self) -> None:
        """Laid out (or resized): draw what was asked before there was room for it, now,
        rather than at the next poll."""
        if self._asked is not None:
            self.draw(*self._asked)

    def draw(self, models: list[RunModel], smooth: bool) -> None:
        self._asked = (models, smooth)
        key = (tuple(m.chart_version for m in models), self.size.width, self.size.height, smooth)
        if key == self._drawn or self.size.width < 10:
            return
        self._drawn = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title + (" (EMA)" if smooth else ""))
        plt.xlabel("step")
        width = max(10, self.size.width - Y_AXIS_COLUMNS)
        ends = [(s.steps[0], s.steps[-1]) for s in (m.series.get(self.metric) for m in models) if s]
        if ends:  # whole steps on the axis, not plotext's 3.8 and 6.5
            ticks = step_ticks(min(lo for lo, _ in ends), max(hi for _, hi in ends))
            plt.xticks(ticks, [str(t) for t in ticks])
        self.runs_drawn = 0
        for (colour, _), model in zip(RUN_COLOURS * len(models), models):
            series = model.series.get(self.metric)
            if series is None:
                continue
            xs, ys = downsample(series.steps, series.ema if smooth else series.values, width)
            if len(xs) == 1:
                plt.scatter(xs, ys, color=colour, marker="dot")
            elif xs:
                plt.plot(xs, ys, color=colour, marker="braille")
            self.runs_drawn += bool(xs)
        if not self.runs_drawn:
            plt.title(f"{self.title} (no data yet)")
        self.refresh()


class CompareScreen(Screen):
    COMMANDS = {ScreenBindingCommands}
    DEFAULT_CSS = """
    #cmp-legend { height: auto; max-height: 7; background: $panel; padding: 0 1; }
    #cmp-tabs { height: 1fr; }
    #cmp-tabs > ContentSwitcher { height: 1fr; }
    #cmp-tabs TabPane { padding: 0; height: 1fr; }
    #cmp-charts { grid-size: 1; grid-rows: 13; grid-gutter: 0 1; height: 1fr; overflow-y: auto; }
    #cmp-summary { height: auto; padding: 0 1; }
    #cmp-diff { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="compare.back", tooltip="Close the comparison"),
        Binding("1", "tab('cmp-metrics')", "Metrics", id="compare.metrics", tooltip="Metrics of every run overlaid"),
        Binding("2", "tab('cmp-config')", "Config diff", id="compare.config",
                tooltip="The settings that differ between the runs' configs"),
        Binding("m", "smooth", "EMA", id="compare.smooth", tooltip="Smooth the lines (EMA) or show raw values"),
    ]

    def __init__(self, runs: list[tuple[RunModel, RunFollower]], labels: list[str],
                 started: list[dict] | None = None) -> None:
        """``started``: each run's config.yaml as written at its start (live adjustments show against it)."""
        super().__init__()
        self.started = started or [{} for _ in runs]
        self.models = [model for model, _ in runs]
        self.followers = [follower for _, follower in runs]
        self.labels = labels
        self.smooth = False
        self._configs_shown: list[dict] | None = None

    @classmethod
    def open(cls, run_dirs: list[str | Path]) -> "CompareScreen":
        """Read every run directory (the caller checked they are runs)."""
        paths = [Path(d) for d in run_dirs]
        return cls([open_run_dir(p) for p in paths], run_labels(paths), [read_config(p) for p in paths])

    def compose(self) -> ComposeResult:
        yield Static("", id="cmp-legend")
        with TabbedContent(id="cmp-tabs", initial="cmp-metrics"):
            with TabPane("Metrics", id="cmp-metrics"):
                yield Grid(*(OverlayChart(metric, title) for metric, title in self._metrics()), id="cmp-charts")
            with TabPane("Config diff", id="cmp-config"):
                yield Static("", id="cmp-summary")
                yield DataTable(id="cmp-diff", cursor_type="row", zebra_stripes=True)
        yield ResponsiveFooter()

    def _metrics(self) -> list[tuple[str, str]]:
        present = [(m, t) for m, t in METRICS if any(m in model.series for model in self.models)]
        return present or list(METRICS[:2])  # nothing logged yet: reward and KL wait for data

    def on_mount(self) -> None:
        self._layout()
        self.refresh_all()
        self.set_interval(POLL_S, self.poll)

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        self.query_one("#cmp-charts", Grid).styles.grid_size_columns = 2 if self.app.size.width >= WIDE else 1

    def poll(self) -> None:
        """Read what each run appended since the last poll (a live run moves on)."""
        for follower in self.followers:
            follower.poll()
        self.refresh_all()

    def refresh_all(self) -> None:
        self._legend()
        for chart in self.query(OverlayChart):
            chart.draw(self.models, self.smooth)
        configs = [adjusted(start, m.config) for start, m in zip(self.started, self.models)]
        if configs != self._configs_shown:
            self._configs_shown = configs
            self._diff(configs)

    def _legend(self) -> None:
        lines = []
        for (_, colour), label, model in zip(RUN_COLOURS * len(self.models), self.labels, self.models):
            reward = model.metric("reward")
            max_steps = model.config.get("max_steps")
            lines.append(Content.assemble(
                ("━━ ", f"bold {colour}"), (label, "bold"),
                (f"  {model.state} · step {model.step}" + (f"/{max_steps}" if isinstance(max_steps, int) and max_steps > 0 else ""), "$text-muted"),
                (f" · reward {reward:.3f}" if reward is not None else "", "$text-muted"),
            ))
        self.query_one("#cmp-legend", Static).update(Content("\n").join(lines))

    def _diff(self, configs: list[dict[str, str]]) -> None:
        rows = config_diff(configs)
        total = len({key for c in configs for key in c})
        summary = (f"{len(rows)} of {total} settings differ" if rows else
                   f"All {total} settings are the same in every run")
        self.query_one("#cmp-summary", Static).update(Content.styled(summary, "bold"))
        table = self.query_one("#cmp-diff", DataTable)
        table.clear(columns=True)
        table.add_column("setting")
        for label in self.labels:
            table.add_column(label)
        for key, values in rows:
            table.add_row(key, *(show_value(v) for v in values))

    # -- actions -------------------------------------------------------------------
    def action_tab(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane

    def action_smooth(self) -> None:
        self.smooth = not self.smooth
        self.notify(f"EMA smoothing {'on' if self.smooth else 'off'}", timeout=1.5)
        self.refresh_all()

    def action_back(self) -> None:
        """Back to the screen the comparison opened from; opened from the command line, the launcher."""
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.action_show_launcher()
