"""Listing run directories with what a person wants to know first: state, progress, reward."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.channel import read_heartbeat, run_state
from engine.rundir import list_runs, read_jsonl


@dataclass
class RunSummary:
    path: Path
    name: str
    state: str  # running | paused | checkpointing | starting | finished | failed | crashed
    step: int
    max_steps: int
    reward: float | None
    model: str
    preset: str


def summarize_run(path: Path) -> RunSummary:
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    metrics = [m for m in read_jsonl(path / "metrics.jsonl") if "reward" in m]
    events = read_jsonl(path / "events.jsonl")
    last_status = next((str((e.get("data") or {}).get("state")) for e in reversed(events) if e.get("kind") == "status"),
                       "starting")
    beat = read_heartbeat(path) or {}
    step = int(metrics[-1]["step"]) if metrics else 0
    return RunSummary(
        path=path, name=path.name, state=run_state(path, last_status), step=max(step, int(beat.get("step", 0) or 0)),
        max_steps=int(cfg.get("max_steps", 0) or 0), reward=metrics[-1].get("reward") if metrics else None,
        model=str(cfg.get("model_name_or_path", "?")), preset=str(cfg.get("run_name") or ""),
    )


def list_run_summaries(root: str | Path = "runs") -> list[RunSummary]:
    return [summarize_run(p) for p in list_runs(root)]
