"""How a run ends on a fault: headless and the Python API fail with one line and a
checkpoint; a paused run stopped after a fault says so and exits non-zero; a fixed reward
plugin takes effect on resume; failed rewards are missing, never 0; health alarms leave
steps whose rewards failed alone."""

from __future__ import annotations

import math
import os
import subprocess

import pytest

from conftest import ROOT, cli, tiny_config, train, wait_until, write
from engine.api import GRPOConfig, GRPOTrainer, TrainingFailed
from engine.run.channel import read_heartbeat
from engine.run.events import LogEvent, RunFinished, RunState, StateChanged, StepMetrics
from engine.run.rundir import read_jsonl
from engine.training.faults import PAUSE_AFTER_FAILURES
from engine.training.trainer import Trainer

pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
SHORT = ["--set", "dataset.task_args.eval_size=16", "--set", "log_completions_groups=1", "--set", "eval_steps=0"]
BROKEN = "def scorer(prompts, completions, **kwargs):\n    return [1 / 0 for _ in completions]\n"
FIXED = "def scorer(prompts, completions, **kwargs):\n    return [float(len(c) % 2) for c in completions]\n"
MESSAGE = f"reward function scorer failed on {PAUSE_AFTER_FAILURES} steps in a row: ZeroDivisionError: division by zero"


def plugin(tmp_path, text: str = BROKEN):
    return write(tmp_path / "plugins" / "my_reward.py", text)


def complete_checkpoints(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step-*") if (p / "COMPLETE").exists())


def test_headless_run_fails_on_a_failing_reward_with_one_line_and_a_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        cli("train", "tiny-arithmetic", "--headless", "--max-steps", "50", "--output", str(run_dir), *SHORT,
            "--set", f"reward_funcs=['{plugin(tmp_path)}:scorer']"),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"grpo-tui: run failed: {MESSAGE}")
    assert "Traceback" not in result.stderr + result.stdout
    assert complete_checkpoints(run_dir) == [f"step-{PAUSE_AFTER_FAILURES:06d}"]  # resumable from the fault
    metrics = [m for m in read_jsonl(run_dir / "metrics.jsonl") if m["step"] > 0]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["reward"] is None and m["rewards/scorer/mean"] is None for m in metrics)  # missing, not 0
    assert not (run_dir / "error.log").exists()


def test_python_api_raises_training_failed_naming_the_reward_function(tmp_path):
    def scorer(prompts, completions, **kwargs):
        return [1 / 0 for _ in completions]

    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=50, num_generations=4, per_device_train_batch_size=8,
                      max_completion_length=4, log_completions_groups=0)
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(5) for b in range(5)]
    trainer = GRPOTrainer(str(ROOT / "assets" / "tiny-model"), scorer, args=args, train_dataset=rows)
    with pytest.raises(TrainingFailed) as raised:
        trainer.train()
    # one line: the function, its error and where it was raised
    assert str(raised.value).startswith(MESSAGE) and "\n" not in str(raised.value)
    assert raised.value.traceback_path is None
    assert complete_checkpoints(trainer.run_dir) == [f"step-{PAUSE_AFTER_FAILURES:06d}"]


