"""The launcher: presets (with what each needs and whether it validates) and recent runs.

Enter on a preset starts a run in the dashboard; Enter on a run opens it read-only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from grpo_tui.widgets.footer import ResponsiveFooter
from grpo_tui.commands import LauncherCommands
from engine.config.presets import bundled_preset_dir, is_bundled
from engine.run.listing import RunSummary, summarize_run

DEFAULT_PRESET = "tiny-arithmetic"  # runs anywhere, in about two minutes
RUNS_REFRESH_S = 3.0  # how often the recent runs are read again (a run that finishes shows so)


def preset_fields(path: Path) -> dict[str, Any]:
    """The raw preset mapping (no validation), for the table and the details pane."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def hardware(description: str, fields: dict[str, Any]) -> str:
    """What the preset needs, from its "Hardware:" comment line, else a guess from the model."""
    for line in description.splitlines():
        if line.lower().startswith("hardware:"):
            return line.split(":", 1)[1].strip().split(";")[0].split("(")[0].strip()
    model = str(fields.get("model_name_or_path", "assets/tiny-model"))
    return "CPU" if "tiny" in model else "GPU"


def short_hardware(need: str) -> str:
    """:func:`hardware` in a table cell's few columns: "one GPU with 40 GB or more" reads
    "GPU ≥40 GB", "CPU only" reads "CPU"."""
    text = re.sub(r"\bone (GPU|CPU)\b", r"\1", need)
    text = re.sub(r"(\d[\d.-]*\s*[GMT]B) or more", r"≥\1", text)
    return re.sub(r"\s+(with|only)\b", "", text).strip()


def dataset_label(fields: dict[str, Any]) -> str:
    ds = fields.get("dataset") or {}
    if not isinstance(ds, dict):
        return "?"
    if ds.get("task"):
        args = ds.get("task_args") or {}
        extra = " ".join(f"{k}={v}" for k, v in args.items() if k in ("digits", "ops")) if isinstance(args, dict) else ""
        return f"{ds['task']} {extra}".strip()
    return str(ds.get("name") or ds.get("path") or "?")


def model_label(fields: dict[str, Any]) -> str:
    return Path(str(fields.get("model_name_or_path", "assets/tiny-model"))).name if str(
        fields.get("model_name_or_path", "")
    ).startswith((".", "/", "assets")) else str(fields.get("model_name_or_path", "assets/tiny-model"))


def rewards_label(fields: dict[str, Any]) -> str:
    funcs = fields.get("reward_funcs") or ["accuracy"]
    return ", ".join(str(f).split(":")[-1] for f in funcs) if isinstance(funcs, list) else str(funcs)


def run_length_label(fields: dict[str, Any]) -> str:
    """How long the preset trains, from its YAML alone: its positive max_steps, else TRL's rule of
    num_train_epochs passes (3 unless set), whose steps are only known once the dataset is read.

        >>> run_length_label({"max_steps": 60})
        'max_steps = 60'
        >>> run_length_label({})
        'max_steps = -1 (3 epochs)'
        >>> run_length_label({"num_train_epochs": 0.5, "max_steps": -1})
        'max_steps = -1 (0.5 epochs)'
    """
    steps = fields.get("max_steps", -1)
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        return f"max_steps = {steps}"
    epochs = fields.get("num_train_epochs", 3.0)
    shown = f"{epochs:g}" if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) else str(epochs)
    return f"max_steps = {steps} ({shown} epochs)"


def plugin_code(fields: dict[str, Any]) -> list[str]:
    """The reward functions, tools, environments and rollout function a preset names that are
    code of its author's -- a file (``file.py:fn``) or a module (``pkg.mod:fn``, ``pkg.mod.fn``)
    -- which starting it will import and run; built-in names are not code of anyone's. Read
    from the YAML only."""
    entries: list = []
    for key in ("reward_funcs", "tools"):
        if isinstance(fields.get(key), list):
            entries += fields[key]
    if isinstance(fields.get("environments"), dict):
        entries += list(fields["environments"].values())
    entries += [fields.get("environment"), fields.get("rollout_func")]
    code = []
    for entry in entries:
        spec = entry.get("func") if isinstance(entry, dict) else entry
        if isinstance(spec, str) and any(mark in spec for mark in ":./\\"):
            code.append(spec)
    return code


CODE_MARK = "⚙"  # beside a preset's name: it runs code from files or modules it names


