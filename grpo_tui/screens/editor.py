"""The preset editor (YAML, validated as you type).

Validation is the engine's own (``engine.config.presets.config_from_yaml``), run shortly after
each edit; every problem is listed with the line it belongs to, and F8 jumps there. A hint bar
under the text shows the type, default and doc of the key under the cursor (the same reference
``grpo-tui fields`` prints, from the engine's field docstrings).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, Static

from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.widgets.yaml_area import YamlTextArea

VALIDATE_DELAY = 0.3
USER_PRESETS = Path("~/.config/grpo-tui/presets").expanduser()  # where presets go when the source folder is read-only
YAML_LINE = re.compile(r"line (\d+)")
KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?([A-Za-z_][\w-]*)\s*:(?:\s|$)")


def locate(text: str, problem: str) -> int | None:
    """0-based line a problem refers to: a YAML error's line, else the key's line."""
    field, _, message = problem.partition(":")
    if field.strip() == "yaml":
        match = YAML_LINE.search(message)
        return int(match.group(1)) - 1 if match else None
    match = YAML_LINE.search(problem)
    path = [p for p in re.split(r"[.\[\]]", field.strip()) if p and not p.isdigit()]
    if not path:
        return int(match.group(1)) - 1 if match else None
    lines = text.splitlines()
    start, indent, found = 0, -1, None
    for key in path:
        pattern = re.compile(rf"^(\s*)(?:-\s+)?{re.escape(key)}\s*:")
        hit = None
        for i in range(start, len(lines)):
            m = pattern.match(lines[i])
            if m and len(m.group(1)) > indent:
                hit = (i, len(m.group(1)))
                break
        if hit is None:
            # Nested keys written in flow style ({digits: 2}) sit on their parent's line.
            flow = re.compile(rf"[{{,]\s*{re.escape(key)}\s*:")
            for i in range(start, len(lines)):
                if flow.search(lines[i]):
                    return i
            return found
        found, indent, start = hit[0], hit[1], hit[0] + 1
    return found


def key_at(text: str, row: int) -> str | None:
    """The dotted key path (``dataset.split``) of the YAML line ``row`` (0-based) belongs to:
    its own key, or for a list item or continuation line the key holding it; None on a blank
    or comment line."""
    lines = text.splitlines()
    if not 0 <= row < len(lines) or not lines[row].strip() or lines[row].lstrip().startswith("#"):
        return None
    path: list[str] = []
    limit: int | None = None  # a parent key is indented less than this
    for line in reversed(lines[: row + 1]):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if limit is not None and indent >= limit:
            continue
        match = KEY_LINE.match(line)
        if match:
            path.append(match.group(2))
            limit = indent
        elif limit is None:  # the cursor's line is a value: "- accuracy" may sit at its key's indent
            limit = indent + 1 if stripped.startswith("-") else indent
        if limit == 0:
            break
    return ".".join(reversed(path)) or None


class FieldHint(Static):
    """One or two lines about the preset key under the cursor: ``key: type = default — doc``."""

    DEFAULT_CSS = "FieldHint { height: 2; padding: 0 1; background: $panel; }"

    def show_key(self, key: str | None) -> None:
        from engine.config.docs import doc_for

        doc = doc_for(key) if key else None
        if doc is None:
            text = f"{key}: not a preset key (grpo-tui fields lists them)" if key else "move onto a key to see what it does"
            self.update(Content.styled(text, "$text-muted"))
            return
        self.update(Content.assemble((doc.key, "bold $accent"), f": {doc.type} = {doc.default}",
                                     (f" — {doc.doc}", "$text-muted")))

    def follow(self, area: YamlTextArea) -> None:
        self.show_key(key_at(area.text, area.cursor_location[0]))


class SaveAsScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="saveas.cancel")]

    def __init__(self, folder: Path, suggestion: str) -> None:
        super().__init__()
        self.folder = folder
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Save preset as (a name, or a path ending in .yaml)", classes="dialog-title")
            yield Label(f"names are saved in {self.folder}", classes="dialog-body")
            yield Input(self.suggestion, id="saveas-name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        path = Path(value).expanduser()
        if not value.endswith((".yaml", ".yml")):
            path = self.folder / f"{value}.yaml"
        elif not path.is_absolute() and "/" not in value:
            path = self.folder / value
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PresetEditorScreen(Screen[Path | None]):
    """Edit a preset file; ``new=True`` starts from it but saves under a new name."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save", priority=True),
        Binding("f2", "save_as", "Save as", id="editor.save_as", priority=True),
        Binding("f5", "revert", "Revert", id="editor.revert", priority=True),
        Binding("f8", "next_problem", "Next problem", id="editor.next_problem", priority=True),
        Binding("escape", "close", "Close", id="editor.close", priority=True),
    ]

    def __init__(self, path: Path, new: bool = False) -> None:
        super().__init__()
        self.source = Path(path)
        self.path: Path | None = None if new else self.source
        self.saved_text = self._read()
        self.problems: list[tuple[int | None, str]] = []
        self._timer = None
        self._problem_cursor = 0

    def _read(self) -> str:
        try:
            return self.source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            return f"# cannot read {self.source}: {err}\n"

    def compose(self) -> ComposeResult:
        yield Static("", id="editor-header")
        yield YamlTextArea(self.saved_text, id="editor-text", show_line_numbers=True, tab_behavior="indent")
        yield FieldHint(id="editor-hint")
        with VerticalScroll(id="editor-problems"):
            yield Static("", id="editor-problems-text")
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self.query_one("#editor-problems").border_title = "Validation"
        self.query_one("#editor-text").focus()
        self._hint()
        self.validate()

    def on_text_area_selection_changed(self) -> None:
        self._hint()

    def _hint(self) -> None:
        self.query_one("#editor-hint", FieldHint).follow(self.query_one("#editor-text", YamlTextArea))

    @property
    def text(self) -> str:
        return self.query_one("#editor-text", YamlTextArea).text

    @property
    def modified(self) -> bool:
        return self.path is None or self.text != self.saved_text

    def on_text_area_changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY, self.validate)
        self._header()
        self._hint()

    def validate(self) -> None:
        from engine.config.schema import ConfigError
        from engine.config.presets import config_from_yaml

        text = self.text
        try:
            config_from_yaml(text, base_dir=self.source.parent, source=self.source.name)
            problems: list[str] = []
        except ConfigError as err:
            problems = list(err.problems)
        except Exception as err:  # noqa: BLE001 - a validator bug must not close the editor
            problems = [f"config: {type(err).__name__}: {err}"]
        self.problems = sorted(((locate(text, p), p) for p in problems), key=lambda x: (x[0] is None, x[0] or 0))
        self._problem_cursor = 0
        body = self.query_one("#editor-problems-text", Static)
        if not self.problems:
            body.update(Content.styled("✓ valid preset", "bold $success"))
        else:
            parts: list = [(f"✘ {len(self.problems)} problem{'s' if len(self.problems) > 1 else ''} (F8 jumps to the next)", "bold $error")]
            for line, problem in self.problems:
                where = f"line {line + 1:>3}" if line is not None else "        "
                parts += ["\n", (where + "  ", "$text-muted"), (problem, "$error")]
            body.update(Content.assemble(*parts))
        self._header()

    def _header(self) -> None:
        name = str(self.path) if self.path else f"new preset (from {self.source.name}; F2 names it)"
        status = ("● modified", "$warning") if self.modified else ("saved", "$text-muted")
        valid = ("valid", "$success") if not self.problems else (f"{len(self.problems)} problems", "$error")
        self.query_one("#editor-header", Static).update(
            Content.assemble((" preset ", "bold reverse $accent"), f" {name}  ", status, "  ", valid)
        )

    # -- actions -------------------------------------------------------------------
    def action_save(self) -> None:
        if self.path is None:
            self.action_save_as()
            return
        self._write(self.path)

    def _write(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.text, encoding="utf-8")
        except OSError as err:
            self.notify(f"cannot save {path}: {err}", severity="error")
            return
        self.path = path
        self.saved_text = self.text
        note = "" if not self.problems else f" (with {len(self.problems)} problems)"
        self.notify(f"saved {path}{note}", severity="warning" if self.problems else "information", timeout=3)
        self._header()

    def action_save_as(self) -> None:
        folder = self.source.parent if os.access(self.source.parent, os.W_OK) else USER_PRESETS
        suggestion = f"{self.source.stem}-copy"

        def done(path: Path | None) -> None:
            if path is None:
                return
            if path.exists() and path != self.path:
                self.notify(f"{path} exists; pick another name", severity="error")
                return
            self._write(path)

        self.app.push_screen(SaveAsScreen(folder, suggestion), done)

    def action_revert(self) -> None:
        if self.path is not None:
            self.saved_text = self.path.read_text(encoding="utf-8") if self.path.exists() else self.saved_text
        self.query_one("#editor-text", YamlTextArea).load_text(self.saved_text)
        self.validate()
        self.notify("reverted", timeout=1.5)

    def action_next_problem(self) -> None:
        located = [line for line, _ in self.problems if line is not None]
        if not located:
            return
        line = located[self._problem_cursor % len(located)]
        self._problem_cursor += 1
        area = self.query_one("#editor-text", YamlTextArea)
        area.move_cursor((line, 0), center=True)
        area.focus()

    def action_close(self) -> None:
        if not self.modified or (self.path is None and self.text == self.saved_text):
            self.dismiss(self.path)
            return
        from grpo_tui.screens.confirm import ConfirmScreen

        def answer(discard: bool | None) -> None:
            if discard:
                self.dismiss(self.path)

        self.app.push_screen(ConfirmScreen("Discard changes?", "The preset has unsaved changes.", yes="Discard"), answer)
