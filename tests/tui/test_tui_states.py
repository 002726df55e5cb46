"""A run's state on screen agrees with ``grpo-tui runs``: a crashed run opens as crashed with
the command that resumes it, the footer offers only the controls that act in the state the
run is in, the resume dialog names the checkpoint and the steps redone, the quit dialog
says paused when the run is, and fits 80x24; abandon leaves an event and an abandoned run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from textual.widgets import Button
from textual.widgets._footer import FooterKey

from engine.run.channel import process_started
from engine.run.listing import summarize_run
from engine.run.rundir import read_jsonl
from grpo_tui.app import GrpoApp
from grpo_tui.cli.main import main
from grpo_tui.screens.confirm import ChoiceScreen, quit_dialog
from grpo_tui.screens.dashboard import DashboardScreen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


def run(coro) -> None:
    asyncio.run(coro)


def recorded_copy(tmp_path: Path, until_state: str, steps: int, checkpoint: int | None = 4) -> Path:
    """The recorded run cut after its last ``until_state`` status and its metrics after
    ``steps``, with a complete checkpoint at ``checkpoint``: a run that ended there."""
    run_dir = tmp_path / "runs" / "recorded-run"
    shutil.copytree(RECORDED, run_dir)
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    cut = [i for i, line in enumerate(lines) if f'"state":"{until_state}"' in line][-1]
    (run_dir / "events.jsonl").write_text("\n".join(lines[:cut + 1]) + "\n")
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(metrics[:steps + 1]) + "\n")
    if checkpoint is not None:
        folder = run_dir / "checkpoints" / f"step-{checkpoint:06d}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps({"step": checkpoint}))
        (folder / "COMPLETE").write_text("")
    return run_dir


def beat(run_dir: Path, state: str) -> None:
    """A heartbeat naming this process: the run looks trained by a live process."""
    (run_dir / "heartbeat.json").write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": process_started(os.getpid()),
        "time": time.time(), "interval": 2.0, "state": state}))


def footer_keys(app: GrpoApp) -> list[str]:
    return [key.description for key in app.screen.query(FooterKey)]


async def settled_footer(pilot) -> list[str]:
    """The footer's key descriptions once it has been drawn (it composes after the screen)."""
    deadline = time.monotonic() + 30
    while "Inspect" not in footer_keys(pilot.app) and time.monotonic() < deadline:
        await pilot.pause(0.1)
    return footer_keys(pilot.app)


def header(app: GrpoApp) -> str:
    return app.screen.query_one("#status").render_text(1.0).plain


@pytest.mark.parametrize("how", ["view", "attach"])
def test_a_crashed_run_opens_as_crashed_with_the_resume_command(tmp_path: Path, how: str) -> None:
    run_dir = recorded_copy(tmp_path, "running", steps=6)  # died while running: no heartbeat

    async def go() -> None:
        app = GrpoApp(**({"run_dir": str(run_dir)} if how == "view" else {"attach": str(run_dir)}), clock=lambda: 0.0)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause(0.2)
            assert isinstance(app.screen, DashboardScreen)
            text = header(app)
            assert "✘ CRASHED" in text and "RUNNING" not in text
            assert f"resume with grpo-tui resume {run_dir}" in text
            assert not {"Pause", "Resume", "Ckpt", "Adjust", "Stop"} & set(await settled_footer(pilot))

    run(go())


def test_a_followed_run_turns_crashed_when_its_process_goes(tmp_path: Path) -> None:
    run_dir = recorded_copy(tmp_path, "running", steps=6)
    beat(run_dir, "running")

    async def go() -> None:
        app = GrpoApp(run_dir=str(run_dir), clock=lambda: 0.0)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause(0.2)
            assert "▶ RUNNING (read-only)" in header(app)
            (run_dir / "heartbeat.json").unlink()  # the process died
            deadline = time.monotonic() + 30
            while "CRASHED" not in header(app) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert "✘ CRASHED" in header(app)

    run(go())


def test_footer_shows_only_the_controls_that_act_in_each_state(tmp_path: Path) -> None:
    async def finished() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(120, 36)) as pilot:
            keys = await settled_footer(pilot)
            assert "Inspect" in keys and not {"Pause", "Resume", "Ckpt", "Adjust", "Stop"} & set(keys)

    async def attached(state: str) -> list[str]:
        run_dir = recorded_copy(tmp_path / state, "running", steps=6)
        if state != "running":
            with open(run_dir / "events.jsonl", "a") as f:
                f.write(json.dumps({"time": 2e9, "step": 6, "level": "info", "kind": "status",
                                    "message": f"{state} at step 6", "data": {"state": state}}) + "\n")
        beat(run_dir, state)  # a live process trains it
        app = GrpoApp(attach=str(run_dir), clock=lambda: 0.0)
        async with app.run_test(size=(120, 36)) as pilot:
            return await settled_footer(pilot)

    run(finished())
    running = asyncio.run(attached("running"))
    assert {"Pause", "Ckpt", "Adjust", "Stop"} <= set(running) and "Resume" not in running
    paused = asyncio.run(attached("paused"))
    assert "Resume" in paused and "Pause" not in paused


