"""The reward test bench: score a typed or pasted prompt and completion with a run's
reward functions, and see each function's score and the weighted total as you edit.

The functions are built once (off the UI thread: a plugin import or a reward model can
take seconds) with the engine's own ``build_reward_funcs``, and scored with the engine's
``score``, so the bench gives exactly what training would: ``None`` ignored, a raising
function an error row, the total a nansum of weight × score.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, Static, TextArea

from grpo_tui.widgets.footer import ResponsiveFooter

SCORE_DELAY = 0.3  # seconds after the last edit before the scores are recomputed
NOTE = "length counts characters here (no tokenizer is loaded in the TUI)"


def bench_config(run_dir: str | Path | None = None, config: dict | None = None, live: Any = None) -> Any:
    """The RunConfig of a run for the bench: the live run's own, else its config dict, else
    its config.yaml. Raises (ConfigError, OSError) with a message fit for the user."""
    from engine.config.checks import config_from_dict
    from engine.config.presets import config_from_yaml

    cfg = getattr(live, "cfg", None)
    if cfg is not None:
        return cfg
    if config:
        return config_from_dict(config, check_paths=False, source="the run's config")
    if run_dir is None:
        raise ValueError("the run has no config yet")
    path = Path(run_dir) / "config.yaml"
    return config_from_yaml(path.read_text(encoding="utf-8"), check_paths=False, source=str(path))


@dataclass
class Row:
    """One reward function's result: ``value`` is NaN for None (ignored) or an error."""

    name: str
    description: str
    weight: float
    value: float
    error: str | None = None


class RewardBenchScreen(Screen):
    """Type or paste a prompt and a completion; every reward function scores it."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="reward_bench.close", priority=True),
        Binding("ctrl+r", "rescore", "Rescore", id="reward_bench.rescore", priority=True),
    ]

    class Built(Message):
        """The reward functions are ready (``funcs``) or could not be built (``error``)."""

        def __init__(self, funcs: list | None, error: str | None) -> None:
            super().__init__()
            self.funcs = funcs
            self.error = error

    def __init__(self, cfg: Any, prompt: str = "", completion: str = "", columns: dict | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.initial_prompt = "" if prompt is None else str(prompt)
        self.initial_completion = "" if completion is None else str(completion)
        self.columns: dict[str, Any] = dict(columns or {})
        self.column_names = list(self.columns)
        if "answer" not in self.columns:
            self.column_names.insert(0, "answer")
        self.funcs: list | None = None
        self.build_error: str | None = None
        self.rows: list[Row] = []
        self.total: float | None = None
        self.score_error: str | None = None
        self._timer = None

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="bench-header")
        with Horizontal(id="bench-inputs"):
            yield TextArea(self.initial_prompt, id="bench-prompt", soft_wrap=True, tab_behavior="focus")
            yield TextArea(self.initial_completion, id="bench-completion", soft_wrap=True, tab_behavior="focus")
        with Horizontal(id="bench-columns"):
            for i, name in enumerate(self.column_names):
                value = self.columns.get(name)
                yield Label(name, classes="bench-col-label")
                yield Input("" if value is None else str(value), id=f"bench-col-{i}", compact=True, classes="bench-col")
        with VerticalScroll(id="bench-results"):
            yield Static(Content.styled("building the reward functions…", "$text-muted"), id="bench-table")
            yield Static(Content.styled(NOTE, "$text-muted italic"), id="bench-note")
        yield ResponsiveFooter()

    def on_mount(self) -> None:
        self.query_one("#bench-prompt").border_title = "Prompt"
        self.query_one("#bench-completion").border_title = "Completion"
        self.query_one("#bench-columns").border_title = "Columns the reward functions receive"
        self.query_one("#bench-results").border_title = "Scores"
        self._header()
        self.query_one("#bench-completion", TextArea).focus()
        self._build()

    def _header(self) -> None:
        specs = ", ".join(str(s) for s in getattr(self.cfg, "reward_funcs", []) or [])
        task = getattr(getattr(self.cfg, "dataset", None), "task", None)
        self.query_one("#bench-header", Static).update(
            Content.assemble(
                (" reward bench ", "bold reverse $accent"),
                f"  {specs}",
                (f"   task: {task}" if task else "", "$text-muted"),
                ("   scores update as you type", "$text-muted"),
            )
        )

    # -- building (once, off the UI thread) ----------------------------------------
    @work(thread=True, exclusive=True, group="reward-bench-build")
    def _build(self) -> None:
        try:
            funcs = build_funcs(self.cfg)
        except BaseException as err:  # noqa: BLE001 - a plugin may even call sys.exit; one line, never a traceback
            self.post_message(self.Built(None, one_line(err)))
            return
        self.post_message(self.Built(funcs, None))

    def on_reward_bench_screen_built(self, message: Built) -> None:
        self.funcs, self.build_error = message.funcs, message.error
        self.rescore()

    # -- scoring -------------------------------------------------------------------
    def inputs(self) -> tuple[str, str, dict[str, Any]]:
        """The prompt, the completion and the extra columns as typed (one value each)."""
        prompt = self.query_one("#bench-prompt", TextArea).text
        completion = self.query_one("#bench-completion", TextArea).text
        columns: dict[str, Any] = {}
        for i, name in enumerate(self.column_names):
            text = self.query_one(f"#bench-col-{i}", Input).value
            original = self.columns.get(name)
            if name not in self.columns and not text:
                continue  # a column the run does not have, left empty: not passed at all
            columns[name] = original if original is not None and str(original) == text else text
        return prompt, completion, columns

    def rescore(self) -> None:
        """Score the current inputs now and redraw the table."""
        self._timer = None
        self.rows, self.total, self.score_error = [], None, None
        if self.funcs is not None:
            prompt, completion, columns = self.inputs()
            try:
                self.rows, self.total = score_one(self.funcs, getattr(self.cfg, "reward_weights", None), prompt, completion, columns)
            except BaseException as err:  # noqa: BLE001 - e.g. reward_weights of the wrong length
                self.score_error = one_line(err)
        self._draw()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(SCORE_DELAY, self.rescore)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._schedule()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._schedule()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.rescore()

    def _draw(self) -> None:
        table = self.query_one("#bench-table", Static)
        if self.build_error is not None:
            table.update(
                Content.assemble(
                    ("✘ the reward functions could not be built\n", "bold $error"),
                    (self.build_error, "$error"),
                )
            )
            return
        if self.funcs is None:
            return
        region = self.query_one("#bench-results").scrollable_content_region
        width = (region.width or self.app.size.width - 4) - 1  # a column spare for a scrollbar
        table.update(render_rows(self.rows, self.total, self.score_error, width))

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw)

    # -- actions -------------------------------------------------------------------
    def action_rescore(self) -> None:
        self.rescore()

    def action_close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.dismiss()


# ------------------------------------------------------------------------------- helpers


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def build_funcs(cfg: Any) -> list:
    """The run's reward functions, built as the trainer builds them (task verifier included)."""
    from engine.rewards.scoring import build_reward_funcs

    dataset = getattr(cfg, "dataset", None)
    task = None
    if getattr(dataset, "task", None):
        from engine.data.tasks import get_task

        task = get_task(dataset.task, **(dataset.task_args or {}))
    return build_reward_funcs(
        cfg.reward_funcs,
        task=task,
        reward_kwargs=cfg.reward_kwargs,
        max_completion_length=cfg.max_completion_length,
    )


