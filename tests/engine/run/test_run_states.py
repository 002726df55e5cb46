"""How a run ended, read back the same way everywhere: a stop before max_steps is ``stopped``
(resumable, no step redone), an abandoned run is ``abandoned``, and nothing a process writes
after its terminal status changes what the run directory says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import tiny_config
from engine.run.checkpoints import resume_plan
from engine.run.control import Control
from engine.run.events import LogEvent, RunState, StateChanged, StepMetrics
from engine.run.jsonl import read_jsonl
from engine.run.listing import summarize_run
from engine.run.rundir import RunWriter, last_status

RECORDED = Path(__file__).resolve().parents[2] / "data" / "recorded-run"


def recorded_copy(tmp_path: Path, until_state: str | None = None, steps: int | None = None,
                  checkpoint: int | None = None) -> Path:
    """The recorded run, cut after its last ``until_state`` status (no heartbeat: its process
    is gone), its metrics to ``steps``, with a complete checkpoint at ``checkpoint``."""
    run = tmp_path / "recorded-run"
    shutil.copytree(RECORDED, run)
    if until_state is not None:
        lines = (run / "events.jsonl").read_text().splitlines()
        cut = [i for i, line in enumerate(lines) if f'"state":"{until_state}"' in line][-1]
        (run / "events.jsonl").write_text("\n".join(lines[:cut + 1]) + "\n")
    if steps is not None:
        metrics = (run / "metrics.jsonl").read_text().splitlines()
        (run / "metrics.jsonl").write_text("\n".join(metrics[:steps + 1]) + "\n")
    if checkpoint is not None:
        folder = run / "checkpoints" / f"step-{checkpoint:06d}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(json.dumps({"step": checkpoint}))
        (folder / "COMPLETE").write_text("")
    return run


def test_resume_plan_names_the_checkpoint_and_the_steps_redone() -> None:
    assert resume_plan(40, 46) == "resume from checkpoint at step 40 (the run reached step 46: 6 steps are redone)"
    assert resume_plan(45, 46).endswith("1 step is redone)")
    assert resume_plan(12, 12).endswith("no step is redone)")


def test_nothing_follows_a_terminal_status_on_disk(tmp_path: Path) -> None:
    """A run abandoned from the main thread may still have an engine thread reporting a
    state for a moment: the status that ended the run stays the last one written."""
    control = Control()
    writer = RunWriter(tmp_path, step=lambda: 7)
    control.subscribe(writer, first=True)
    control.publish(StateChanged(state=RunState.RUNNING))
    control.publish(LogEvent(level="warning", category="abandon", message="run abandoned at step 7", step=7))
    control.publish(StateChanged(state=RunState.ABANDONED, message="run abandoned at step 7"))
    control.publish(StateChanged(state=RunState.RUNNING))  # the engine thread, a moment later
    control.publish(StepMetrics(step=8, metrics={"reward": 1.0}))
    writer.close()
    events = read_jsonl(tmp_path / "events.jsonl")
    assert last_status(events) == "abandoned"
    assert [e["kind"] for e in events] == ["status", "abandon", "status"]


def test_abandoned_run_lists_as_abandoned_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    run = recorded_copy(tmp_path, until_state="running", steps=6, checkpoint=4)
    with open(run / "events.jsonl", "a") as f:
        for record in ({"kind": "abandon", "message": "run abandoned at step 6 (last checkpoint: step 4)"},
                       {"kind": "status", "message": "run abandoned at step 6 (last checkpoint: step 4)",
                        "data": {"state": "abandoned"}}):
            f.write(json.dumps({"time": 1.0, "step": 6, "level": "warning", "data": {}, **record}) + "\n")
    listed = summarize_run(run)
    assert listed.state == "abandoned" and not listed.live and listed.resumable
    assert listed.resume_plan() == "resume from checkpoint at step 4 (the run reached step 6: 2 steps are redone)"
    assert listed.not_live_reason().startswith("run recorded-run is abandoned (step 6/12): nothing to send to")


def test_finished_and_checkpointless_runs_say_why_they_cannot_resume(tmp_path: Path) -> None:
    finished = summarize_run(recorded_copy(tmp_path / "at-end", checkpoint=12))
    assert finished.state == "finished" and not finished.resumable
    assert finished.resume_problem() == ("run recorded-run is finished (step 12/12) and its newest checkpoint is "
                                         "at step 12: nothing to resume")
    earlier = summarize_run(recorded_copy(tmp_path / "earlier", checkpoint=8))
    assert earlier.resume_problem() is None  # `grpo-tui resume` may train steps 9-12 again
    assert not earlier.resumable  # but the launcher offers no resume for a finished run
    crashed = summarize_run(recorded_copy(tmp_path, until_state="running", steps=6))
    assert crashed.state == "crashed" and not crashed.resumable
    assert crashed.resume_problem().endswith("has no complete checkpoint to resume from")


@pytest.mark.slow
def test_a_stop_before_max_steps_ends_stopped_and_resumes_with_no_step_redone(tmp_path: Path) -> None:
    from engine.training.trainer import Trainer

    cfg = tiny_config(tmp_path, "max_steps=8", "log_completions_groups=0", "per_device_train_batch_size=16")
    control = Control()
    control.subscribe(lambda e: control.stop() if isinstance(e, StepMetrics) and e.step == 3 else None)
    trainer = Trainer(cfg, control=control, evaluate=False)
    summary = trainer.run()
    run = trainer.run_dir
    assert summary["steps"] == 3 and control.state == RunState.STOPPED
    events = read_jsonl(run / "events.jsonl")
    assert events[-1]["data"] == {"state": "stopped"} and events[-1]["message"] == "stopped at step 3 of 8"

    listed = summarize_run(run)
    assert (listed.state, listed.step, listed.max_steps) == ("stopped", 3, 8)
    assert listed.resumable and not listed.live
    assert listed.resume_plan() == "resume from checkpoint at step 3 (the run reached step 3: no step is redone)"

    resumed = Trainer.resume(run, control=Control(), evaluate=False)
    assert resumed.run()["steps"] == 8
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == list(range(1, 9))
    assert summarize_run(run).state == "finished"
