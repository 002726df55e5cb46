"""Choose which metrics one chart shows, from every metric the run has logged.

The default charts cover what most runs need; a user chasing a slow step wants
``time/generate`` next to ``step_time``, one chasing a reward function its ``std``. The
list is every series in the model (metrics.jsonl and eval results), the chart's current
metrics ticked. Space ticks, Enter applies, ``d`` restores the chart's defaults, Esc
leaves it as it was. The dashboard remembers the choice per preset.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList

DEFAULTS = "defaults"  # the answer that means "back to the chart's default metrics"


class MetricPickerScreen(ModalScreen[list[str] | str | None]):
    """Answers the ticked metrics (in the list's order), DEFAULTS, or None (cancelled)."""

    DEFAULT_CSS = """
    MetricPickerScreen #picker-dialog { width: 60; max-width: 95%; height: 90%; }
    MetricPickerScreen #picker-list { height: 1fr; }
    MetricPickerScreen .dialog-buttons Button { min-width: 0; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
        Binding("enter", "apply", "Apply", id="picker.apply", priority=True),
        Binding("d", "defaults", "Defaults", id="picker.defaults"),
    ]

    def __init__(self, title: str, available: list[str], chosen: list[str]) -> None:
        super().__init__()
        self._title = title
        self._available = available
        self._chosen = set(chosen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker-dialog"):
            yield Label(f"Metrics on the {self._title} chart", classes="dialog-title")
            yield Label("space ticks · enter applies · d defaults · esc cancels", classes="dialog-body")
            yield SelectionList[str](*[(name, name, name in self._chosen) for name in self._available],
                                     id="picker-list")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Defaults (d)", id="defaults")
                yield Button("Apply (enter)", variant="primary", id="apply")

    def on_mount(self) -> None:
        self.query_one("#picker-list").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.action_defaults()

    def action_apply(self) -> None:
        ticked = set(self.query_one("#picker-list", SelectionList).selected)
        self.dismiss([name for name in self._available if name in ticked])

    def action_defaults(self) -> None:
        self.dismiss(DEFAULTS)

    def action_cancel(self) -> None:
        self.dismiss(None)
