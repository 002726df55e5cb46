"""One line about a run directory for the launcher's recent-runs table.

Reads only what a listing needs (the events and the tail of metrics.jsonl), so a
folder of long runs lists quickly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.rundir import CONFIG, EVENTS, METRICS, read_jsonl

TAIL_BYTES = 64 * 1024


@dataclass
class RunSummary:
    path: Path
    name: str
    state: str
    step: int
    max_steps: int
    reward: float | None
    eval_accuracy: float | None
    preset: str


def _tail_records(path: Path) -> list[dict]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    out = []
    for raw in data.split(b"\n")[1 if size > TAIL_BYTES else 0 :]:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def summarize_run(path: str | os.PathLike) -> RunSummary:
    root = Path(path)
    state = "unknown"
    events = read_jsonl(root / EVENTS)
    for event in reversed(events):
        if event.get("kind") == "status" and (event.get("data") or {}).get("state"):
            state = str(event["data"]["state"])
            break
    if state not in ("finished", "failed"):
        state = "interrupted" if state != "unknown" else state
    metrics = _tail_records(root / METRICS)
    step = int(metrics[-1].get("step", 0)) if metrics else 0
    reward = next((m["reward"] for m in reversed(metrics) if isinstance(m.get("reward"), (int, float))), None)
    evals = [e.get("data") or {} for e in events if e.get("kind") == "eval"]
    acc = next((d["eval/accuracy"] for d in reversed(evals) if isinstance(d.get("eval/accuracy"), (int, float))), None)
    try:
        cfg = yaml.safe_load((root / CONFIG).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    max_steps = cfg.get("max_steps") if isinstance(cfg.get("max_steps"), int) else 0
    return RunSummary(root, root.name, state, step, max_steps, reward, acc, str(cfg.get("run_name") or ""))
