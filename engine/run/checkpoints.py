"""A run directory's checkpoint folders: which are complete, the newest, the step each holds,
pruning to ``save_total_limit``. Reading and writing what is inside them is
:mod:`engine.training.checkpointing`; this needs no torch, so run listings stay fast.

A checkpoint is written into ``checkpoints/.tmp-step-NNNNNN`` and renamed to
``checkpoints/step-NNNNNN`` only once complete; ``COMPLETE`` inside it is the second guard.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

COMPLETE = "COMPLETE"
STATE = "trainer_state.json"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (half-written ones are never listed)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / COMPLETE).exists() and (p / STATE).exists()]
    return sorted(found, key=lambda p: p.name)


def prune(run_dir: Path, keep: int | None) -> None:
    """``save_total_limit``: keep only the newest ``keep`` complete checkpoints."""
    if not keep or keep <= 0:
        return
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_step(path: Path) -> int:
    return int(json.loads((Path(path) / STATE).read_text(encoding="utf-8"))["step"])


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def resume_point(run_dir: Path) -> int | None:
    """The step the newest complete checkpoint holds: where ``grpo-tui resume`` continues."""
    newest = latest_checkpoint(run_dir)
    try:
        return checkpoint_step(newest) if newest is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resume_plan(checkpoint: int, reached: int) -> str:
    """What resuming costs, in one line: ``resume_plan(40, 46)`` is "resume from checkpoint
    at step 40 (the run reached step 46: 6 steps are redone)". Steps after the checkpoint
    are trained again (their records are dropped first), so the user knows what is lost."""
    redo = max(0, reached - checkpoint)
    if redo == 0:
        return f"resume from checkpoint at step {checkpoint} (the run reached step {reached}: no step is redone)"
    return (f"resume from checkpoint at step {checkpoint} (the run reached step {reached}: "
            f"{redo} step{'s are' if redo != 1 else ' is'} redone)")
