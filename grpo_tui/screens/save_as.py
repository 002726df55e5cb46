"""The preset editor's "save as" dialog: a name and one of the two places a user's presets
live -- ``./presets/`` (next to the project) or the user's folder
(``~/.config/grpo-tui/presets/``). The bundled presets' folder is never offered: when
``./presets/`` is that folder (grpo-tui run from its source tree), only the user's folder is.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, RadioButton, RadioSet

from engine.config.presets import is_bundled, user_preset_dir


def tilde(path: Path) -> str:
    """``path`` with ``~`` for the home folder."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text.startswith(home + "/") else text


def save_places() -> list[tuple[str, Path]]:
    """(label, folder) for each place a preset may be saved, ./presets/ first when allowed."""
    places = []
    local = Path.cwd() / "presets"
    if not is_bundled(local):
        places.append(("./presets/  (beside this project)", local))
    places.append((tilde(user_preset_dir()) + "/  (yours, found from anywhere)", user_preset_dir()))
    return places


class SaveAsScreen(ModalScreen[Path | None]):
    """Answers the path to save to (its folder made when saving), or None when cancelled.
    The name is checked here, so a name in use or a bundled path keeps the dialog open with
    the reason under the name."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="saveas.cancel"),
        Binding("up", "place(-1)", "Place above", id="saveas.place_up", show=False),
        Binding("down", "place(1)", "Place below", id="saveas.place_down", show=False),
    ]
    DEFAULT_CSS = """
    SaveAsScreen RadioSet { width: 100%; }
    SaveAsScreen #saveas-target { height: auto; margin-bottom: 1; color: $text-muted; }
    SaveAsScreen #saveas-target.-error { color: $error; }
    """

    def __init__(self, suggestion: str, folder: Path | None = None) -> None:
        """``folder``: the place chosen at first, when it is one of the places."""
        super().__init__()
        self.places = save_places()
        self.suggestion = suggestion
        folders = [f for _, f in self.places]
        self.choice = folders.index(folder) if folder in folders else len(folders) - 1

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="saveas-dialog"):
            yield Label("Save preset as", classes="dialog-title")
            yield Label("Where (↑↓ choose):")
            with RadioSet(id="saveas-place"):
                for i, (label, _folder) in enumerate(self.places):
                    yield RadioButton(label, value=i == self.choice)
            yield Label("Name (Enter saves, Esc cancels):")
            yield Input(self.suggestion, id="saveas-name")
            yield Label("", id="saveas-target")

    def on_mount(self) -> None:
        self.query_one("#saveas-name", Input).focus()
        self._show_target()

    def _show_target(self) -> None:
        """Under the name: the file it saves to, or why it cannot."""
        label = self.query_one("#saveas-target", Label)
        target = self.target(self.query_one("#saveas-name", Input).value)
        label.set_class(isinstance(target, str), "-error")
        label.update(f"saves {tilde(target)}" if isinstance(target, Path) else target)

    @property
    def folder(self) -> Path:
        """The place chosen now."""
        index = self.query_one("#saveas-place", RadioSet).pressed_index
        return self.places[index if index >= 0 else self.choice][1]

    def target(self, value: str) -> Path | str:
        """The path a typed name stands for, or why it cannot be used."""
        value = value.strip()
        if not value:
            return "type a name"
        if "/" in value or value.startswith("~"):
            path = Path(value).expanduser()
            if path.suffix not in (".yaml", ".yml"):
                return "a path must end in .yaml"
            path = path if path.is_absolute() else Path.cwd() / path
        else:
            path = self.folder / (value if value.endswith((".yaml", ".yml")) else f"{value}.yaml")
        if is_bundled(path):
            return f"{path.parent} holds the bundled presets; choose another place"
        if path.exists():
            return f"{tilde(path)} exists; pick another name"
        return path

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        target = self.target(event.value)
        if isinstance(target, str):
            self._show_target()
            return
        self.dismiss(target)

    def on_input_changed(self) -> None:
        self._show_target()

    def on_radio_set_changed(self) -> None:
        self._show_target()

    def action_place(self, step: int) -> None:
        """Choose the place above or below the one chosen (the name keeps the focus)."""
        index = self.query_one("#saveas-place", RadioSet).pressed_index
        buttons = self.query(RadioButton)
        buttons[(max(index, 0) + step) % len(buttons)].value = True

    def action_cancel(self) -> None:
        self.dismiss(None)
