"""The views around the dashboard: the live config view, a resumed run's whole history, the
help screen, the launcher's live run list, and a first frame that does not wait for torch."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, tiny_config, train, wait_for
from engine.run.rundir import read_jsonl
from grpo_tui.app import GrpoApp
from grpo_tui.screens.config_view import ConfigViewScreen
from grpo_tui.screens.dashboard import DashboardScreen
from grpo_tui.screens.help import HelpScreen
from grpo_tui.screens.launcher import LauncherScreen

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = DATA / "recorded-run"
FAST = ["per_device_train_batch_size=16", "eval_max_samples=8", "log_completions_groups=2"]



# -- the config view ----------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_config_view_shows_a_live_adjustment_with_its_earlier_value(tmp_path: Path) -> None:
    asyncio.run(_config_view(tmp_path / "run"))


async def _config_view(run_dir: Path) -> None:
    app = GrpoApp(preset="tiny-arithmetic", overrides=[*FAST, "max_steps=5000", f"output_dir={run_dir}"])
    async with app.run_test(size=(100, 30)) as pilot:
        model = app.live_model
        await wait_for(pilot, lambda: model.step >= 1, "a step")
        app.live.control.adjust(learning_rate=1e-4)
        await wait_for(pilot, lambda: model.adjustments, "the adjustment")
        at = model.adjustments[0].step
        await pilot.press("v")
        view = app.screen
        assert isinstance(view, ConfigViewScreen)
        text = view.query_one("#editor-text").text
        assert f"learning_rate: 0.0001  # ← 5.0e-05 at step {at}" in text
        assert "learning_rate: 5.0e-05" not in text
        # a second change while the view is open shows there, the whole history beside it
        app.live.control.adjust(learning_rate=2e-4)
        await wait_for(pilot, lambda: len(model.adjustments) == 2, "the second adjustment")
        second = model.adjustments[1].step
        await wait_for(pilot, lambda: "learning_rate: 0.0002" in view.query_one("#editor-text").text, "the view")
        assert f"# ← 0.0001 at step {second} ← 5.0e-05 at step {at}" in view.query_one("#editor-text").text
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        app.live.control.stop()
        await wait_for(pilot, lambda: model.is_terminal, "the run to stop")
    app.live.thread.join(timeout=30)


# -- a run resumed in the app ---------------------------------------------------------------


@pytest.mark.timeout(240)
def test_a_run_resumed_in_the_app_shows_its_whole_history(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = tiny_config(tmp_path, "max_steps=6", "save_steps=3", "log_completions_groups=1",
                      f"output_dir={runs / 'interrupted'}")
    trainer, _ = train(cfg, evaluate=False)
    run_dir = trainer.run_dir
    from engine.run.rundir import truncate_after

    truncate_after(run_dir, 4)  # killed after step 4: its step-3 checkpoint is where it goes on
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "step-000006", ignore_errors=True)
    (run_dir / "heartbeat.json").unlink()
    first_time = min(r["time"] for r in read_jsonl(run_dir / "events.jsonl") + read_jsonl(run_dir / "metrics.jsonl"))
    asyncio.run(_resumed(run_dir, first_time))


async def _resumed(run_dir: Path, first_time: float) -> None:
    app = GrpoApp(resume=str(run_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        model = app.live_model
        assert model.series["reward"].steps[0] == 1  # the charts start at the run's first step
        assert model.started_at == first_time  # elapsed counts from the run's start
        await wait_for(pilot, lambda: model.is_terminal, "the resumed run")
        assert model.state == "finished"
        assert list(model.series["reward"].steps) == [1, 2, 3, 4, 5, 6]
        saved = [e.step for e in model.events if e.kind == "checkpoint"]
        assert saved.count(3) == 1 and 6 in saved  # the first process's checkpoint, once, and the new one
        assert any(e.kind == "resume" for e in model.events)
        shown = [(e.kind, e.step, e.message, e.time) for e in model.events]
        records = [(r["kind"], r["step"], r["message"], r["time"]) for r in read_jsonl(run_dir / "events.jsonl")]
        restart = next(i for i, r in enumerate(records) if i and r[0] == "status" and r[2] == "loading model")
        earlier = records[:restart]  # the first process's events, up to its checkpoint
        assert ("checkpoint", 3) in [r[:2] for r in earlier]
        assert all(shown.count(record) == 1 for record in earlier if record[0] != "run_started")  # each once
        assert model.started_at == first_time


# -- help, and Esc on every dialog --------------------------------------------------------


def test_help_lists_the_screens_keys_and_esc_or_question_mark_closes_it() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("question_mark")
            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen)
            rows = {text: (keys, now) for keys, text, now in help_screen.screen_rows}
            assert rows["Pause training"] == ("p", False)  # a recorded run: listed, not now
            assert rows["Show the resolved config"] == ("v", True)  # hidden from the footer, listed here
            assert rows["Go to the launcher"] == ("l", True)  # esc steps back: cursor, maximised chart, then the launcher
            assert any(text.startswith("Help") for _, text, _ in help_screen.app_rows)
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("question_mark")
            await pilot.press("question_mark")
            assert isinstance(app.screen, DashboardScreen)

    asyncio.run(go())


def test_every_dialog_closes_with_escape() -> None:
    import importlib
    import pkgutil

    from textual.screen import ModalScreen

    import grpo_tui.screens

    found = []
    for info in pkgutil.iter_modules(grpo_tui.screens.__path__):
        module = importlib.import_module(f"grpo_tui.screens.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ModalScreen) and cls.__module__ == module.__name__:
                keys = {k for b in cls.BINDINGS for k in getattr(b, "key", "").split(",")}
                found.append(cls.__name__)
                assert "escape" in keys, f"{cls.__name__} does not close with Esc"
    assert {"ConfirmScreen", "ChoiceScreen", "AdjustScreen", "HelpScreen"} <= set(found)


def test_help_snapshot_at_80x24(snap_compare) -> None:
    async def show(pilot) -> None:
        await pilot.pause(0.5)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0), terminal_size=(80, 24), run_before=show)


# -- the launcher ------------------------------------------------------------------------


def _write_run(root: Path, state: str, step: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text("max_steps: 4\nrun_name: r\n", encoding="utf-8")
    with open(root / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": 1.0 + step, "step": step, "level": "info", "kind": "status",
                            "message": f"{state} at step {step}", "data": {"state": state}}) + "\n")


def test_launcher_shows_a_run_that_finishes_and_returns_focus_to_the_presets(tmp_path: Path, monkeypatch) -> None:
    import grpo_tui.screens.launcher as launcher

    monkeypatch.setattr(launcher, "RUNS_REFRESH_S", 0.2)
    runs = tmp_path / "runs"
    _write_run(runs / "r", "stopped", 2)

    async def go() -> None:
        app = GrpoApp(runs_root=runs, presets_finder=list, clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.3)
            screen = app.screen
            assert [r.state for r in screen.runs] == ["stopped"]
            _write_run(runs / "r", "finished", 4)  # the run ends meanwhile
            await wait_for(pilot, lambda: [r.state for r in screen.runs] == ["finished"], "the list to refresh", 10)
            assert "finished" in str(screen.query_one("#runs").get_row_at(0))
            # open the run from the list, then back: the focus is where a new run starts
            screen.query_one("#runs").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "the run's dashboard", 10)
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, LauncherScreen), "the launcher", 10)
            await pilot.pause(0.2)
            assert app.focused is screen.query_one("#presets")

    asyncio.run(go())


# -- the first frame ----------------------------------------------------------------------


def test_the_first_frame_needs_no_torch(tmp_path: Path) -> None:
    """The launcher, the dashboard and an attached run's screen are built without torch or
    transformers (seconds to import): those load in a thread after the first frame."""
    run_dir = tmp_path / "run"
    shutil.copytree(RECORDED, run_dir)
    code = f"""
