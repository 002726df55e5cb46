"""The resolved config of a run, read-only, as it stands now.

``config.yaml`` holds the config a run started with; live adjustments (the adjust form,
``grpo-tui send adjust``) change it while it trains. The view shows the file with each
adjusted field at its current value and, beside it, what it was and when it changed
(``learning_rate: 0.0001  # ← 5.0e-05 at step 262``), so the text stays valid YAML and
reads like the file. It follows the run: an adjustment made while it is open shows at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from grpo_tui.model.run_model import Adjustment, RunModel
from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.widgets.yaml_area import YamlTextArea

TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")
FOLLOW_S = 1.0  # how often the view looks for new adjustments


def yaml_value(value: Any) -> str:
    """``value`` as config.yaml writes it (``5.0e-05``, ``[1.0, 0.5]``), on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def change_note(changes: list[Adjustment]) -> str:
    """Where a field's value came from, newest change first: ``← 0.0001 at step 300 ← 5.0e-05 at step 262``."""
    return " ".join(f"← {yaml_value(c.old)} at step {'?' if c.step is None else c.step}" for c in reversed(changes))


def live_config_text(text: str, config: dict[str, Any], adjustments: Iterable[Adjustment]) -> str:
    """``text`` (a config.yaml) with every adjusted top-level field at its current value
    (``config``'s, else the newest change's) and a comment saying what it was and when."""
    changes: dict[str, list[Adjustment]] = {}
    for change in adjustments:
        changes.setdefault(change.field, []).append(change)
    lines, out, done = text.splitlines(), [], set()
    i = 0
    while i < len(lines):
        match = TOP_KEY.match(lines[i])
        key = match.group(1) if match else None
        i += 1
        if key not in changes:
            out.append(lines[i - 1])
            continue
        while i < len(lines) and lines[i].startswith((" ", "-")):  # the old value's block lines
            i += 1
        out.append(_line(key, config, changes[key]))
        done.add(key)
    out += [_line(key, config, history) for key, history in changes.items() if key not in done]
    return "\n".join(out) + "\n"


def _line(key: str, config: dict[str, Any], history: list[Adjustment]) -> str:
    value = config[key] if key in config else history[-1].new
    return f"{key}: {yaml_value(value)}  # {change_note(history)}"


class ConfigViewScreen(Screen):
    """The resolved config.yaml of a run with its live values, read-only."""

    BINDINGS = [Binding("escape,v", "app.pop_screen", "Back", id="config.back")]

    def __init__(self, model: RunModel) -> None:
        super().__init__()
        self.model = model
        self.path = Path(model.run_dir or ".") / "config.yaml"
        self._shown: tuple | None = None

    def compose(self) -> ComposeResult:
        from grpo_tui.screens.editor import FieldHint

        yield Static(id="editor-header")
        yield YamlTextArea("", id="editor-text", read_only=True, show_line_numbers=True)
        yield FieldHint(id="editor-hint")
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self.follow_model()
        self.set_interval(FOLLOW_S, self.follow_model)
        self._hint().follow(self.query_one("#editor-text", YamlTextArea))

    def _hint(self):
        from grpo_tui.screens.editor import FieldHint

        return self.query_one("#editor-hint", FieldHint)

    def follow_model(self) -> None:
        """Redraw when an adjustment arrived (or the file appeared); the cursor stays put."""
        key = (len(self.model.adjustments), self.path.exists())
        if key == self._shown:
            return
        self._shown = key
        area = self.query_one("#editor-text", YamlTextArea)
        cursor, scroll = area.cursor_location, area.scroll_offset
        area.load_text(live_config_text(self._file_text(), self.model.config, self.model.adjustments))
        area.move_cursor(cursor)
        area.scroll_to(scroll.x, scroll.y, animate=False)
        adjusted = len({c.field for c in self.model.adjustments})
        note = f" · {adjusted} changed live, ← earlier values" if adjusted else ""
        self.query_one("#editor-header", Static).update(
            Content.assemble((" config ", "bold reverse $accent"), f" {self.path}  (read-only{note})"))

    def _file_text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            if self.model.config:
                return yaml.safe_dump(self.model.config, sort_keys=False)
            return "# the run has not written config.yaml yet\n"

    def on_text_area_selection_changed(self, event: YamlTextArea.SelectionChanged) -> None:
        self._hint().follow(event.text_area)
