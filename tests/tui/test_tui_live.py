"""The dashboard driving the real engine on the bundled tiny model (Pilot tests).

Each test starts one real run: small batches and few eval prompts keep a step well
under a second on CPU. Waits are bounded polls on the run model and the run directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import wait_for

from engine.run.rundir import read_jsonl
from grpo_tui.app import GrpoApp
from grpo_tui.screens.adjust import AdjustScreen
from grpo_tui.screens.confirm import ChoiceScreen
from grpo_tui.screens.dashboard import DashboardScreen
from grpo_tui.screens.inspector import InspectorScreen

pytestmark = pytest.mark.timeout(240)

FAST = ["per_device_train_batch_size=16", "eval_max_samples=8", "log_completions_groups=2"]



def metric_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("reward") is not None]


def test_controls_drive_the_engine(tmp_path: Path) -> None:
    asyncio.run(_controls_drive_the_engine(tmp_path))


async def _controls_drive_the_engine(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    app = GrpoApp(preset="tiny-arithmetic", overrides=[*FAST, "max_steps=5000", f"output_dir={run_dir}"])
    async with app.run_test(size=(120, 40)) as pilot:
        model = app.live_model
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: model.step >= 2, "two steps")

        # pause: the step counter stops; resume: it moves again
        await pilot.press("p")
        await wait_for(pilot, lambda: model.state == "paused", "paused state")
        paused_at = model.step
        await asyncio.sleep(1.5)
        await pilot.pause()
        assert model.step == paused_at and max(metric_steps(run_dir)) == paused_at
        await pilot.press("p")
        await wait_for(pilot, lambda: model.step >= paused_at + 2, "steps after resume")

        # adjust: the next step's learning_rate metric is the new value
        await pilot.press("a")
        assert isinstance(app.screen, AdjustScreen)
        app.screen.query_one("#in-learning_rate").value = "2e-4"
        await pilot.press("enter")
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: any(e.kind == "adjust" for e in model.events), "adjust event")
        adjusted_at = next(e.step for e in model.events if e.kind == "adjust")
        await wait_for(pilot, lambda: model.step > adjusted_at, "a step after the adjustment")
        lr = model.series["learning_rate"]
        assert lr.values[lr.steps.index(adjusted_at + 1)] == pytest.approx(2e-4)
        assert lr.values[lr.steps.index(adjusted_at)] == pytest.approx(5e-5)

        # checkpoint now: a complete checkpoint directory appears
        await pilot.press("c")
        await wait_for(pilot, lambda: any(e.kind == "checkpoint" for e in model.events), "checkpoint event")
        ckpts = list((run_dir / "checkpoints").glob("step-*"))
        assert len(ckpts) == 1
        assert (ckpts[0] / "model.safetensors").exists() and (ckpts[0] / "config.json").exists()
        assert (ckpts[0] / "COMPLETE").exists()

        # the inspector opens a past step
        await wait_for(pilot, lambda: len(model.samples) >= 2, "two logged steps")
        await pilot.press("i")
        inspector = app.screen
        assert isinstance(inspector, InspectorScreen)
        latest = inspector.step
        await pilot.press("left_square_bracket")
        assert inspector.step is not None and inspector.step < latest
        assert inspector.record is not None and inspector.record["step"] == inspector.step
        assert inspector.current_completion() is not None
        await pilot.press("t")
        assert inspector.mode == "entropy"
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)

        # quit while training asks first; cancelling keeps training
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("c")
        assert isinstance(app.screen, DashboardScreen) and app.is_running

        # stop (confirmed) saves final/
        await pilot.press("s")
        await pilot.press("y")
        await wait_for(pilot, lambda: model.is_terminal, "the run to stop")
        assert model.state == "stopped"  # short of max_steps: stopped, not finished
        assert (run_dir / "final" / "model.safetensors").exists()
        assert model.step < 5000
        # the stopped run stays on screen; its controls are gone from the footer
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.check_action("pause", ()) is False
    app.live.thread.join(timeout=30)


def test_launcher_start_and_quit_stops_and_saves(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the run directory goes to ./runs/
    asyncio.run(_launcher_start_and_quit(tmp_path))


async def _launcher_start_and_quit(tmp_path: Path) -> None:
    # Overrides given without a preset apply to whatever the launcher starts.
    app = GrpoApp(overrides=[*FAST, "max_steps=5000"], runs_root=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        names = [p.name for p in app.screen.presets]
        app.screen.query_one("#presets").move_cursor(row=names.index("tiny-arithmetic"))
        await pilot.press("enter")
        model = app.live_model
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: model.step >= 1, "first step")
        # the system tab: this machine's CPU and RAM, and the trainer process's share of them
        await pilot.press("5")
        pane = app.screen.query_one("#system-pane")
        await wait_for(pilot, lambda: pane.snapshot is not None and pane.snapshot.process_rss, "a system sample")
        text = pane.render_snapshot(78).plain
        assert "CPU" in text and "RAM" in text and "trainer" in text and "GiB" in text
        header = app.screen.query_one("#status").render_text(1.0).plain
        assert "RAM" in header  # the fullest memory, in the header
        assert all(len(line) <= 78 for line in header.splitlines())  # nothing runs off an 80-column screen
        await pilot.press("1")
        await pilot.press("q")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("s")  # stop, save, then quit
        await wait_for(pilot, lambda: not app.is_running, "the app to exit after saving", limit=60)
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    assert (run_dirs[0] / "final" / "model.safetensors").exists()
    app.live.thread.join(timeout=30)
