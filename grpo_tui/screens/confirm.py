"""Questions in a modal, answered by keyboard: yes/no (y / n / Escape), or one of several
answers each with its key (the quit dialog, the resume dialog)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self._title = title
        self._message = message
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title")
            yield Label(self._message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self._yes} (y)", variant="error", id="yes")
                yield Button(f"{self._no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class ChoiceScreen(ModalScreen[str | None]):
    """Several answers (each a button with its key); Escape answers None. Buttons are as wide
    as their labels, so four fit in a dialog on an 80-column terminal."""

    DEFAULT_CSS = "ChoiceScreen .dialog-buttons Button { min-width: 0; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]

    def __init__(self, title: str, message: str, choices: list[tuple[str, str, str]]) -> None:
        """choices: (value, label, key)."""
        super().__init__()
        self._title = title
        self._message = message
        self._choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title")
            yield Label(self._message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for value, label, key in self._choices:
                    yield Button(f"{label} ({key})", id=f"choice-{value}")

    def on_mount(self) -> None:
        self.query(Button).last().focus()

    def on_key(self, event) -> None:
        for value, _label, key in self._choices:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def action_cancel(self) -> None:
        self.dismiss(None)


def quit_dialog(paused: bool) -> ChoiceScreen:
    """The question asked when the user quits while this process trains a run; answers
    detach, stop, abandon or cancel."""
    return ChoiceScreen(
        f"Training is {'paused' if paused else 'running'}",
        "Detach: training goes on in a background process\n"
        "        (grpo-tui attach shows it again).\n"
        "Stop: checkpoint, save the final model, then quit.\n"
        "Abandon: quit now; the run can resume from its\n"
        "         last checkpoint.",
        [("detach", "Detach", "d"), ("stop", "Stop", "s"), ("abandon", "Abandon", "a"), ("cancel", "Cancel", "c")],
    )


ENDED = {"stopped": "was stopped", "abandoned": "was abandoned", "crashed": "crashed", "failed": "failed"}


def resume_dialog(run) -> ChoiceScreen:
    """Resume, view or cancel for a run (an ``engine.run.listing.RunSummary``) that ended
    short of its steps; it names the checkpoint the run continues from and the steps redone."""
    plan = run.resume_plan()
    return ChoiceScreen(
        f"{run.name} {ENDED.get(run.state, 'was interrupted')} at step {run.step} of {run.max_steps or '?'}",
        f"{plan[0].upper()}{plan[1:]}.\nView opens it read-only, as it was left.",
        [("resume", "Resume", "r"), ("view", "View", "v"), ("cancel", "Cancel", "c")],
    )
