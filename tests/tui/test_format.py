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


def _progress(step: int, at: float, started: float = 1000.0, **fields):
    from engine.run.progress import Progress

    return Progress(step=step, phase="generate", done=380, total=1024, unit="tokens", detail="412 tok/s",
                    phase_started=started, step_started=started, time=at, **fields)


def test_headless_log_gets_a_phase_line_only_during_long_steps():
    import io

    from engine.run.events import StepMetrics
    from grpo_tui.cli.headless import PHASE_EVERY_S, HeadlessPrinter

    out = io.StringIO()
    printer = HeadlessPrinter(out)
    printer(StepMetrics(step=1, metrics={"reward": 0.5}, time=1000.0))
    for t in range(1, 100):  # a 100-second step, progress every second
        printer(_progress(2, 1000.0 + t))
    phase_lines = [line for line in out.getvalue().splitlines() if "generating" in line]
    assert len(phase_lines) == int(99 // PHASE_EVERY_S)
    assert phase_lines[0] == "  step 2 · generating 37% · token 380/1024 · 412 tok/s"


def test_headless_terminal_shows_the_phase_after_the_step_line():
    import io

    from engine.run.events import StepMetrics
    from grpo_tui.cli.headless import HeadlessPrinter

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    printer = HeadlessPrinter(out)
    printer(StepMetrics(step=1, metrics={"reward": 0.5}, time=1000.0))
    printer(_progress(2, 1001.0))
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("step 1/0 reward 0.500 ETA — │ generating 37% · token 380/1024")
