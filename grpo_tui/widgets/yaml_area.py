"""A TextArea with YAML highlighting that needs no tree-sitter grammar.

Presets are flat, simple YAML: keys, scalars, flow lists and comments. A line-by-line
regex highlighter covers them and keeps the editor working on installs without the
optional syntax packages. Highlight names are the TextArea theme's, so the editor
follows the app theme.
"""

from __future__ import annotations

import re

from textual.widgets import TextArea

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


class YamlTextArea(TextArea):
    """TextArea that highlights YAML with :func:`yaml_highlights`."""

    def _build_highlight_map(self) -> None:
        self._line_cache.clear()
        highlights = self._highlights
        highlights.clear()
        for index, line in enumerate(self.document.lines):
            spans = yaml_highlights(line)
            if spans:
                highlights[index].extend(spans)
