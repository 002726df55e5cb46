"""Attach and resume in the dashboard: a detached run steered from the app, and an
interrupted run continued from the launcher."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, tiny_config, train, wait_for
from engine.run.channel import read_heartbeat
from engine.run.rundir import read_jsonl
from grpo_tui.app import GrpoApp
from grpo_tui.screens.dashboard import DashboardScreen

pytestmark = pytest.mark.timeout(240)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def steps_in(run_dir: Path) -> int:
    return len([r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("reward") is not None])



def test_attach_controls_a_detached_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "detached"
    out = subprocess.run([sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--detach", "--max-steps",
                          "400", "--output", str(run_dir), "--set", "eval_steps=0", "--set",
                          "dataset.task_args.eval_size=32"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    assert (run_dir / "config.yaml").exists(), "detach returned before the run could be attached to"
    try:
        asyncio.run(_attach(run_dir))
    finally:
        pid = (read_heartbeat(run_dir) or {}).get("pid")
        if pid:
            os.kill(pid, signal.SIGKILL)


async def _attach(run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while steps_in(run_dir) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    app = GrpoApp(attach=str(run_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, DashboardScreen)
        await wait_for(pilot, lambda: app.screen.model.step >= 2, "the attached run's steps on screen")
        await pilot.press("p")  # reaches the other process through the command channel
        await wait_for(pilot, lambda: (read_heartbeat(run_dir) or {}).get("state") == "paused", "paused")
        at = steps_in(run_dir)
        await asyncio.sleep(1.5)
        assert steps_in(run_dir) == at
        await pilot.press("p")
        await wait_for(pilot, lambda: steps_in(run_dir) > at + 1, "steps after resume")
        await pilot.press("q")  # leaving the dashboard leaves the run training
        await pilot.pause(0.5)
    assert (read_heartbeat(run_dir) or {}).get("state") == "running"


def test_launcher_resumes_an_interrupted_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cfg = tiny_config(tmp_path, "max_steps=6", "save_steps=3", "log_completions_groups=1",
                      f"output_dir={runs / 'interrupted'}")
    trainer, _ = train(cfg, evaluate=False)
    run_dir = trainer.run_dir
    # make it look killed after its step-3 checkpoint: later records gone, no final model, no heartbeat
    import shutil

    from engine.run.rundir import truncate_after

    truncate_after(run_dir, 4)
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "step-000006", ignore_errors=True)
    (run_dir / "heartbeat.json").unlink()
    asyncio.run(_resume(runs, run_dir))


async def _resume(runs: Path, run_dir: Path) -> None:
    app = GrpoApp(runs_root=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        app.screen.query_one("#runs").focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press("r")  # Resume
        await wait_for(pilot, lambda: app.live_model is not None and app.live_model.is_terminal, "the resumed run")
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if "reward" in r] == [1, 2, 3, 4, 5, 6]
    assert (run_dir / "final" / "model.safetensors").exists()


def test_quit_can_detach_the_run_into_the_background(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # bounded, so the background process ends by itself even if the kill below is missed
    app = GrpoApp(preset="tiny-arithmetic", overrides=["max_steps=300", "eval_steps=0", "dataset.task_args.eval_size=32",
                                                       f"output_dir={run_dir}"])
    try:
        asyncio.run(_detach(app, run_dir))
        assert app.return_code == 0
        at = steps_in(run_dir)
        deadline = time.monotonic() + 120
        while steps_in(run_dir) <= at + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert steps_in(run_dir) > at + 2  # the background process goes on from the handover checkpoint
        assert (read_heartbeat(run_dir) or {}).get("pid") not in (None, os.getpid())  # another process trains it
        steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("reward") is not None]
        assert steps == list(range(1, len(steps) + 1))  # each step once across the two processes
    finally:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the background process's heartbeat replaces ours
            pid = (read_heartbeat(run_dir) or {}).get("pid")
            if pid and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                break
            time.sleep(0.2)


async def _detach(app: GrpoApp, run_dir: Path) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.live_model is not None and app.live_model.step >= 3, "three steps")
        await pilot.press("q")
        await pilot.pause(0.3)
        await pilot.press("d")
        deadline = time.monotonic() + 60
        while app.is_running and time.monotonic() < deadline:
            await pilot.pause(0.2)