def test_resume_dialog_names_the_checkpoint_and_the_steps_redone(tmp_path: Path) -> None:
    run_dir = recorded_copy(tmp_path, "running", steps=6, checkpoint=4)
    with open(run_dir / "events.jsonl", "a") as f:  # a stop at step 6 (its checkpoint pruned away)
        f.write(json.dumps({"time": 2e9, "step": 6, "level": "info", "kind": "status",
                            "message": "stopped at step 6 of 12", "data": {"state": "stopped"}}) + "\n")

    async def go() -> None:
        app = GrpoApp(runs_root=tmp_path / "runs", presets_finder=list, clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.2)
            app.screen.query_one("#runs").focus()
            await pilot.press("enter")
            await pilot.pause(0.1)
            dialog = app.screen
            assert isinstance(dialog, ChoiceScreen)
            assert dialog._title == "recorded-run was stopped at step 6 of 12"
            assert "Resume from checkpoint at step 4 (the run reached step 6: 2 steps are redone)." in dialog._message
            await pilot.press("c")
            assert not isinstance(app.screen, ChoiceScreen)

    run(go())


def test_runs_and_send_name_the_stopped_state(tmp_path: Path, capsys) -> None:
    run_dir = recorded_copy(tmp_path, "running", steps=6, checkpoint=6)
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(json.dumps({"time": 2e9, "step": 6, "level": "info", "kind": "status",
                            "message": "stopped at step 6 of 12", "data": {"state": "stopped"}}) + "\n")
    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("recorded-run"))
    assert row.split()[1:3] == ["stopped", "6/12"]
    assert main(["send", str(run_dir), "pause"]) == 2
    err = capsys.readouterr().err
    assert "run recorded-run is stopped (step 6/12): nothing to send to" in err
    assert f"resume it with grpo-tui resume {run_dir}" in err


def test_resume_refuses_a_finished_run_and_a_live_one(tmp_path: Path, capsys) -> None:
    finished = tmp_path / "finished"
    shutil.copytree(RECORDED, finished)
    (finished / "checkpoints" / "step-000012").mkdir(parents=True)
    (finished / "checkpoints" / "step-000012" / "trainer_state.json").write_text('{"step": 12}')
    (finished / "checkpoints" / "step-000012" / "COMPLETE").write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["resume", str(finished), "--headless"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "grpo-tui: run finished is finished (step 12/12) and its newest checkpoint is at step 12: nothing to resume")

    live = recorded_copy(tmp_path, "running", steps=6)
    beat(live, "running")  # another process trains it: a second one would write the same files
    with pytest.raises(SystemExit) as exit_:
        main(["resume", str(live), "--headless"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "run recorded-run is running (step 6/12) in another process" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("paused", [True, False])
def test_quit_dialog_says_paused_or_running_and_fits_80x24(paused: bool) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            app.push_screen(quit_dialog(paused=paused))
            await pilot.pause(0.2)
            dialog = app.screen
            assert dialog._title == ("Training is paused" if paused else "Training is running")
            labels = {}
            for button in dialog.query(Button):
                region = button.region
                assert region.x >= 0 and region.right <= 80 and region.bottom <= 24
                assert region.width >= len(str(button.label)) + 2  # the whole label shows
                labels[str(button.label)] = region
            assert set(labels) == {"Detach (d)", "Stop (s)", "Abandon (a)", "Cancel (c)"}

    run(go())


def test_quit_dialog_snapshot_at_80x24(snap_compare) -> None:
    async def show(pilot) -> None:
        await pilot.pause(0.5)
        pilot.app.push_screen(quit_dialog(paused=True))
        await pilot.pause(0.2)

    assert snap_compare(GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0), terminal_size=(80, 24), run_before=show)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_abandon_from_the_quit_dialog_leaves_an_event_and_an_abandoned_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"

    async def go() -> GrpoApp:
        app = GrpoApp(preset="tiny-arithmetic", overrides=[
            "per_device_train_batch_size=16", "eval_max_samples=8", "log_completions_groups=0", "max_steps=5000",
            "save_steps=2", f"output_dir={run_dir}"])
        async with app.run_test(size=(80, 24)) as pilot:
            model = app.live_model
            deadline = time.monotonic() + 180
            while model.step < 3 and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await pilot.press("p")
            while model.state != "paused" and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await pilot.press("q")
            assert isinstance(app.screen, ChoiceScreen) and app.screen._title == "Training is paused"
            await pilot.press("a")
            await pilot.pause(0.2)
        return app

    app = asyncio.run(go())
    try:
        events = read_jsonl(run_dir / "events.jsonl")
        abandoned = [e for e in events if e["kind"] == "abandon"]
        assert len(abandoned) == 1
        step, checkpoint = abandoned[0]["step"], abandoned[0]["data"]["checkpoint_step"]
        assert checkpoint is not None and checkpoint <= step
        assert abandoned[0]["message"] == f"run abandoned at step {step} (last checkpoint: step {checkpoint})"
        assert summarize_run(run_dir).state == "abandoned"
    finally:
        app.live.control.stop()  # the engine thread of this test process, paused: end it
        app.live.thread.join(timeout=60)
    assert summarize_run(run_dir).state == "abandoned"  # what the thread wrote after changes nothing


def test_a_resumed_run_leaves_its_ended_state_and_a_stopped_one_names_the_resume_command() -> None:
    from grpo_tui.model.run_model import RunModel

    model = RunModel()
    model.run_dir = "runs/r"
    for t, (state, message) in enumerate([("running", "running"), ("stopped", "stopped at step 6 of 12")]):
        model.add_event({"time": float(t), "kind": "status", "message": message, "data": {"state": state}})
    assert model.state == "stopped" and model.is_terminal
    assert model.end_note() == "stopped at step 6 of 12 — no complete checkpoint to resume from"
    model.add_event({"time": 3.0, "kind": "status", "message": "running", "data": {"state": "running"}})
    assert model.state == "stopped"  # a late report of the old process changes nothing
    model.add_event({"time": 4.0, "kind": "status", "message": "loading model", "data": {"state": "starting"}})
    assert model.state == "starting" and not model.is_terminal and model.end_note() is None  # resumed