def display_path(path: Path) -> str:
    """Relative to the current folder when inside it, else with ~ for the home folder."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        home = str(Path.home())
        text = str(path)
        return "~" + text[len(home):] if text.startswith(home + "/") else text


def _has_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch, no GPU
        return False


PRESET_COLUMNS = ("Preset", "OK", "Hardware", "Model", "Data", "Rewards")
DROPPED_FIRST = ("Data", "Rewards", "Model", "Hardware")
"""Columns the table leaves out when it is too narrow, the first named the first left out:
the details pane shows all of them for the highlighted preset, so no cell is ever cut."""


def fitting_columns(rows: list[dict[str, Any]], width: int, padding: int = 1) -> dict[str, int]:
    """The columns of PRESET_COLUMNS that fit ``width`` cells with every cell whole, each
    with the width of its widest cell (padding not included)."""

    def cell_len(cell: Any) -> int:
        return cell.cell_len if isinstance(cell, Text) else Text(str(cell)).cell_len

    needs = {c: max([cell_len(c)] + [cell_len(r[c]) for r in rows]) for c in PRESET_COLUMNS}
    kept = [c for c in PRESET_COLUMNS if c not in DROPPED_FIRST]
    room = width - sum(needs[c] + 2 * padding for c in kept)
    for column in reversed(DROPPED_FIRST):  # the most useful first, while each fits whole
        if needs[column] + 2 * padding <= room:
            kept.append(column)
            room -= needs[column] + 2 * padding
    return {c: needs[c] for c in PRESET_COLUMNS if c in kept}


DETAIL_KEYS = (
    "num_generations",
    "per_device_train_batch_size",
    "max_completion_length",
    "learning_rate",
    "beta",
    "loss_type",
    "max_steps",
)


class LauncherScreen(Screen):
    COMMANDS = {LauncherCommands}
    BINDINGS = [
        Binding("enter", "open", "Start / open", id="launcher.open", priority=True),
        Binding("e", "edit", "Edit preset", id="launcher.edit"),
        Binding("n", "new", "New from preset", id="launcher.new"),
        Binding("r", "refresh", "Refresh", id="launcher.refresh"),
        Binding("d", "dashboard", "Live run", id="launcher.dashboard"),
        Binding("space", "mark", "Mark run", id="launcher.mark", show=False,
                tooltip="Mark or unmark the highlighted run for comparing (recent runs)"),
        Binding("c", "compare", "Compare", id="launcher.compare", show=False,
                tooltip="Compare the marked runs: metrics overlaid by step, settings that differ"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.presets: list[Any] = []
        self._preset_rows: list[dict[str, Any]] = []  # the cells of each preset, by column
        self._shown_columns: dict[str, int] | None = None
        self.runs: list[RunSummary] = []
        self.marked: list[Path] = []  # runs marked for comparing, in the order they were marked

    def compose(self) -> ComposeResult:
        yield Static(
            Content.assemble(("grpo-tui", "bold"), "  GRPO fine-tuning — pick a preset and press Enter"),
            id="launcher-title",
        )
        with Horizontal(id="launcher-top"):
            with Vertical(id="presets-col"):
                yield DataTable(id="presets", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="preset-details-scroll"):
                yield Static("", id="preset-details")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self.query_one("#presets-col").border_title = "Presets"
        self.query_one("#preset-details-scroll").border_title = "Details"
        self.query_one("#runs").border_title = "Recent runs (Enter opens · Space marks · c compares the marked)"
        presets = self.query_one("#presets", DataTable)
        runs = self.query_one("#runs", DataTable)
        runs.add_column("", width=1, key="mark")
        runs.add_columns("Run", "State", "Step", "Reward", "Eval acc")
        self.action_refresh()
        presets.focus()
        self.set_interval(RUNS_REFRESH_S, self.refresh_runs)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fill_presets)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def focus_presets(self) -> None:
        self.query_one("#presets", DataTable).focus()

    # -- data ----------------------------------------------------------------------
    def action_refresh(self) -> None:
        selected = self.selected_preset() if self.presets else None
        keep = selected.name if selected is not None else DEFAULT_PRESET  # the cursor survives a refresh
        self.presets = sorted(self.app.find_presets(), key=lambda info: info.name)
        colours = self.app.theme_variables
        self._preset_rows = []
        for info in self.presets:
            fields = preset_fields(Path(info.path))
            ok = (
                Text("…") if info.ok is None  # not checked yet: validation waits for the model libraries
                else Text("✓", style=f"bold {colours.get('success', 'green')}")
                if info.ok
                else Text("✘", style=f"bold {colours.get('error', 'red')}")
            )
            name = Text(info.name)
            if plugin_code(fields):
                name.append(f" {CODE_MARK}", style=f"bold {colours.get('warning', 'yellow')}")
            cells = (name, ok, short_hardware(hardware(info.description, fields)),
                     model_label(fields).split("/")[-1], dataset_label(fields), rewards_label(fields))
            self._preset_rows.append(dict(zip(PRESET_COLUMNS, cells)))
        self._shown_columns = None  # rebuild: the rows changed
        self._fill_presets()
        names = [info.name for info in self.presets]
        if keep in names:
            self.query_one("#presets", DataTable).move_cursor(row=names.index(keep))
        self.refresh_runs(always=True)
        self._show_details()

    def refresh_runs(self, always: bool = False) -> None:
        """Read the recent runs again; redraw their table when one changed (the cursor stays on its run)."""
        if not always and not self.is_current:  # under the dashboard: read when it shows again
            return
        runs_now = [summarize_run(p) for p in self.app.list_runs()]
        if runs_now == self.runs and not always:
            return
        selected = self.selected_run()
        self.runs = runs_now
        self.marked = [p for p in self.marked if p in {r.path for r in self.runs}]  # a deleted run is unmarked
        runs = self.query_one("#runs", DataTable)
        runs.clear()
        for r in self.runs:
            runs.add_row(
                self._mark_cell(r.path),
                r.name,
                r.state,
                f"{r.step}/{r.max_steps or '?'}",
                "—" if r.reward is None else f"{r.reward:.3f}",
                "—" if r.eval_accuracy is None else f"{r.eval_accuracy:.3f}",
                key=str(r.path),
            )
        if not self.runs:
            runs.add_row("", "no runs yet in " + str(self.app.runs_root), "", "", "", "", key="")
        paths = [r.path for r in self.runs]
        if selected is not None and selected.path in paths:
            runs.move_cursor(row=paths.index(selected.path))

    def _mark_cell(self, path: Path) -> Text:
        return Text("●", style="bold") if path in self.marked else Text(" ")

    def _fill_presets(self) -> None:
        """Fill the preset table with the columns that fit its width (again after a resize)."""
        table = self.query_one("#presets", DataTable)
        width = table.size.width or self.app.size.width * 3 // 5 - 2
        if table.size.height and len(self._preset_rows) + 1 > table.size.height:
            width -= table.styles.scrollbar_size_vertical  # rows that scroll take a scrollbar's columns
        columns = fitting_columns(self._preset_rows, width, table.cell_padding)
        if columns == self._shown_columns:
            return
        self._shown_columns = columns
        row = table.cursor_row
        table.clear(columns=True)
        for column, cells in columns.items():  # widths given: no cell is drawn before it is measured
            table.add_column(column, width=cells, key=column)
        for info, cells in zip(self.presets, self._preset_rows):
            table.add_row(*(cells[c] for c in columns), key=str(info.path))
        if self.presets:
            table.move_cursor(row=min(row, len(self.presets) - 1))

    def selected_preset(self) -> Any | None:
        table = self.query_one("#presets", DataTable)
        if not self.presets or table.cursor_row is None or table.cursor_row >= len(self.presets):
            return None
        return self.presets[table.cursor_row]

    def selected_run(self) -> RunSummary | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def _show_details(self) -> None:
        info = self.selected_preset()
        details = self.query_one("#preset-details", Static)
        if info is None:
            details.update("No presets found (./presets/, ~/.config/grpo-tui/presets/, the bundled presets/).")
            return
        fields = preset_fields(Path(info.path))
        # What the table may leave out at narrow widths comes first, the description after it.
        parts: list = [(info.name + "\n", "bold")]
        parts.append(f"model     {fields.get('model_name_or_path', 'assets/tiny-model')}\n")
        parts.append(f"data      {dataset_label(fields)}\n")
        parts.append(f"rewards   {rewards_label(fields)}")
        if fields.get("reward_weights"):
            parts.append(f"  weights {fields['reward_weights']}")
        parts.append(f"\nhardware  {hardware(info.description, fields)}\n")
        code = plugin_code(fields)
        if code:
            parts.append((f"{CODE_MARK} runs code  {', '.join(code)} (imported when the run starts, not before)\n",
                          "$warning"))
        if info.description:
            parts.append("\n" + info.description + "\n\n")
        for key in DETAIL_KEYS:
            if key == "max_steps":  # always: unset is TRL's -1, num_train_epochs passes
                parts.append((run_length_label(fields) + "\n", "$text-muted"))
            elif key in fields:
                parts.append((f"{key} = {fields[key]}\n", "$text-muted"))
        if info.ok is None:
            parts.append(("\n… being checked", "$text-muted"))
        elif info.ok:
            parts.append(("\n✓ validates", "bold $success"))
        else:
            parts.append(("\n✘ does not validate:\n", "bold $error"))
            for problem in info.problems:
                parts.append((f"  - {problem}\n", "$error"))
        parts.append((f"\n{display_path(Path(info.path))}", "$text-muted"))
        if bundled_preset_dir() / Path(info.path).name != Path(info.path) and (bundled_preset_dir() / Path(info.path).name).is_file():
            parts.append(("\n(yours: it takes the place of the bundled preset of this name;"
                          " delete it to get that one back)", "$text-muted"))
        details.update(Content.assemble(*parts))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "presets":
            self._show_details()

    # -- actions -------------------------------------------------------------------
    def action_open(self) -> None:
        if self.query_one("#runs", DataTable).has_focus:
            self._open_selected_run()
        elif self.query_one("#presets", DataTable).has_focus:
            self._start_selected()

    def _start_selected(self) -> None:
        info = self.selected_preset()
        if info is not None:
            self.start_preset(info)

    def start_preset(self, info: Any) -> None:
        """Start ``info``'s preset: one that does not validate says why; one that runs code of
        its author's (not bundled) lists that code and asks first; a GPU preset on CPU asks."""
        if info.ok is False:  # not checked yet (None): starting it validates it
            self.notify("This preset does not validate; press e to fix it:\n" + "\n".join(info.problems[:5]),
                        severity="error", timeout=8)
            return
        fields = preset_fields(Path(info.path))
        code = plugin_code(fields)
        if code and not is_bundled(info.path):
            from grpo_tui.screens.confirm import ConfirmScreen

            def start(yes: bool | None) -> None:
                if yes:
                    self._start_checked(info, fields)

            self.app.push_screen(ConfirmScreen(
                "This preset runs code", f"{info.name} runs these reward functions, importing their files or "
                f"modules:\n  " + "\n  ".join(code) + f"\nfrom {display_path(Path(info.path))}.\n"
                "Start it only if you trust them.", yes="Run the code"), start)
            return
        self._start_checked(info, fields)

    def _start_checked(self, info: Any, fields: dict[str, Any]) -> None:
        """Start a preset whose code the user has seen; on CPU, a GPU preset asks first."""
        need = hardware(info.description, fields)
        if "GPU" in need.upper() and not _has_gpu():
            from grpo_tui.screens.confirm import ConfirmScreen

            def answer(yes: bool | None) -> None:
                if yes:
                    self.app.start_run(str(info.path), self.app.overrides)

            self.app.push_screen(
                ConfirmScreen("No GPU here", f"{info.name} needs {need}.\nStart it anyway (on CPU it may be very slow)?", yes="Start"),
                answer,
            )
            return
        self.app.start_run(str(info.path), self.app.overrides)

    def _open_selected_run(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        if run.live:
            self.app.attach_run(str(run.path))  # trained by another process: follow it, with controls
            return
        if run.resumable:
            from grpo_tui.screens.confirm import resume_dialog

            def answer(choice: str | None) -> None:
                if choice == "resume":
                    self.app.start_run(None, resume_dir=str(run.path))
                elif choice == "view":
                    self.app.open_run(str(run.path))

            self.app.push_screen(resume_dialog(run), answer)
            return
        self.app.open_run(str(run.path))

    def action_edit(self) -> None:
        info = self.selected_preset()
        if info is not None:
            from grpo_tui.screens.editor import PresetEditorScreen

            self.app.push_screen(PresetEditorScreen(Path(info.path)), lambda _: self.action_refresh())

    def action_new(self) -> None:
        info = self.selected_preset()
        if info is not None:
            from grpo_tui.screens.editor import PresetEditorScreen

            self.app.push_screen(PresetEditorScreen(Path(info.path), new=True), lambda _: self.action_refresh())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mark":  # Space elsewhere (a preset row, a dialog) keeps its own meaning
            return self.query_one("#runs", DataTable).has_focus and bool(self.runs) or None
        if action == "dashboard":
            return self.app.live is not None
        if action == "open" and not isinstance(self.app.screen, LauncherScreen):
            return False
        return True

    def action_mark(self) -> None:
        """Mark the highlighted run for comparing, or unmark it, and move to the next run."""
        run = self.selected_run()
        if run is None:
            return
        if run.path in self.marked:
            self.marked.remove(run.path)
        else:
            self.marked.append(run.path)
        table = self.query_one("#runs", DataTable)
        table.update_cell(str(run.path), "mark", self._mark_cell(run.path))
        table.move_cursor(row=min(table.cursor_row + 1, len(self.runs) - 1))
        count = len(self.marked)
        self.notify(f"{count} run{'s' if count != 1 else ''} marked; " + (
            "press c to compare them" if count > 1 else "mark another with Space, then press c"), timeout=2)

    def action_compare(self) -> None:
        """Compare the marked runs (with one marked: it and the highlighted run)."""
        chosen = list(self.marked)
        run = self.selected_run()
        if len(chosen) == 1 and run is not None and run.path not in chosen:
            chosen.append(run.path)
        if len(chosen) < 2:
            self.notify("Mark two or more recent runs with Space, then press c to compare them", timeout=4)
            return
        if self.app.compare_runs([str(p) for p in chosen]):
            self.marked = []
            for path in chosen:
                if str(path) in self.query_one("#runs", DataTable).rows:
                    self.query_one("#runs", DataTable).update_cell(str(path), "mark", self._mark_cell(path))

    def action_dashboard(self) -> None:
        self.app.action_show_dashboard()
