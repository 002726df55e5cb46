"""A TextArea with YAML highlighting that needs no tree-sitter grammar.

Presets are flat, simple YAML: keys, scalars, flow lists and comments. A line-by-line
regex highlighter covers them and keeps the editor working on installs without the
optional syntax packages. Highlight names are the TextArea theme's, so the editor
follows the app theme.

Lines with a validation problem are marked where the eye already is: the text of the line is
underlined on an error-tinted background, and its line number carries a ``✘``.
"""

from __future__ import annotations

import re
from typing import Iterable

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Offset
from textual.strip import Strip
from textual.widgets import TextArea
from textual.widgets.text_area import TextAreaTheme

KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w./-]*)(\s*:)(?=\s|$)")
COMMENT = re.compile(r"(^|\s)#.*$")
STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)(?![\w.])")
BOOL = re.compile(r"(?<![\w.])(?:true|false|null|True|False|None|~)(?![\w.])")


def _byte(line: str, col: int) -> int:
    return len(line[:col].encode("utf-8"))


def yaml_highlights(line: str) -> list[tuple[int, int, str]]:
    """(start byte, end byte, highlight name) for one line of YAML."""
    out: list[tuple[int, int, str]] = []
    comment = COMMENT.search(line)
    code_end = len(line)
    if comment:
        # A '#' inside a quoted string is not a comment.
        start = comment.start() + len(comment.group(1))
        if not any(m.start() < start < m.end() for m in STRING.finditer(line)):
            code_end = start
            out.append((_byte(line, start), _byte(line, len(line)), "comment"))
    code = line[:code_end]
    key = KEY.match(code)
    rest_from = 0
    if key:
        out.append((_byte(line, key.start(2)), _byte(line, key.end(2)), "yaml.field"))
        rest_from = key.end()
    strings = list(STRING.finditer(code, rest_from))
    for m in strings:
        out.append((_byte(line, m.start()), _byte(line, m.end()), "string"))

    def outside(m: re.Match) -> bool:
        return not any(s.start() <= m.start() < s.end() for s in strings)

    for pattern, name in ((NUMBER, "number"), (BOOL, "boolean")):
        for m in pattern.finditer(code, rest_from):
            if outside(m):
                out.append((_byte(line, m.start()), _byte(line, m.end()), name))
    return out


ERROR = "yaml.error"  # the highlight name of a line with a problem
THEME = "grpo-yaml"  # the css theme plus the ERROR style, which comes from the app theme


class YamlTextArea(TextArea):
    """TextArea that highlights YAML with :func:`yaml_highlights` and marks error lines."""

    COMPONENT_CLASSES = {"yaml-area--error", "yaml-area--error-gutter"}
    DEFAULT_CSS = """
    YamlTextArea > .yaml-area--error { background: $error 25%; text-style: underline; }
    YamlTextArea > .yaml-area--error-gutter { color: $error; text-style: bold; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.error_lines: frozenset[int] = frozenset()
        """0-based lines marked as holding a problem (set with :meth:`mark_errors`)."""

    def on_mount(self) -> None:
        self._use_error_theme()
        self.watch(self.app, "theme", self._use_error_theme, init=False)

    def _use_error_theme(self) -> None:
        """(Re)register the theme whose ERROR style is the app theme's error colour."""
        css = TextAreaTheme.get_builtin_theme("css")
        styles = dict(css.syntax_styles) if css else {}
        component = self.get_component_styles("yaml-area--error")
        tint = self.background_colors[1] + component.background  # the tint over this widget's background
        styles[ERROR] = Style(bgcolor=tint.rich_color, underline=bool(component.text_style.underline))
        self.register_theme(TextAreaTheme(THEME, syntax_styles=styles))
        self.theme = THEME

    def mark_errors(self, lines: Iterable[int]) -> None:
        """Mark these 0-based lines as holding a problem (and unmark all others)."""
        lines = frozenset(i for i in lines if 0 <= i < self.document.line_count)
        if lines != self.error_lines:
            self.error_lines = lines
            self._build_highlight_map()
            self.refresh()

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        errors = getattr(self, "error_lines", frozenset())
        for index, line in enumerate(self.document.lines):
            spans = yaml_highlights(line)
            if index in errors:
                indent = len(line) - len(line.lstrip())
                spans.append((_byte(line, indent), _byte(line, len(line)), ERROR))
            if spans:
                highlights[index].extend(spans)

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if not self.error_lines or not self.show_line_numbers:
            return strip
        row = y + self.scroll_offset.y
        line, column = self.wrapped_document.offset_to_location(Offset(0, row))
        if line not in self.error_lines or column != 0 or row >= self.wrapped_document.height:
            return strip
        width = self.gutter_width  # "<number>  ": the ✘ goes in the first of the two spaces
        style = self.get_component_rich_style("yaml-area--error-gutter", partial=True)
        base = next((s.style for s in strip.crop(width - 2, width - 1) if s.style), None) or Style()
        marker = Strip([Segment("✘", base + style)], 1)
        return Strip.join([strip.crop(0, width - 2), marker, strip.crop(width - 1, strip.cell_length)])
