"""The preset editor (YAML, validated as you type).

Validation is the engine's own (``engine.config.presets.config_from_yaml``), run shortly after
each edit; every problem is listed with the line it belongs to, that line is marked in the
text, and F8 jumps to the next one. A hint bar
under the text shows the type, default and doc of the key under the cursor (the same reference
``grpo-tui fields`` prints, from the engine's field docstrings).
"""

from __future__ import annotations

import re
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from grpo_tui.screens.save_as import tilde
from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.widgets.yaml_area import YamlTextArea

VALIDATE_DELAY = 0.3
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


class PresetEditorScreen(Screen[Path | None]):
    """Edit a preset file; ``new=True`` starts from it but saves under a new name.

    A bundled preset (:func:`engine.config.presets.is_bundled`) is never written: the editor
    opens a copy whose Ctrl+S goes to the user's folder under the same name, where it takes
    the bundled preset's place. Presets the user owns are edited in place. Saving a preset
    with problems, and leaving with unsaved changes, ask first.
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save", priority=True),
        Binding("f2", "save_as", "Save as", id="editor.save_as", priority=True),
        Binding("f5", "revert", "Revert", id="editor.revert", priority=True),
        Binding("f8", "next_problem", "Next problem", id="editor.next_problem", priority=True),
        Binding("escape", "close", "Close", id="editor.close", priority=True),
    ]

    def __init__(self, path: Path, new: bool = False) -> None:
        from engine.config.presets import is_bundled, user_preset_dir

        super().__init__()
        self.source = Path(path)
        self.bundled = not new and is_bundled(self.source)
        """Editing a copy of a bundled preset: ``path`` is where the copy will be saved."""
        self.path: Path | None = None if new else user_preset_dir() / self.source.name if self.bundled else self.source
        """Where Ctrl+S writes; None for a new preset until it is named (F2)."""
        self.saved = not new and not self.bundled
        """Whether ``path`` holds ``saved_text`` (false for a copy or a new preset not saved yet)."""
        self.saved_text = self._read()
        self.problems: list[tuple[int | None, str]] = []
        self._timer = None

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
        """Whether the text differs from what was opened or last saved."""
        return self.text != self.saved_text

    @property
    def unsaved(self) -> bool:
        """Whether leaving now loses something: edits, or a new preset never saved."""
        return self.modified or (self.path is None and not self.saved)

    def on_text_area_changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY, self.validate)
        self._header()
        self._hint()

    def validate(self) -> None:
        from engine.config.schema import ConfigError
        from engine.config.presets import config_from_yaml

        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        text = self.text
        folder = (self.path or self.source).parent  # relative paths resolve where the file will live
        try:
            config_from_yaml(text, base_dir=folder, source=self.source.name)
            problems: list[str] = []
        except ConfigError as err:
            problems = list(err.problems)
        except Exception as err:  # noqa: BLE001 - a validator bug must not close the editor
            problems = [f"config: {type(err).__name__}: {err}"]
        self.problems = sorted(((locate(text, p), p) for p in problems), key=lambda x: (x[0] is None, x[0] or 0))
        self.query_one("#editor-text", YamlTextArea).mark_errors(line for line, _ in self.problems if line is not None)
        body = self.query_one("#editor-problems-text", Static)
        if not self.problems:
            body.update(Content.styled("✓ valid preset", "bold $success"))
        else:
            parts: list = [(f"✘ {plural(len(self.problems), 'problem')} (marked ✘ in the text; F8 jumps to the next)", "bold $error")]
            for line, problem in self.problems:
                where = f"line {line + 1:>3}" if line is not None else "        "
                parts += ["\n", (where + "  ", "$text-muted"), (problem, "$error")]
            body.update(Content.assemble(*parts))
        self._header()

    def _header(self) -> None:
        if self.path is None:
            name = f"new preset (from {self.source.name}; F2 names it)"
        elif self.bundled and not self.saved:
            name = f"editing a copy of the bundled preset {self.source.stem}; Ctrl+S saves to {tilde(self.path)}"
        else:
            name = tilde(self.path)
        status = ("● modified", "$warning") if self.modified else ("saved", "$text-muted") if self.saved else ("", "")
        valid = ("valid", "$success") if not self.problems else (plural(len(self.problems), "problem"), "$error")
        self.query_one("#editor-header", Static).update(
            Content.assemble((" preset ", "bold reverse $accent"), f" {name}  ", status, "  ", valid)
        )

    # -- saving --------------------------------------------------------------------
    def action_save(self) -> None:
        self.run_worker(self.save(self.path), group="editor-save", exclusive=True)

    def action_save_as(self) -> None:
        self.run_worker(self.save(None), group="editor-save", exclusive=True)

    async def save(self, path: Path | None) -> bool:
        """Save to ``path`` (None: ask for a name and place), asking first when the text has
        problems or would replace a file this editor did not open; True once written."""
        from grpo_tui.screens.confirm import ConfirmScreen

        self.validate()  # the problems of the text as it is now, not as it was 0.3 s ago
        if path is None:
            from grpo_tui.screens.save_as import SaveAsScreen

            stem = self.source.stem
            path = await self.app.push_screen_wait(SaveAsScreen(f"{stem}-copy", (self.path or self.source).parent))
            if path is None:
                return False
        elif path != self.source and not self.saved and path.exists():
            replace = await self.app.push_screen_wait(
                ConfirmScreen(f"Replace {tilde(path)}?", f"{tilde(path)} already exists.", yes="Replace"))
            if not replace:
                return False
        if self.problems:
            count = plural(len(self.problems), "error")
            first = self.problems[0][1]
            answer = await self.app.push_screen_wait(ConfirmScreen(
                f"Save with {count}?", f"The preset does not validate, so it cannot be started:\n{first}",
                yes="Save anyway"))
            if not answer:
                return False
        return self._write(path)

    def _write(self, path: Path) -> bool:
        from engine.config.presets import is_bundled

        if is_bundled(path):  # the save-as dialog never offers it; a last guard for the shipped files
            self.notify(f"{path.parent} holds the bundled presets; press F2 to save elsewhere", severity="error")
            return False
        text = self.text
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            self.notify(f"cannot save {tilde(path)}: {err}", severity="error")
            return False
        self.path = path
        self.saved = True
        self.saved_text = text
        note = "" if not self.problems else f" (with {plural(len(self.problems), 'problem')})"
        self.notify(f"saved {tilde(path)}{note}", severity="warning" if self.problems else "information", timeout=3)
        self._header()
        return True

    def action_revert(self) -> None:
        if self.path is not None and self.saved:
            try:
                self.saved_text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                self.notify(f"cannot read {tilde(self.path)}: {err}", severity="error")
                return
        self.query_one("#editor-text", YamlTextArea).load_text(self.saved_text)
        self.validate()
        self.notify("reverted", timeout=1.5)

    def action_next_problem(self) -> None:
        """Move the cursor to the next line with a problem after it (from the top at the end)."""
        located = sorted({line for line, _ in self.problems if line is not None})
        if not located:
            if self.problems:
                self.notify("the problems are not on one line; they are listed under the text", timeout=3)
            return
        area = self.query_one("#editor-text", YamlTextArea)
        row = area.cursor_location[0]
        line = next((i for i in located if i > row), located[0])
        area.move_cursor((line, 0), center=True)
        area.focus()

    # -- leaving -------------------------------------------------------------------
    def action_close(self) -> None:
        if not self.unsaved:
            self.dismiss(self.path if self.saved else None)
            return
        self.run_worker(self._ask_to_leave(), group="editor-close", exclusive=True)

    async def _ask_to_leave(self) -> None:
        from grpo_tui.screens.confirm import ChoiceScreen

        if self.path is None:
            what = f"This new preset (from {self.source.name}) has not been saved."
        elif self.bundled and not self.saved:
            what = f"This copy of the bundled preset {self.source.stem} has not been saved\n(Ctrl+S saves it to {tilde(self.path)})."
        else:
            what = f"{tilde(self.path)} has unsaved changes."
        choice = await self.app.push_screen_wait(ChoiceScreen(
            "Leave the editor?", what,
            [("save", "Save", "s"), ("discard", "Discard", "d"), ("cancel", "Cancel", "c")]))
        if choice == "save" and await self.save(self.path):
            self.dismiss(self.path)
        elif choice == "discard":
            self.dismiss(self.path if self.saved else None)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
