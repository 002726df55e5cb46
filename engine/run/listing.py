"""Listing run directories with what a person wants to know first: state, progress, reward.

Reads only what a listing needs (the events, the tail of metrics.jsonl, the heartbeat), so
a folder of long runs lists quickly. The state comes from the last status the run wrote and
its heartbeat: a run whose process died shows as ``crashed``, not as running forever; one
ended on purpose shows as the process wrote it (finished, stopped, abandoned, failed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.run.checkpoints import resume_plan, resume_point
from engine.run.channel import CRASHED, is_final, read_heartbeat, run_state
from engine.run.events import RunState
from engine.run.jsonl import read_jsonl, tail_jsonl
from engine.run.rundir import CONFIG, EVENTS, METRICS, last_status, last_status_event, list_runs

HANDED_OVER = "handed over"
"""How the status of a run whose dashboard detached begins (the trainer's hand-over)."""

TAIL_BYTES = 64 * 1024


@dataclass
class RunSummary:
    path: Path
    name: str
    state: str  # a RunState value, or CRASHED (see engine.run.channel.run_state)
    step: int
    max_steps: int
    reward: float | None
    eval_accuracy: float | None
    model: str
    preset: str
    status_message: str = ""  # the newest status record's message ("stopped at step 12 of 40", ...)

    @property
    def live(self) -> bool:
        """A process trains it now and reads the commands sent to it."""
        return self.state != CRASHED and not is_final(self.state)

    @property
    def handed_over(self) -> bool:
        """The dashboard that trained it detached: its process ended the run's part at a
        checkpoint for a background ``grpo-tui resume`` to continue (and may still be exiting)."""
        return self.state == RunState.STOPPING and self.status_message.startswith(HANDED_OVER)

    @property
    def checkpoint_step(self) -> int | None:
        """The step of the newest complete checkpoint (where a resume continues), or None."""
        return resume_point(self.path)

    def resume_problem(self) -> str | None:
        """Why ``grpo-tui resume`` cannot continue this run (None when it can), in one line.
        A finished run whose newest checkpoint is short of max_steps may resume (its later
        steps are trained again): what counts is the checkpoint, not the state."""
        if self.live and not self.handed_over:
            return (f"run {self.name} is {self.state} (step {self.step}/{self.max_steps or '?'}) in another process: "
                    f"watch it with grpo-tui attach {self.path}, or stop it first")
        at = self.checkpoint_step
        if at is None:
            return f"{self.path} has no complete checkpoint to resume from"
        if self.max_steps and at >= self.max_steps and not self.final_missing:
            return (f"run {self.name} is {self.state} (step {self.step}/{self.max_steps}) and its newest checkpoint "
                    f"is at step {at}: nothing to resume")
        return None

    @property
    def resumable(self) -> bool:
        """Ended short of max_steps (stopped, abandoned, crashed, failed) with a complete
        checkpoint to continue from: what the launcher offers to resume."""
        return not self.live and self.state != RunState.FINISHED and self.resume_problem() is None

    @property
    def final_missing(self) -> bool:
        """Trained to max_steps but final/ was not written (a full disk at the end): resuming
        from the last checkpoint writes it."""
        at = self.checkpoint_step
        return bool(self.max_steps and at is not None and at >= self.max_steps and self.state != RunState.FINISHED
                    and not (Path(self.path) / "final").is_dir())

    def resume_plan(self) -> str:
        """"resume from checkpoint at step 40 (the run reached step 46: 6 steps are redone)"."""
        at = self.checkpoint_step
        if self.final_missing:
            return f"save the final model from the checkpoint at step {at} (no step is trained again)"
        return resume_plan(at, max(self.step, at)) if at is not None else "no complete checkpoint to resume from"

    def not_live_reason(self) -> str | None:
        """Why nothing can be sent to this run (None while it is live), in one line."""
        if self.live:
            return None
        why = f"run {self.name} is {self.state} (step {self.step}/{self.max_steps or '?'}): nothing to send to"
        if self.resumable:
            why += f"; resume it with grpo-tui resume {self.path}"
        return why


def summarize_run(path: str | os.PathLike) -> RunSummary:
    root = Path(path)
    events = read_jsonl(root / EVENTS)
    metrics = tail_jsonl(root / METRICS, TAIL_BYTES)
    beat = read_heartbeat(root) or {}
    step = max(int(metrics[-1].get("step", 0)) if metrics else 0, int(beat.get("step", 0) or 0))
    reward = next((m["reward"] for m in reversed(metrics) if isinstance(m.get("reward"), (int, float))), None)
    evals = [e.get("data") or {} for e in events if e.get("kind") == "eval"]
    acc = next((d["eval/accuracy"] for d in reversed(evals) if isinstance(d.get("eval/accuracy"), (int, float))), None)
    try:
        cfg = yaml.safe_load((root / CONFIG).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    max_steps = cfg.get("max_steps") if isinstance(cfg.get("max_steps"), int) else 0
    max_steps = max(max_steps, 0)  # -1 (from num_train_epochs) until the run has read its dataset: not known
    status = last_status_event(events) or {}
    return RunSummary(root, root.name, run_state(root, last_status(events)), step, max_steps, reward, acc,
                      str(cfg.get("model_name_or_path", "?")), str(cfg.get("run_name") or ""),
                      str(status.get("message") or ""))


def list_run_summaries(root: str | Path = "runs") -> list[RunSummary]:
    return [summarize_run(p) for p in list_runs(root)]
