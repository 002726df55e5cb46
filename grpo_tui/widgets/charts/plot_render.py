"""A built plotext figure as Rich segments, without the ANSI round trip.

plotext draws into a matrix of characters with a (foreground, style, background) per cell,
then writes it out as an ANSI string that ``Text.from_ansi`` parses back. For a chart that
fills half of a 200×60 terminal those two conversions cost more than the drawing. Here each
run of equal colours in a row becomes one :class:`~rich.segment.Segment`, its Style parsed
once per colour triple from plotext's own ANSI codes, so the colours are exactly the same.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text

_STYLES: dict[str, Style] = {}


def _style(colours: list) -> Style:
    key = repr(colours)
    style = _STYLES.get(key)
    if style is None:
        from plotext import _utility as ut

        text = Text.from_ansi(ut.colors_to_ansi(*colours) + "x" + ut.ansi_end)
        spans = [span.style for span in text.spans if isinstance(span.style, Style)]
        style = _STYLES[key] = Style.combine(spans) if spans else Style()
    return style


def colour_style(colour: str) -> Style:
    """The Rich style of text in a plotext colour (``"orange+"``): the chart's header
    names each series in the colour of its line."""
    return _style([colour, "default", "default"])


class PlotLines:
    """Rows of segments (top row first), a renderable of exactly the figure's size."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console, options):
        new_line = Segment.line()
        for line in self.lines:
            yield from line
            yield new_line


def matrix_lines(matrix) -> PlotLines:
    """Segments from a plotext ``matrix_class`` (its rows are stored bottom first)."""
    lines = []
    for row in range(matrix.rows - 1, -1, -1):
        markers, fg, st, bg = matrix.marker[row], matrix.fullground[row], matrix.style[row], matrix.background[row]
        segments, start = [], 0
        for col in range(1, matrix.cols + 1):
            if col == matrix.cols or fg[col] != fg[start] or st[col] != st[start] or bg[col] != bg[start]:
                segments.append(Segment("".join(markers[start:col]), _style([fg[start], st[start], bg[start]])))
                start = col
        lines.append(segments)
    return PlotLines(lines)


def render_figure(figure, x_label: str = ""):
    """The figure drawn as :class:`PlotLines`; through plotext's ANSI text when its internals
    are not the ones this module knows. ``x_label`` goes at the left of the x tick labels'
    row, below the y labels, where it costs no row (left out when a tick label is there)."""
    try:
        figure._set_sizes()
        figure._build_matrix()
        matrix = figure.monitor.matrix
        rows, cols = matrix.rows, matrix.cols
        if len(matrix.marker) != rows or any(len(r) != cols for r in matrix.marker):
            raise AttributeError("unexpected plotext matrix")
    except AttributeError:
        return Text.from_ansi(figure.build())
    bottom = matrix.marker[0] if rows else []
    if x_label and len(bottom) > len(x_label) and not "".join(bottom[: len(x_label) + 1]).strip():
        bottom[: len(x_label)] = list(x_label)
    return matrix_lines(matrix)
