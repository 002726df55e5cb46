"""Listing run directories with what a person wants to know first: state, progress, reward.

Reads only what a listing needs (the events, the tail of metrics.jsonl, the heartbeat), so
a folder of long runs lists quickly. The state comes from the last status the run wrote and
its heartbeat: a run whose process died shows as ``crashed``, not as running forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.run.checkpoints import latest_checkpoint
from engine.run.channel import CRASHED, is_final, read_heartbeat, run_state
from engine.run.jsonl import read_jsonl, tail_jsonl
from engine.run.rundir import CONFIG, EVENTS, METRICS, last_status, list_runs

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

    @property
    def resumable(self) -> bool:
        """Crashed (or killed) with at least one complete checkpoint to continue from."""
        return self.state == CRASHED and latest_checkpoint(self.path) is not None

    @property
    def live(self) -> bool:
        """A process trains it now and reads the commands sent to it."""
        return self.state != CRASHED and not is_final(self.state)

    def not_live_reason(self) -> str | None:
        """Why nothing can be sent to this run (None while it is live), in one line."""
        if self.live:
            return None
        why = f"run {self.name} is {self.state} (step {self.step}/{self.max_steps or '?'}): nothing to send to"
        if latest_checkpoint(self.path) is not None and (not self.max_steps or self.step < self.max_steps):
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
    return RunSummary(root, root.name, run_state(root, last_status(events)), step, max_steps, reward, acc,
                      str(cfg.get("model_name_or_path", "?")), str(cfg.get("run_name") or ""))


def list_run_summaries(root: str | Path = "runs") -> list[RunSummary]:
    return [summarize_run(p) for p in list_runs(root)]
