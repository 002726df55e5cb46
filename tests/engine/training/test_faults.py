"""Runs that survive: kill -9 and exact resume, torn files, half-written checkpoints,
failing rewards, NaN losses, unwritable checkpoints, and control from another process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, cli, tiny_config, train, wait_until
from engine.training import checkpointing as ckpt
from engine.run.channel import read_heartbeat, run_state, send_command
from engine.run.events import LogEvent, RunFinished, RunState, StateChanged, StepMetrics
from engine.run.rundir import read_jsonl, truncate_after
from engine.run.listing import summarize_run
from engine.training.trainer import Trainer

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
TIMING = {"time", "step_time", "time/generate", "time/reward", "time/update", "time/eval", "completions_per_s", "elapsed_s", "eta_s"}
SHORT = ["--set", "dataset.task_args.eval_size=32", "--set", "log_completions_groups=1", "--set", "eval_steps=0"]


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path):
    args = ["train", "tiny-arithmetic", "--headless", "--max-steps", "12", "--set", "save_steps=4", *SHORT]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(cli(*args, "--output", str(killed)), cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (killed / "checkpoints" / "step-000004" / "COMPLETE").exists()
                   and len(read_jsonl(killed / "metrics.jsonl")) >= 7, what="step 6 after the first checkpoint")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert not (killed / "final").exists()
    with open(killed / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "reward": 0.')  # a torn last line, as a kill mid-write leaves
    assert run_state(killed, "running", now=time.time() + 60) == "crashed"

    resumed = subprocess.run(cli("resume", str(killed), "--headless"), cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = subprocess.run(cli(*args, "--output", str(whole)), cwd=ROOT, env=ENV, capture_output=True,
                                   text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    a, b = read_jsonl(killed / "metrics.jsonl"), read_jsonl(whole / "metrics.jsonl")
    assert [r["step"] for r in a] == list(range(13))  # every step exactly once
    # sampled tokens, rewards and lengths are identical; float reductions (loss, KL, grad norm)
    # may differ in the last bits between processes, as multi-threaded CPU kernels do
    exact = ["reward", "accuracy", "completions/mean_length", "frac_reward_zero_std", "num_tokens", "eval/accuracy"]
    for x, y in zip(comparable(a), comparable(b)):
        assert {k: x.get(k) for k in exact} == {k: y.get(k) for k in exact}
        assert x == pytest.approx(y, rel=1e-4, abs=1e-6)
    assert [s["step"] for s in read_jsonl(killed / "samples.jsonl")] == list(range(1, 13))
    assert (killed / "final" / "model.safetensors").exists()
    assert summarize_run(killed).state == "finished"


def test_half_written_checkpoints_are_never_picked(tmp_path):
    trainer, _ = train(tiny_config(tmp_path, "max_steps=2", "save_steps=1", "log_completions_groups=0"), evaluate=False)
    root = trainer.run_dir / "checkpoints"
    (root / ".tmp-step-000009").mkdir()  # a save interrupted before its rename
    partial = root / "step-000012"
    partial.mkdir()  # a directory without COMPLETE (copied by hand, disk full, ...)
    (partial / "trainer_state.json").write_text('{"step": 12}')
    assert ckpt.latest_checkpoint(trainer.run_dir).name == "step-000002"


def test_truncate_after_drops_later_and_torn_records(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "rew')
    (tmp_path / "events.jsonl").write_text('{"step": null, "kind": "status"}\n{"step": 3, "kind": "x"}\n')
    truncate_after(tmp_path, 2)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    assert [r["step"] for r in read_jsonl(tmp_path / "events.jsonl")] == [None]


def test_every_reward_failing_pauses_the_run(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("def broken(prompts, completions, **kwargs):\n    raise KeyError('answer_key')\n")
    cfg = tiny_config(tmp_path, "max_steps=50", "log_completions_groups=0", f"reward_funcs=['{plugin}:broken']")
    trainer = Trainer(cfg, evaluate=False)
    events: list = []
    trainer.control.subscribe(events.append)
    thread = trainer.start()
    wait_until(lambda: any(isinstance(e, StateChanged) and e.state == RunState.PAUSED for e in events), what="pause")
    fault = [e for e in events if isinstance(e, LogEvent) and e.category == "fault"]
    assert fault and "reward function broken failed on 3 steps" in fault[0].message and "answer_key" in fault[0].message
    assert trainer.step == 3
    trainer.control.stop()
    thread.join(60)
    assert isinstance(events[-1], RunFinished)


def test_nan_loss_is_skipped_counted_then_pauses(tmp_path, monkeypatch):
    from engine.algo import grpo

    real = grpo.policy_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] >= 2 else loss), stats

    monkeypatch.setattr(grpo, "policy_loss", sometimes_nan)
    cfg = tiny_config(tmp_path, "max_steps=50", "log_completions_groups=0")
    trainer = Trainer(cfg, evaluate=False)
    events: list = []
    trainer.control.subscribe(events.append)
    thread = trainer.start()
    wait_until(lambda: any(isinstance(e, StateChanged) and e.state == RunState.PAUSED for e in events), what="pause")
    steps = [e.metrics for e in events if isinstance(e, StepMetrics)]
    assert [m["skipped_updates"] for m in steps] == [0, 1, 2, 3]
    nan = [e for e in events if isinstance(e, LogEvent) and e.category == "nan"]
    assert len(nan) == 3 and any(isinstance(e, LogEvent) and e.category == "fault" for e in events)
    trainer.control.stop()
    thread.join(60)


def test_unwritable_checkpoint_is_reported_and_training_goes_on(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=4", "save_steps=2", "log_completions_groups=0")
    trainer = Trainer(cfg, evaluate=False)
    events: list = []

    def block_checkpoints(event):
        if isinstance(event, StepMetrics) and event.step == 1:
            folder = trainer.run_dir / "checkpoints"
            for child in folder.iterdir():
                child.rmdir()
            folder.rmdir()
            folder.write_text("not a directory")  # every checkpoint write now fails
        events.append(event)

    trainer.control.subscribe(block_checkpoints)
    trainer.run()
    errors = [e for e in events if isinstance(e, LogEvent) and e.category == "checkpoint" and e.level == "error"]
    assert errors and "could not be written" in errors[0].message
    assert isinstance(events[-1], RunFinished) and events[-1].summary["steps"] == 4


def test_detached_run_controlled_from_another_process(tmp_path):
    run_dir = tmp_path / "detached"
    out = subprocess.run(cli("train", "tiny-arithmetic", "--detach", "--max-steps", "400", "--output", str(run_dir),
                             *SHORT), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and str(run_dir) in out.stdout
    try:
        wait_until(lambda: len(read_jsonl(run_dir / "metrics.jsonl")) >= 3, what="training to start")
        assert summarize_run(run_dir).state == "running"

        send = subprocess.run(cli("send", str(run_dir), "pause"), cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert send.returncode == 0
        wait_until(lambda: (read_heartbeat(run_dir) or {}).get("state") == "paused", what="paused heartbeat")
        at = len(read_jsonl(run_dir / "metrics.jsonl"))
        time.sleep(1.5)
        assert len(read_jsonl(run_dir / "metrics.jsonl")) == at

        send_command(run_dir, "adjust", learning_rate=2e-5)
        send_command(run_dir, "resume")
        wait_until(lambda: len(read_jsonl(run_dir / "metrics.jsonl")) > at + 1, what="steps after resume")
        assert read_jsonl(run_dir / "metrics.jsonl")[-1]["learning_rate"] == 2e-5
    finally:
        pid = (read_heartbeat(run_dir) or {}).get("pid")
        if pid:
            os.kill(pid, signal.SIGKILL)
    # the process is gone (once the kernel has ended it): the run shows as crashed, not running
    wait_until(lambda: run_state(run_dir, "running", now=time.time() + 60) == "crashed", what="the run to show as crashed")


def test_runs_command_lists_state(tmp_path):
    train(tiny_config(tmp_path, "max_steps=1", "log_completions_groups=0"), evaluate=False)
    result = subprocess.run(cli("runs", "--root", str(tmp_path)), cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0
    assert "run" in result.stdout and "finished" in result.stdout and "1/1" in result.stdout


def test_resume_without_checkpoint_says_so(tmp_path):
    train(tiny_config(tmp_path, "max_steps=1", "log_completions_groups=0"), evaluate=False)
    result = subprocess.run(cli("resume", str(tmp_path / "run"), "--headless"), cwd=ROOT, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no complete checkpoint" in result.stderr