def test_stop_while_paused_by_a_fault_is_not_a_finished_run(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=50", "log_completions_groups=0", f"reward_funcs=['{plugin(tmp_path)}:scorer']")
    trainer = Trainer(cfg, evaluate=False)  # the engine's default: pause, as the dashboard
    events: list = []
    trainer.control.subscribe(events.append)
    thread = trainer.start()
    wait_until(lambda: any(isinstance(e, StateChanged) and e.state == RunState.PAUSED for e in events), what="pause")
    fault = [e for e in events if isinstance(e, LogEvent) and e.category == "fault"]
    assert fault and fault[0].message.startswith(f"paused: {MESSAGE}")
    trainer.control.stop()
    thread.join(120)
    assert isinstance(events[-1], RunFinished) and events[-1].summary["fault"].startswith(MESSAGE)
    summary = [e for e in events if isinstance(e, LogEvent) and e.category == "summary"]
    assert summary and summary[0].message.startswith("run stopped after a fault at step 3")
    states = [e for e in events if isinstance(e, StateChanged)]
    assert "stopped after a fault" in states[-1].message


def test_headless_with_on_fault_pause_waits_reloads_on_request_and_exits_1_when_stopped(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        cli("train", "tiny-arithmetic", "--headless", "--on-fault", "pause", "--max-steps", "50", "--output",
            str(run_dir), *SHORT, "--set", f"reward_funcs=['{plugin(tmp_path)}:scorer']"),
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (read_heartbeat(run_dir) or {}).get("state") == "paused", what="paused by the fault")
        sent = subprocess.run(cli("send", str(run_dir), "reload-rewards"), cwd=ROOT, env=ENV, capture_output=True,
                              text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: any(e["kind"] == "reward_reload" for e in read_jsonl(run_dir / "events.jsonl")),
                   what="the reload event")
        reload = next(e for e in read_jsonl(run_dir / "events.jsonl") if e["kind"] == "reward_reload")
        assert reload["message"] == f"reward functions reloaded from {tmp_path / 'plugins' / 'my_reward.py'}"
        subprocess.run(cli("send", str(run_dir), "stop"), cwd=ROOT, env=ENV, capture_output=True, timeout=60)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 1, out + err
    assert f"stopped after a fault: {MESSAGE}" in err and "Traceback" not in err


def test_resuming_after_a_reward_fault_runs_the_fixed_plugin(tmp_path):
    path = plugin(tmp_path)
    cfg = tiny_config(tmp_path, "max_steps=50", "log_completions_groups=1", f"reward_funcs=['{path}:scorer']")
    trainer = Trainer(cfg, evaluate=False)
    events: list = []
    trainer.control.subscribe(events.append)
    thread = trainer.start()
    try:
        wait_until(lambda: trainer.control.state == RunState.PAUSED, what="pause")
        path.write_text(FIXED)
        trainer.control.resume()
        wait_until(lambda: any(isinstance(e, StepMetrics) and e.step >= 5 for e in events), what="steps after the fix")
    finally:
        trainer.control.stop()
        thread.join(120)
    reloads = [e for e in events if isinstance(e, LogEvent) and e.category == "reward_reload"]
    assert reloads and reloads[0].step == PAUSE_AFTER_FAILURES and "reloaded from" in reloads[0].message
    rewards = {e.step: e.metrics["reward"] for e in events if isinstance(e, StepMetrics)}
    assert all(math.isnan(rewards[s]) for s in (1, 2, 3)) and all(math.isfinite(rewards[s]) for s in (4, 5))
    assert "fault" not in events[-1].summary  # the fault is over: a plain stop
    samples = read_jsonl(trainer.run_dir / "samples.jsonl")
    assert all(c["reward"] is None for c in samples[0]["groups"][0]["completions"])
    assert all(isinstance(c["reward"], float) for c in samples[-1]["groups"][0]["completions"])


def test_health_alarms_ignore_steps_whose_rewards_failed(tmp_path):
    # one function fails (no pause: the other still scores), the other gives every completion
    # the same reward: zero spread, which would otherwise blame the task after five steps
    path = write(tmp_path / "plugins" / "two.py", BROKEN + "\n\ndef constant(prompts, completions, **kwargs):\n"
                 "    return [1.0 for _ in completions]\n")
    cfg = tiny_config(tmp_path, "max_steps=7", "log_completions_groups=0",
                      f"reward_funcs=['{path}:scorer', '{path}:constant']")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished)
    assert [e for e in events if isinstance(e, LogEvent) and e.category == "reward_error"]
    assert not [e for e in events if isinstance(e, LogEvent) and e.category == "health"]
    metrics = read_jsonl(trainer.run_dir / "metrics.jsonl")[-1]
    assert metrics["rewards/scorer/mean"] is None and metrics["rewards/scorer/std"] is None
    assert metrics["reward"] == 1.0  # what the working function gave
