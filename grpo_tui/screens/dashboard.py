"""The dashboard: status, charts, the latest sampled groups and the events of one run.

Works for a live run (controls enabled) and for a run directory opened read-only
(controls disabled). Every view redraws from the :class:`RunModel` on one timer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical
from textual.screen import Screen
from textual.widgets import TabbedContent, TabPane

from engine.run.events import RunState

from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.commands import DashboardCommands
from grpo_tui.model import chart_prefs
from grpo_tui.model.run_model import RunModel
from grpo_tui.screens.chart_controls import CHART_BINDINGS, ChartControls, ChartHint
from grpo_tui.widgets.charts.chart import ChartSpec, MetricChart
from grpo_tui.widgets.events import EventsPane
from grpo_tui.widgets.samples import SamplesPane
from grpo_tui.widgets.status import RunStatus
from grpo_tui.widgets.system import SystemPane

if TYPE_CHECKING:
    from grpo_tui.model.follow import RunFollower
    from grpo_tui.model.session import LiveRun

# Everything that changes is redrawn on one tick, so the screen is composited at most
# TICK_HZ times a second however many views changed (a frame at 200x60 with a chart in it
# costs milliseconds of the interpreter the engine thread also needs).
TICK_HZ = 2
TICK_CHART_S = 0.03  # charts drawn in one tick stop once their estimated cost passes this (keys wait meanwhile)
# Charts may use about this share of one core. The chart times plotext's drawing and the
# turn of its matrix into segments; compositing them costs about as much again. The UI
# thread shares the GIL with the engine: on the tiny CPU model (~900 completions/s) at 200x60
# and 2 ticks a second, 2% measured a UI thread of 9.8% of a core and training 4.7% (paired
# median) below headless; 1% measured 7.9% and 1.8%.
CHART_CPU_SHARE = 0.01
# On a fast run (the tiny model takes ~14 steps a second) the data changes every tick, but
# nobody reads a chart at that rate: a round of redraws starts at most this often, so a
# chart lags the run by at most about this long. Each round costs the UI thread tens of
# milliseconds of the GIL (build, plotext, compositing the chart regions), which slows a
# Python-bound engine more than the UI's CPU share suggests.
CHART_MIN_INTERVAL_S = 2.0
COMPACT_WIDTH = 120  # below this the side panes become tabs
COMPACT_HEIGHT = 32
FOLLOW_S = 1.0  # how often a run directory opened from disk is re-read
SYSTEM_S = 2.0  # how often CPU, RAM and GPU memory are sampled

OVERVIEW = (
    ChartSpec("reward", ("reward", "rewards/*/mean"), ("total", "")),
    ChartSpec("accuracy", ("accuracy", "eval/accuracy"), ("train", "eval")),
    ChartSpec("advantage std", ("advantage/std", "frac_reward_zero_std"), ("adv std", "zero-std frac")),
    ChartSpec("KL", ("kl",)),
    ChartSpec(  # loss_type cispo logs its own (capped weights) instead of the three
        "clip ratio",
        ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "cispo_clip_ratio"),
        ("low", "high", "region", "cispo"),
    ),
)
TRAINING = (
    ChartSpec("entropy", ("entropy",)),
    # in a run with tools, the tokens of tool results in each episode (not trained on) beside its length
    ChartSpec("completion length", ("completions/mean_length", "tools/masked_tokens_mean"), ("length", "tool tok")),
    ChartSpec("clipped (truncated) ratio", ("completions/clipped_ratio",)),
    ChartSpec("loss", ("loss",)),
    ChartSpec("grad norm", ("grad_norm",)),
    ChartSpec("learning rate", ("learning_rate",)),
    ChartSpec("completions / s", ("completions_per_s",)),
)
# A run with tools (multi-turn episodes) logs tools/* metrics; these charts join the training
# tab when the first one comes, so a run without tools shows no empty charts for them.
TOOLS = (
    ChartSpec("tools", ("tools/call_frequency", "tools/failure_frequency", "tools/timeout_frequency"),
              ("calls", "failed", "timeout")),  # calls per episode; the others shares of the calls
    ChartSpec("episodes", ("tools/turns_mean", "tools/parse_error_frequency", "tools/limit_ratio"),
              ("turns", "parse err", "limit")),  # assistant turns per episode; shares of the episodes
)


def has_tool_metrics(model: RunModel) -> bool:
    return any(name.startswith("tools/") for name in model.series)


CONTROL_ACTIONS = ("pause", "resume", "checkpoint", "adjust", "stop", "reload_rewards")


class ChartGrid(ScrollableContainer, can_focus=True):
    """The charts of one tab in a grid; focusable so a short terminal scrolls it by keyboard."""

    DEFAULT_CSS = "ChartGrid { layout: grid; }"


class DashboardScreen(ChartControls, Screen):
    COMMANDS = {DashboardCommands}

    BINDINGS = [
        Binding("p", "pause", "Pause", id="dashboard.pause"),
        Binding("p", "resume", "Resume", id="dashboard.resume"),
        Binding("c", "checkpoint", "Ckpt", id="dashboard.checkpoint"),
        Binding("a", "adjust", "Adjust", id="dashboard.adjust"),
        Binding("s", "stop", "Stop", id="dashboard.stop"),
        Binding("i", "inspect", "Inspect", id="dashboard.inspect"),
        Binding("m", "smooth", "EMA", id="dashboard.smooth"),
        Binding("v", "config", "Config", id="dashboard.config", show=False),  # palette; the footer is full at 80 columns
        Binding("r", "reward_bench", "Rewards", id="dashboard.reward_bench"),
        Binding("R", "reload_rewards", "Reload rewards", id="dashboard.reload_rewards", show=False,
                tooltip="Reload reward functions from their files (at the next step boundary)"),
        Binding("l", "launcher", "Launcher", id="dashboard.launcher", show=False),
        Binding("1", "tab('tab-overview')", "Overview", id="dashboard.tab1", show=False),
        Binding("2", "tab('tab-training')", "Training", id="dashboard.tab2", show=False),
        Binding("3", "tab('tab-samples')", "Samples", id="dashboard.tab3", show=False),
        Binding("4", "tab('tab-events')", "Events", id="dashboard.tab4", show=False),
        Binding("5", "tab('tab-system')", "System", id="dashboard.tab5", show=False),
        *CHART_BINDINGS,
    ]

    def __init__(self, model: RunModel, live: "LiveRun | None" = None, follower: "RunFollower | None" = None) -> None:
        """``live``: a run this app trains (controls on). ``follower``: a run directory
        read from disk, kept current while another process writes it (read-only)."""
        super().__init__()
        self.model = model
        self.live = live
        self.follower = follower
        self.compact: bool | None = None
        self._charts: dict[str, list[MetricChart]] = {}

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield RunStatus(self.model, self.app.clock, id="status")
        with Vertical(id="dash-body"):
            with TabbedContent(id="dash-tabs", initial="tab-overview"):
                with TabPane("Overview 1", id="tab-overview"):
                    with ChartGrid(id="grid-overview", classes="chart-grid"):
                        for i, spec in enumerate(OVERVIEW):
                            yield MetricChart(spec, id=f"chart-o{i}")
                    yield ChartHint("grid-overview", classes="chart-hint")
                with TabPane("Training 2", id="tab-training"):
                    with ChartGrid(id="grid-training", classes="chart-grid"):
                        for i, spec in enumerate(TRAINING):
                            yield MetricChart(spec, id=f"chart-t{i}")
                    yield ChartHint("grid-training", classes="chart-hint")
                with TabPane("Samples 3", id="tab-samples"):
                    yield SamplesPane(id="tab-samples-pane")
                with TabPane("Events 4", id="tab-events"):
                    yield EventsPane(id="tab-events-pane")
                with TabPane("System 5", id="tab-system"):
                    with ScrollableContainer(id="system-scroll"):
                        yield SystemPane(id="system-pane")
            with Vertical(id="dash-side"):
                yield SamplesPane(id="side-samples")
                yield EventsPane(id="side-events")
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self._tabs = self.query_one("#dash-tabs", TabbedContent)
        self._status = self.query_one(RunStatus)
        self.query_one("#side-samples").border_title = "Samples (latest step)"
        self.query_one("#side-events").border_title = "Events"
        self._apply_size()
        self.redraw()
        self.set_interval(1 / TICK_HZ, self.tick)
        if self.follower is not None:
            self.set_interval(FOLLOW_S, self.follower.poll)
        self._sampler = None
        self.sample_system()
        self.set_interval(SYSTEM_S, self.sample_system)

    def sample_system(self) -> None:
        """CPU, RAM and GPU memory now: into the system tab, and the fullest memory into the
        status line while a process trains this run (not for a run read from disk)."""
        from grpo_tui.model.system import SystemSampler

        try:
            if self._sampler is None:
                self._sampler = SystemSampler(pid=self._trainer_pid())
            snapshot = self._sampler.sample()
        except Exception as err:  # noqa: BLE001 - figures are a help, never a reason to fail
            self.log.warning(f"system sampling failed: {err!r}")
            return
        pane = self.query_one("#system-pane", SystemPane)
        pane.record(snapshot)
        if self._tabs.active == "tab-system":
            pane.refresh_view()
        training = self.live is not None and not self.model.is_terminal
        self._status.system = snapshot if training else None

    def _trainer_pid(self) -> int | None:
        """The process that trains this run: this one, the one an attached run's heartbeat
        names (on this host), or none (a run read from disk)."""
        import os
        import socket

        from grpo_tui.model.session import AttachedRun

        if isinstance(self.live, AttachedRun):
            from engine.run.channel import read_heartbeat

            beat = read_heartbeat(self.live.run_dir) or {}
            return beat.get("pid") if beat.get("host") == socket.gethostname() else None
        return os.getpid() if self.live is not None else None

    def on_resize(self) -> None:
        self._apply_size()
        self.call_after_refresh(self._fit_and_redraw)

    def _fit_and_redraw(self) -> None:
        self.fit_grids()
        self.call_after_refresh(self.redraw)  # the charts know their new size after this layout

    def _apply_size(self) -> None:
        width, height = self.app.size
        compact = width < COMPACT_WIDTH or height < COMPACT_HEIGHT
        if compact == self.compact:
            return
        self.compact = compact
        self.set_class(compact, "-compact")
        tabs = self.query_one("#dash-tabs", TabbedContent)
        for pane in ("tab-samples", "tab-events"):
            if compact:
                tabs.show_tab(pane)
            else:
                tabs.hide_tab(pane)
                if tabs.active == pane:
                    tabs.active = "tab-overview"

    # -- drawing -----------------------------------------------------------------
    _ticks = 0

    def tick(self) -> None:
        """Panes and status every tick; the charts whose data changed in rounds.

        A round redraws every visible chart that is out of date, a few per tick (drawing
        stops at TICK_CHART_S per tick, so keys stay responsive), until all show the same
        model; the next round waits until the round's cost fits CHART_CPU_SHARE. So no chart
        lags the others by more than one round, and the UI's share of the CPU stays bounded.
        On a model whose steps take seconds every chart redraws once per step.
        """
        self._ticks += 1
        try:
            self._tick()
        except Exception as err:  # noqa: BLE001 - a drawing bug must not end the app (and the run with it)
            self._report_draw_error(err)

    _draw_error_shown = False

    def _report_draw_error(self, err: Exception) -> None:
        self.log.error(f"dashboard redraw failed: {err!r}")
        if not self._draw_error_shown:
            self._draw_error_shown = True
            self.notify(f"A view failed to draw ({type(err).__name__}: {err}); training goes on.", severity="error")

    _tool_charts = False

    def add_tool_charts(self) -> None:
        """The TOOLS charts, at the end of the training tab, once the run has logged a tools/* metric."""
        if self._tool_charts or not has_tool_metrics(self.model):
            return
        self._tool_charts = True
        charts = [MetricChart(spec, id=f"chart-tools{i}") for i, spec in enumerate(TOOLS)]
        if self._prefs_applied:  # the others got the saved choices already
            saved = chart_prefs.load(self._preset())
            for chart in charts:
                chart.set_metrics(saved.get(chart.default_spec.title) or None)
        self.call_later(self._mount_tool_charts, charts)

    async def _mount_tool_charts(self, charts: list[MetricChart]) -> None:
        await self.query_one("#grid-training").mount(*charts)
        self._charts.pop("tab-training", None)
        self._fit_and_redraw()  # drawn once the layout has given them a size, not at the next round

    _next_chart_at = 0.0
    _round: list[MetricChart] | None = None
    _round_cost = 0.0
    _round_started = 0.0
    _hinted_markers = -1

    def _tick(self) -> None:
        now = time.perf_counter()
        self.apply_chart_prefs()
        self.add_tool_charts()
        if self._round is None and now >= self._next_chart_at:
            stale = [chart for chart in self.visible_charts() if chart.needs_redraw(self.model, self.view)]
            if stale:
                self._round, self._round_cost = stale, 0.0
                self._round_started = now
                # The hint line names the marker kinds: rebuild it (a layout of the whole
                # screen) only when a marker came; view changes go through redraw().
                if len(self.model.markers) != self._hinted_markers:
                    self._hinted_markers = len(self.model.markers)
                    self.update_hints()
        if self._round is not None:
            spent = 0.0
            while self._round and spent < TICK_CHART_S:
                chart = self._round.pop(0)
                chart.update_from(self.model, self.view)
                spent += chart.last_cost  # its previous render: the estimate of this one
            self._round_cost += spent
            if not self._round:
                self._round = None
                # The next round waits long enough to keep charts within their CPU share,
                # and at least CHART_MIN_INTERVAL_S from this round's start.
                self._next_chart_at = max(now + self._round_cost / CHART_CPU_SHARE,
                                          self._round_started + CHART_MIN_INTERVAL_S)
        self.redraw_panes()

    def visible_charts(self) -> list[MetricChart]:
        active = self._tabs.active
        if active not in ("tab-overview", "tab-training"):
            return []
        if active not in self._charts:  # DOM queries cost; the charts never change
            self._charts[active] = list(self.query_one(f"#grid-{active.removeprefix('tab-')}").query(MetricChart))
        return self._charts[active]

    def redraw(self) -> None:
        """Everything visible, now (on mount, resize, tab switch, smoothing toggle)."""
        self.apply_chart_prefs()
        self.add_tool_charts()
        for chart in self.visible_charts():
            chart.update_from(self.model, self.view)
        self.update_hints()
        self._hinted_markers = len(self.model.markers)
        if self._tabs.active == "tab-system":
            self.query_one("#system-pane", SystemPane).refresh_view()
        self.redraw_panes()

    def redraw_panes(self, samples: bool = True) -> None:
        model = self.model
        self._status.update_from(model)
        if not self.compact:
            if samples:
                self.query_one("#side-samples", SamplesPane).update_from(model)
            self.query_one("#side-events", EventsPane).update_from(model)
        else:
            active = self._tabs.active
            if active == "tab-samples" and samples:
                self.query_one("#tab-samples-pane", SamplesPane).update_from(model)
            elif active == "tab-events":
                self.query_one("#tab-events-pane", EventsPane).update_from(model)
        if self._last_state != model.state:
            self._last_state = model.state
            self.refresh_bindings()

    _last_state: str | None = None

    # -- controls ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer shows only what acts now: no control on a read-only or ended run
        (finished, stopped, abandoned, failed, crashed) or one that is stopping; Pause
        while it runs, Resume while it is paused."""
        if action in CONTROL_ACTIONS:
            if self.live is None or self.model.is_terminal or self.model.state == RunState.STOPPING:
                return False
            paused = self.live.control.paused_requested
            if action == "pause" and paused or action == "resume" and not paused:
                return False  # one key, two meanings: only the one that applies is shown
        return True

    def action_pause(self) -> None:
        if self.live is None:
            return
        self.live.control.pause()
        self.model.requested.add("pause")  # the header says so until the pause takes effect
        self.model.version += 1
        self.notify("Pausing at the next step boundary…", timeout=2)
        self.refresh_bindings()

    def action_resume(self) -> None:
        if self.live is None:
            return
        self.live.control.resume()
        self.model.requested.discard("pause")
        self.model.version += 1
        self.notify("Resuming…", timeout=2)
        self.refresh_bindings()

    def action_checkpoint(self) -> None:
        if self.live is None:
            return
        self.live.control.checkpoint()
        self.notify("Checkpoint requested (saved at the next step boundary)", timeout=3)

    def action_reload_rewards(self) -> None:
        """Re-import the reward plugins from their files: a fixed plugin takes effect (the
        events pane says what was reloaded, or why not)."""
        if self.live is None:
            return
        self.live.control.reload_rewards()
        self.notify("Reward functions reload at the next step boundary", timeout=3)

    def action_adjust(self) -> None:
        if self.live is None:
            return
        from grpo_tui.screens.adjust import AdjustScreen

        def done(changes: dict[str, Any] | None) -> None:
            if changes and self.live is not None:
                self.live.control.adjust(**changes)
                self.notify("Adjustment queued: " + ", ".join(f"{k}={v}" for k, v in changes.items()), timeout=3)

        self.app.push_screen(AdjustScreen(self.live.cfg, self.model.config), done)

    def action_stop(self) -> None:
        if self.live is None:
            return
        from grpo_tui.screens.confirm import ConfirmScreen

        def done(yes: bool | None) -> None:
            if yes and self.live is not None:
                self.live.control.stop()
                self.model.requested.add("stop")
                self.model.version += 1
                self.notify("Stopping: the final model is being saved…", timeout=3)

        self.app.push_screen(
            ConfirmScreen("Stop training?", "The run stops at the next step boundary and saves final/.", yes="Stop"),
            done,
        )

    def action_inspect(self) -> None:
        from grpo_tui.screens.inspector import InspectorScreen

        if not self.model.run_dir:
            self.notify("No run directory yet", severity="warning")
            return
        latest = self.model.latest_samples()
        self.app.push_screen(InspectorScreen(self.model.run_dir, step=latest.get("step") if latest else None))

    def action_config(self) -> None:
        from grpo_tui.screens.config_view import ConfigViewScreen

        if not self.model.run_dir:
            return
        self.app.push_screen(ConfigViewScreen(self.model))

    def action_reward_bench(self) -> None:
        """The reward test bench on this run's reward functions, with the latest sample in it."""
        from grpo_tui.screens.reward_bench import RewardBenchScreen, bench_config, one_line

        try:
            cfg = bench_config(self.model.run_dir, self.model.config, self.live)
        except Exception as err:  # noqa: BLE001 - a clear message, never a traceback
            self.notify(f"cannot read the run's reward config: {one_line(err)}", severity="error", timeout=8)
            return
        prompt = completion = ""
        columns: dict[str, Any] = {}
        latest = self.model.latest_samples() or {}
        groups = latest.get("groups") or []
        if groups:
            group = groups[0]
            prompt = str(group.get("prompt", ""))
            comps = group.get("completions") or []
            completion = str(comps[0].get("text", "")) if comps else ""
            if group.get("answer") is not None:
                columns["answer"] = group["answer"]
        self.app.push_screen(RewardBenchScreen(cfg, prompt, completion, columns))

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one("#dash-tabs", TabbedContent)
        if tab in ("tab-samples", "tab-events") and not self.compact:
            target = self.query_one("#side-samples" if tab == "tab-samples" else "#side-events")
            target.focus()
            return
        tabs.active = tab
        self.redraw()
        self.call_after_refresh(self._fit_and_redraw)  # a tab's charts know their size only after layout

    def action_show_system(self) -> None:
        self.action_tab("tab-system")

    def action_launcher(self) -> None:
        self.app.action_show_launcher()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.redraw()
        self.call_after_refresh(self._fit_and_redraw)  # a tab's charts know their size only after layout
