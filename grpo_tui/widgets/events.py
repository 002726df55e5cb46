"""The events pane: adjustments, checkpoints, warnings, errors and health alarms.

Health alarms carry a suggestion (in ``data``) shown on the line below the diagnosis.
"""

from __future__ import annotations

import re
import textwrap

from textual.content import Content

from grpo_tui.model.run_model import EventLine, RunModel
from grpo_tui.widgets.fixed_body import FixedHeightBody

ICONS = {"info": "·", "warning": "⚠", "error": "✘"}
MAX_LINES = 300


def event_style(line: EventLine) -> str:
    if line.level == "error":
        return "$error"
    if line.level == "warning":
        return "$warning"
    if line.kind in ("adjust", "checkpoint"):
        return "$accent"
    if line.kind in ("summary", "eval"):
        return "$success"
    return ""


INDENT = 19  # step (5) + space + icon + space + kind (10) + space


AFTER_SLASH = re.compile(r"(?<=/)(?=[^/])")


class _Wrapper(textwrap.TextWrapper):
    """Wraps on word boundaries, and inside a path after a ``/`` or a word's hyphen (a run
    directory's path is longer than the pane): a word is cut only when no such break fits."""

    def _split(self, text: str) -> list[str]:
        return [piece for chunk in super()._split(text) for piece in AFTER_SLASH.split(chunk) if piece]


def hang(text: str, width: int) -> str:
    """Wrap to ``width`` with continuation lines indented under the message column."""
    room = max(20, width - INDENT)
    wrapper = _Wrapper(room, break_long_words=True, break_on_hyphens=True)
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(wrapper.wrap(paragraph) or [""])
    return ("\n" + " " * INDENT).join(lines)


def render_event(line: EventLine, width: int = 200) -> Content:
    style = event_style(line)
    step = f"{line.step:>5}" if line.step is not None else "    ·"
    parts: list[tuple[str, str] | str] = [
        (step + " ", "$text-muted"),
        (f"{ICONS.get(line.level, '·')} {line.kind:<10} ", f"bold {style}".strip()),
        (hang(line.message, width), style),
    ]
    suggestion = line.data.get("suggestion") if isinstance(line.data, dict) else None
    if suggestion:
        parts.append(("\n" + " " * INDENT + hang("→ " + str(suggestion), width), "italic $text-muted"))
    return Content.assemble(*parts)


def render_events(lines: list[EventLine], width: int = 200) -> Content:
    if not lines:
        return Content.styled("no events yet", "$text-muted")
    return Content("\n").join(render_event(line, width) for line in lines[-MAX_LINES:])


class EventsPane(FixedHeightBody, can_focus=True):
    """The newest events at the bottom; follows new events unless scrolled up (anchored)."""

    DEFAULT_CSS = """
    EventsPane { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown = -1

    def on_mount(self) -> None:
        self.anchor()  # stay at the newest event until the user scrolls up

    def update_from(self, model: RunModel) -> None:
        key = (model.events_total, self.size.width)
        if key == self._shown or self.size.width == 0:
            return
        self._shown = key
        self.show(render_events(list(model.events), self.size.width - 2), self.size.width - 2)
