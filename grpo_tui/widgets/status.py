"""The dashboard's header: what run this is and where it stands.

Time comes from a clock the app owns (``App.clock``), so tests can freeze it; a
finished or read-only run shows the elapsed time recorded in its files instead.
"""

from __future__ import annotations

import math
from typing import Callable

from textual.content import Content
from textual.widgets import Static

from engine.run.channel import CRASHED
from engine.run.events import RunState

from grpo_tui.model.format import bar, format_duration
from grpo_tui.model.phase import phase_view
from grpo_tui.model.run_model import RunModel

STATE_STYLE = {
    RunState.STARTING: ("◌", "$text-muted"),
    RunState.RUNNING: ("▶", "$success"),
    RunState.PAUSED: ("⏸", "$warning"),
    RunState.CHECKPOINTING: ("⛁", "$accent"),
    RunState.STOPPING: ("■", "$warning"),
    RunState.FINISHED: ("✔", "$success"),
    RunState.STOPPED: ("■", "$warning"),
    RunState.ABANDONED: ("✗", "$warning"),
    RunState.FAILED: ("✘", "$error"),
    CRASHED: ("✘", "$error"),
}


class RunStatus(Static):
    """Run name, model, device, step / total, elapsed, ETA, completions/s and state."""

    DEFAULT_CSS = """
    RunStatus { height: 2; padding: 0 1; background: $panel; }
    """

    def __init__(self, model: RunModel, clock: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.clock = clock
        self._key: tuple | None = None
        self._lines = 2
        self.system = None  # grpo_tui.model.system.SystemSnapshot while a process trains this run

    def update_from(self, model: RunModel) -> None:
        self.model = model
        elapsed = model.elapsed(self.clock())
        where, share = self.system.pressure() if self.system is not None else (None, 0.0)
        key = (model.version, None if elapsed is None else int(elapsed), self.size.width, where, round(share, 2),
               None if model.is_terminal else int(self.clock()))  # a live run's phase time ticks
        if key != self._key:
            self._key = key
            content = self.render_text(elapsed)
            lines = content.plain.count("\n") + 1
            if lines != self._lines:
                # A fixed height, changed only when the line count does, spares a
                # full-screen layout on every update.
                self._lines = lines
                self.styles.height = lines
            self.update(content, layout=False)

    def _progress_parts(self, elapsed: float | None, narrow: bool, bar_width: int) -> list:
        """Step, bar, elapsed, ETA, throughput, reward, eval accuracy and the fullest memory."""
        m = self.model
        parts: list[tuple[str, str] | str] = [(f"step {m.step}/{m.total_steps or '?'} ", "bold")]
        if bar_width >= 5:
            parts.append((bar(m.step, m.total_steps, bar_width) + " ", "$accent"))
        parts.append(f" {'' if narrow else 'elapsed '}{format_duration(elapsed)}")
        if not m.is_terminal and not m.read_only:
            parts.append(f"  ETA {format_duration(m.eta())}")
        cps = m.completions_per_s()
        if cps is not None:
            parts.append(f"  {cps:.0f}{'/s' if narrow else ' compl/s'}")
        reward = m.metric("reward")
        if reward is not None:  # NaN: the last step's reward functions failed
            parts.append(f"  {'R' if narrow else 'reward'} {_num(reward, '.3f')}")
        acc = m.metric("eval/accuracy")
        if acc is not None:
            parts.append(f"  {'eval' if narrow else 'eval acc'} {_num(acc, '.2f')}")
        if self.system is not None:
            from grpo_tui.widgets.system import status_segment

            text, style = status_segment(self.system, short=narrow)
            parts.append(("  " + text, style))
        return parts

    def _phase_parts(self, width: int) -> list:
        """The third line while the run is live: the phase of the step under way with its bar
        and figures, what waits for the step's end, or what the run is doing instead."""
        view = phase_view(self.model, self.clock())
        if view is None:
            return []
        pct = f"{view.fraction * 100:.0f}%" if view.fraction is not None else ""
        if view.waiting:
            where = " ".join(p for p in (view.label, pct) if p)
            head = [(f"{view.waiting} ", "bold $warning"), (f"({where})", "$warning")]
        else:
            label = view.label
            if len(label) > width and " — " in label:  # a fault's pause: the advice on a line of its own
                label = "\n".join(_cut(part, width) for part in label.split(" — ", 1))
            head = [(_cut(label, width), "bold $warning" if self.model.state == RunState.PAUSED else "bold")]
            if view.fraction is not None:
                cells = max(0, min(20, width - 60))
                if cells >= 5:
                    head.append((" " + bar(view.fraction, 1.0, cells), "$accent"))
                head.append(f" {pct}")
        elapsed = format_duration(view.elapsed_s) if view.elapsed_s is not None else ""
        tail = [t for t in (elapsed, view.counts, view.detail) if t]  # the time first: never cut
        text = "  " + " · ".join(tail) if tail else ""
        room = width - _length(head)
        if len(text) > room:
            text = text[: max(0, room - 1)] + "…" if room > 4 else ""
        return [*head, (text, "$text-muted")]

    def render_text(self, elapsed: float | None) -> Content:
        m = self.model
        icon, colour = STATE_STYLE.get(m.state, ("?", "$text-muted"))
        state = m.state.upper() + (" (read-only)" if m.read_only and not m.is_terminal else "")
        width = max(40, self.size.width - 2)
        parts: list[tuple[str, str] | str] = [
            (f" {icon} {state} ", f"bold reverse {colour}"),
            (f"  {m.name or 'run'}", "bold"),
            ("  " + "  ".join(d for d in (m.model_name, m.device) if d), "$text-muted"),
            "\n",
        ]
        # the longest form of the progress line that fits: labels and bar, then short labels, then no bar
        bar_width = max(0, min(30, width - 75))
        for narrow, cells in ((width < 100, bar_width), (True, bar_width), (True, 0)):
            line = self._progress_parts(elapsed, narrow, cells)
            if _length(line) <= width:
                break
        parts.extend(line)
        phase = self._phase_parts(width)
        if phase:
            parts.append("\n")
            parts.extend(phase)
        if m.state == RunState.FAILED and m.error:
            where = m.traceback_path or m.run_dir
            parts.append("\n")
            first = m.error.strip().splitlines()[0] if m.error.strip() else "failed"
            parts.append((f"error: {first[: max(20, width - 10)]}", "bold $error"))
            if where:
                parts.append((f"\nlogs: {where}  (full message in the events pane)", "$error"))
        elif m.state == RunState.FINISHED and m.summary:
            parts.append("\n")
            parts.append((summary_line(m.summary, width), "$success"))
        elif note := m.end_note():  # stopped, abandoned, crashed: how it ended and how to go on
            parts.append("\n")
            if len(note) > width:  # the hint on a line of its own rather than cut
                note = note.replace(" — ", "\n", 1)
            parts.append((note, f"bold {colour}" if m.state == CRASHED else colour))
        return Content.assemble(*parts)


def _num(value: float, spec: str) -> str:
    """``value`` formatted, or ``—`` when it is missing (NaN)."""
    return format(value, spec) if math.isfinite(value) else "—"


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells per line, cut with an ellipsis."""
    return "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in text.split("\n"))


def _length(parts) -> int:
    """Characters in a list of Content.assemble parts."""
    return sum(len(p if isinstance(p, str) else p[0]) for p in parts)


def summary_line(summary: dict, width: int | None = None) -> str:
    """RunFinished's summary (accuracy before/after, final model path) in one line, or — when
    that is wider than ``width`` — with the final model's path on a line of its own, relative
    to the current folder where it is inside it, its start elided if it still does not fit
    (the end of a path is the part that tells runs apart)."""
    parts = []
    before = summary.get("accuracy_before", summary.get("eval_accuracy_before"))
    after = summary.get("accuracy_after", summary.get("eval_accuracy_after"))
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        parts.append(f"eval accuracy {before:.3f} → {after:.3f}")
    final = summary.get("final_model") or summary.get("final_model_path") or summary.get("final_path")
    if final:
        parts.append(f"final model: {_relative(str(final))}")
    if not parts:
        parts = [f"{k}: {v}" for k, v in list(summary.items())[:4] if not isinstance(v, (dict, list))]
    ended = "stopped after a fault" if summary.get("fault") else "finished"  # not a clean end
    line = f"{ended} — " + "; ".join(parts)
    if width is None or len(line) <= width or not final:
        return line
    path = parts.pop()
    if len(path) > width:
        path = "final model: …" + path[len(path) - width + len("final model: …"):]
    return f"{ended} — " + "; ".join(parts) + "\n" + path if parts else f"{ended}\n{path}"


def _relative(path: str) -> str:
    """``path`` relative to the current folder when it lies inside it."""
    import os

    try:
        if os.path.isabs(path) and os.path.commonpath([path, os.getcwd()]) == os.getcwd():
            return os.path.relpath(path)
    except (OSError, ValueError):
        pass
    return path