def score_one(funcs: list, weights: Any, prompt: str, completion: str,
              columns: dict[str, Any]) -> tuple[list[Row], float | None]:
    """Every function's score for one completion, and the weighted total (nansum, as the
    engine); None when no function gave a score (all failed or n/a): missing, not 0."""
    from engine.rewards.scoring import describe, score

    batch = score(
        funcs,
        weights,
        [prompt],
        [completion],
        {name: [value] for name, value in columns.items()},
        [list(range(len(completion)))],  # no tokenizer here: one id per character
        0,
    )
    errors = dict(batch.errors)
    ws = [1.0] * len(funcs) if weights is None else [float(w) for w in weights]
    rows = []
    for j, func in enumerate(funcs):
        try:
            description = describe(func)
        except Exception:  # noqa: BLE001 - a description is a nicety
            description = func.name
        rows.append(Row(func.name, description, ws[j], float(batch.per_func[0, j]), errors.get(func.name)))
    if all(math.isnan(row.value) for row in rows):
        return rows, None
    return rows, float(batch.total[0])


def fmt_score(value: float) -> str:
    if math.isnan(value):
        return "n/a (ignored)"
    return str(round(value, 4))


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns with an ellipsis."""
    width = max(width, 8)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_rows(rows: list[Row], total: float | None, error: str | None, width: int = 100) -> Content:
    """The results as an aligned table: descriptions cut to one line, errors wrapped under their row."""
    if error is not None:
        return Content.assemble(("✘ could not score: ", "bold $error"), (error, "$error"))
    name_w = min(max([len("reward")] + [len(r.name) for r in rows]), 24)
    about_at = name_w + 26  # where the last column starts
    about_w = width - about_at
    head = f" {'reward':<{name_w}}  {'weight':>6}  {'score':<13}  about"
    lines = [Content.styled(head, "bold")]
    for row in rows:
        prefix = f" {fit(row.name, name_w):<{name_w}}  {row.weight:>6.3g}  "
        about = (fit(row.description, about_w), "$text-muted")
        if row.error is not None:
            lines.append(Content.assemble(prefix, (f"{'error':<13}", "bold $error"), "  ", about))
            indent = name_w + 11
            for part in textwrap.wrap("✘ " + row.error, max(width - indent, 20), max_lines=3, placeholder=" …"):
                lines.append(Content.assemble(" " * indent, (part, "$error")))
        else:
            style = "$text-muted" if math.isnan(row.value) else "bold"
            lines.append(Content.assemble(prefix, (f"{fmt_score(row.value):<13}", style), "  ", about))
    lines.append(Content.styled(" " + "─" * (name_w + 23), "$text-muted"))
    total_text = "—" if total is None else fmt_score(total)
    lines.append(
        Content.assemble(
            (f" {'total':<{name_w}}  {'':>6}  ", "bold"),
            (f"{total_text:<13}", "bold $accent"),
            ("  " + fit("weighted sum; n/a and errors are skipped", about_w), "$text-muted"),
        )
    )
    return Content("\n").join(lines)