import sys
import grpo_tui.app, grpo_tui.screens.launcher, grpo_tui.screens.dashboard, grpo_tui.screens.help
from engine.config.presets import find_presets
from grpo_tui.model.follow import open_run_dir
from grpo_tui.model.session import AttachedRun
assert all(info.ok is None for info in find_presets(validate=False))
AttachedRun({str(run_dir)!r}); open_run_dir({str(run_dir)!r})
heavy = sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_samples_pane_keeps_up_with_slow_steps_and_holds_fast_ones_to_once_a_second(monkeypatch) -> None:
    """A step that comes a second or more after the one shown is shown at once; steps that come
    faster (the tiny model makes ~14 a second) are shown at most once a second."""
    import asyncio

    from grpo_tui.widgets import samples as samples_module
    from grpo_tui.widgets.samples import SamplesPane

    import time

    clock = [time.monotonic()]
    monkeypatch.setattr(samples_module, "clock", lambda: clock[0])

    def step(n: int) -> dict:
        return {"step": n, "groups": [{"prompt": f"prompt of step {n}", "rewards": [1.0],
                                        "completions": [{"text": f"answer {n}", "reward": 1.0}]}]}

    class Model:
        record = step(1)

        def latest_samples(self):
            return self.record

    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.3)
            pane = app.screen.query_one("#side-samples", SamplesPane)
            model = Model()
            shown = []
            monkeypatch.setattr(SamplesPane, "show", lambda self, content, width: shown.append(str(content)))
            clock[0] += 5.0  # the recorded run's last step was shown at mount, long enough ago
            pane.update_from(model)
            model.record = step(2)
            clock[0] += 0.3  # a fast step: held back
            pane.update_from(model)
            assert len(shown) == 1 and "answer 1" in shown[0]
            clock[0] += 0.8  # a second has passed since the last shown: the latest step shows
            pane.update_from(model)
            assert len(shown) == 2 and "answer 2" in shown[1]
            model.record = step(3)
            clock[0] += 30.0  # a slow step: shown at once
            pane.update_from(model)
            assert len(shown) == 3 and "answer 3" in shown[2]

    asyncio.run(go())
