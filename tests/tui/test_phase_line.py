"""The header's phase line: what a step is doing while it runs, what waits for its end, and
that keys are answered while the engine is busy in the middle of a step."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from conftest import write
from engine.run.events import RunState
from grpo_tui.model.follow import open_run_dir
from grpo_tui.model.phase import phase_view
from grpo_tui.model.run_model import RunModel

NOW = 2_000_000_000.0


def _model(progress: dict | None, state: str = RunState.RUNNING.value, step: int = 1) -> RunModel:
    model = RunModel()
    model.set_run_info(run_dir="/tmp/x", config={"max_steps": 10}, total_steps=10)
    if step:
        model.add_metrics({"step": step, "time": NOW - 100, "reward": 0.5, "step_time": 30.0})
    model.set_state(state)
    model.set_progress(progress)
    return model


def _progress(**fields) -> dict:
    return {"step": 2, "phase": "generate", "done": 37, "total": 100, "unit": "tokens", "detail": "5/16 finished",
            "phase_started": NOW - 12, "step_started": NOW - 12, "eta_s": None, "pending": [], **fields}


def test_a_generating_step_shows_its_phase_fraction_and_figures():
    view = phase_view(_model(_progress()), NOW)
    assert view.label == "step 2 · generating" and view.fraction == 0.37
    assert view.counts == "token 37/100" and view.detail == "5/16 finished" and view.elapsed_s == 12
    assert view.waiting == ""


def test_a_pause_asked_for_shows_until_it_takes_effect():
    model = _model(_progress())
    model.requested.add("pause")
    assert phase_view(model, NOW).waiting == "pausing after this step"
    model.set_state(RunState.PAUSED.value, "paused at step 2")
    assert phase_view(model, NOW).label == "paused at step 2" and not model.requested
    # another viewer's request, reported by the engine
    engine_says = _model(_progress(pending=["stop"]))
    assert phase_view(engine_says, NOW).waiting == "stopping after this step"


def test_between_steps_and_after_the_end():
    stale = _model(_progress(step=1), step=1)  # the step's metrics are in: its progress is over
    assert phase_view(stale, NOW).label == "step 1 done" and phase_view(stale, NOW).fraction is None
    assert phase_view(_model(_progress(), state=RunState.FINISHED.value), NOW) is None


def test_the_first_steps_eta_comes_from_the_phase_rates():
    model = _model(_progress(step=1, eta_s=840.0), step=0)
    assert model.eta() == 840.0
    assert phase_view(model, NOW).label == "step 1 · generating"


@pytest.mark.parametrize("width", [80, 160])
def test_the_header_draws_the_phase_line_within_the_width(width):
    asyncio.run(_header(width))


async def _header(width: int) -> None:
    from textual.app import App

    from grpo_tui.widgets.status import RunStatus

    model = _model(_progress(detail="13/32 finished · 347 tok/s"))
    model.requested.add("pause")

    class Header(App):
        def compose(self):
            yield RunStatus(model, clock=lambda: NOW, id="status")

    app = Header()
    async with app.run_test(size=(width, 10)) as pilot:
        await pilot.pause()
        lines = app.query_one("#status").render_text(100.0).plain.splitlines()
    assert lines[2].startswith("pausing after this step (step 2 · generating 37%)  0:12 · token 37/100")
    assert all(len(line) <= width - 2 for line in lines)


# ---------------------------------------------------------------- live, mid-step


GATE = '''
import os, time
def gate(prompts, completions, **kwargs):
    """Holds the step in its scoring phase until the test lets it go."""
    open({started!r}, "w").close()
    while not os.path.exists({release!r}):
        time.sleep(0.02)
    return [0.0] * len(completions)
'''


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_keys_are_answered_and_the_phase_shown_while_a_step_is_busy(tmp_path: Path) -> None:
    asyncio.run(_busy_step(tmp_path))


async def _busy_step(tmp_path: Path) -> None:
    from grpo_tui.app import GrpoApp

    started, release = tmp_path / "started", tmp_path / "release"
    plugin = write(tmp_path / "gate.py", GATE.format(started=str(started), release=str(release)))
    run_dir = tmp_path / "run"
    app = GrpoApp(preset="tiny-arithmetic", overrides=[
        "per_device_train_batch_size=16", "eval_max_samples=8", "max_steps=3", f"output_dir={run_dir}",
        f"reward_funcs=[accuracy, '{plugin}:gate']"])
    async with app.run_test(size=(100, 30)) as pilot:
        model = app.live_model
        deadline = time.monotonic() + 120
        while not started.exists():
            assert time.monotonic() < deadline, "the first step never reached its reward functions"
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        status = app.screen.query_one("#status")
        assert "step 1 · scoring" in status.render_text(1.0).plain
        # a viewer in another process reads the same phase from progress.json
        other, _ = open_run_dir(run_dir)
        assert phase_view(other, time.time()).label == "step 1 · scoring"

        await pilot.press("p")  # answered while the engine is in the middle of the step
        third = status.render_text(1.0).plain.splitlines()[2]
        assert third.startswith("pausing after this step (step 1 · scoring"), third
        assert model.state == RunState.RUNNING

        release.touch()
        deadline = time.monotonic() + 120
        while model.state != RunState.PAUSED:
            assert time.monotonic() < deadline, "the pause never took effect"
            await pilot.pause(0.05)
        assert model.step == 1
        assert status.render_text(1.0).plain.splitlines()[2].startswith("paused at step 1")
        app.live.control.stop()
    app.live.thread.join(timeout=60)
