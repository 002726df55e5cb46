"""Durations and bars read the same in the status line, the system pane and headless stdout."""

from __future__ import annotations

import math

import pytest

from grpo_tui.cli.headless import progress_line
from grpo_tui.model.format import bar, format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (59, "0:59"), (59.6, "1:00"), (192, "3:12"), (3599, "59:59"), (3600, "1:00:00"),
     (90061, "25:01:01"), (None, "—"), (math.nan, "—"), (math.inf, "—"), (-1, "—")],
)
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_progress_bars_fill_whole_cells_and_gauges_the_nearest():
    assert bar(2, 3, 10) == "██████░░░░"  # 6.67 cells reached: full only at the end
    assert bar(3, 3, 10) == "█" * 10 and bar(0, 3, 4) == "░░░░"
    assert bar(2, 3, 10, nearest=True) == "███████░░░"
    assert bar(5, 3, 4) == "████" and bar(-1, 3, 4) == "░░░░"  # clamped to the bar
    assert bar(1, 0, 10) == "" and bar(1, 2, 0) == ""
    assert bar(1, 2, 6, glyphs="━─") == "━━━───"


def test_headless_line_uses_the_shared_duration_and_bar():
    line = progress_line(12, 24, {"reward": 0.5, "eta_s": 192.0})
    assert line.startswith("step 12/24 " + "━" * 12 + "─" * 12 + "  50%")
    assert line.endswith("ETA 3:12")
    assert progress_line(0, 24, {}).endswith("ETA —")
