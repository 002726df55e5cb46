"""Command-palette providers: the dashboard's run controls, the launcher's presets and runs,
and any screen's own key bindings.

The palette lists the same actions as the footer bindings, skipping those not
possible for the run right now (a read-only or finished run cannot be paused).
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS = (
    ("pause", "Pause training", "Stop at the next step boundary; the model stays loaded"),
    ("resume", "Resume training", "Continue from where it paused"),
    ("checkpoint", "Checkpoint now", "Save a complete checkpoint at the next step boundary"),
    ("adjust", "Adjust hyperparameters…", "learning rate, beta, temperature, top_p, epsilon, lengths, reward weights"),
    ("stop", "Stop training…", "Stop and save the final model"),
    ("reload_rewards", "Reload reward functions", "Import the reward plugins from their files again (after a fix)"),
    ("inspect", "Inspect groups", "Browse any past step's groups token by token"),
    ("reward_bench", "Reward test bench", "Score a prompt and completion with every reward function"),
    ("smooth", "Toggle EMA smoothing", "Smooth the chart lines (key m)"),
    ("ema_strength", "Change the EMA strength", "0.1, 0.3 or 0.03: the weight of the newest step (key M)"),
    ("zoom(0.5)", "Zoom the charts in", "Around the cursor, or the middle (key +)"),
    ("zoom(2)", "Zoom the charts out", "key -"),
    ("zoom_reset", "Show every step on the charts", "Zoom reset (key 0)"),
    ("cursor(-1)", "Chart cursor", "Read every series' value at a step ([ ] or ← → on a chart; Esc off)"),
    ("marker(-1)", "Previous chart marker", "Put the cursor on it and say what it was (keys { })"),
    ("log_y", "Toggle log scale on the charts", "key L"),
    ("maximise", "Maximise the focused chart", "key z or Enter on a chart; Esc back"),
    ("pick_metrics", "Choose the focused chart's metrics…", "Any logged metric; remembered per preset (key e)"),
    ("config", "Show the resolved config", "The run's config.yaml, read-only"),
    ("show_system", "Show system resources", "CPU, RAM and GPU memory with their trend (tab 5)"),
    ("launcher", "Go to the launcher", "Presets and recent runs"),
)


class ListedCommands(Provider):
    """A provider over a list of (title, help, callback) that :meth:`_items` makes afresh."""

    @abstractmethod
    def _items(self) -> list[tuple[str, str, object]]: ...

    async def discover(self) -> Hits:
        for title, help_text, callback in self._items():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._items():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class DashboardCommands(ListedCommands):
    def _items(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        return [(title, help_text, partial(screen.run_action, action)) for action, title, help_text in COMMANDS
                if screen.check_action(action, ())] + [
            ("Search samples…", "Completions of every step by text, /regex/, reward>0.5 adv<0 len>100 (inspector, /)",
             partial(search_samples, screen))]


async def search_samples(dashboard) -> None:
    """The inspector of the dashboard's run, its search box open."""
    await dashboard.run_action("inspect")
    inspector = dashboard.app.screen
    if inspector is not dashboard and hasattr(inspector, "action_search"):
        inspector.call_after_refresh(inspector.action_search)


class LauncherCommands(ListedCommands):
    """Start any preset or open any recent run by name."""

    def _items(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        items: list[tuple[str, str, object]] = []
        for info in getattr(screen, "presets", []):
            if info.ok:
                items.append((f"Start {info.name}", (info.description or "").split("\n")[0], partial(screen.start_preset, info)))
        for run in getattr(screen, "runs", []):
            items.append((f"Open run {run.name}", f"{run.state}, step {run.step}", partial(self.app.open_run, str(run.path))))
        chosen = screen.selected_run() if hasattr(screen, "selected_run") else None
        for run in getattr(screen, "runs", []) if chosen is not None else []:
            if run.path != chosen.path:
                items.append((f"Compare {chosen.name} with {run.name}", "metrics overlaid by step, settings that differ",
                              partial(self.app.compare_runs, [str(chosen.path), str(run.path)])))
        return items


class ScreenBindingCommands(ListedCommands):
    """The screen's key bindings as commands, each titled by its tooltip (else its description),
    so an action whose footer hint is short, or hidden, is found by what it does."""

    def _items(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        items: list[tuple[str, str, object]] = []
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding) or not (binding.tooltip or binding.description):
                continue
            key = binding.key_display or binding.key.split(",")[0]
            items.append((binding.tooltip or binding.description, f"key {key}", partial(screen.run_action, binding.action)))
        return items
