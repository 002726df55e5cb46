"""A scrolling pane whose text changes often, without a screen layout on every change."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static


class FixedHeightBody(VerticalScroll):
    """A VerticalScroll around one Static. ``show(content)`` sets the Static's height to the
    content's line count and repaints it; only a change of line count costs a layout of the
    screen (tens of milliseconds on a large terminal), so a pane redrawn every second with the
    same number of lines repaints in place."""

    DEFAULT_CSS = "FixedHeightBody > Static { width: 1fr; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._body = Static("")
        self._lines = -1

    def compose(self):
        yield self._body

    def show(self, content: Content, width: int) -> None:
        lines = max(1, len(content.wrap(max(1, width))))
        if lines != self._lines:
            self._lines = lines
            self._body.styles.height = lines  # the one change that needs a layout
        self._body.update(content, layout=False)
