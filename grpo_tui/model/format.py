"""Plain text that every view of a run shares: durations and bars.

The dashboard's status line and system pane and the headless progress line on stdout all
use these, so a time or a fraction reads the same wherever it is shown. No Textual here:
headless training imports it without loading the TUI.
"""

from __future__ import annotations

import math

UNKNOWN_DURATION = "—"


def format_duration(seconds: float | None) -> str:
    """``m:ss`` under an hour and ``h:mm:ss`` from an hour on, to the nearest second;
    ``—`` when not known (None, NaN, infinite or negative).

    0 → ``0:00``, 59 → ``0:59``, 192 → ``3:12``, 3600 → ``1:00:00``, 90061 → ``25:01:01``.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return UNKNOWN_DURATION
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def bar(done: float, total: float, width: int, *, glyphs: str = "█░", nearest: bool = False) -> str:
    """``width`` cells, the first ``width·done/total`` of them filled (``glyphs``: filled, empty).

    A progress bar counts whole cells reached, so it is full only at the end:
    ``bar(2, 3, 10) == "██████░░░░"``. ``nearest=True`` rounds to the nearest cell instead,
    for a gauge such as memory use: ``bar(2, 3, 10, nearest=True) == "███████░░░"``.
    The fill is clamped to the bar; empty text when ``total`` or ``width`` is not positive.
    """
    if total <= 0 or width <= 0:
        return ""
    cells = width * done / total
    filled = max(0, min(width, round(cells) if nearest else int(cells)))
    return glyphs[0] * filled + glyphs[1] * (width - filled)
