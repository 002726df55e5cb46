"""Checkpoints that hold everything needed to continue a run, written atomically.

A checkpoint is written into ``checkpoints/.tmp-step-NNNNNN`` and renamed to
``checkpoints/step-NNNNNN`` only once complete, so a directory named ``step-*`` is always
whole; ``COMPLETE`` inside it is the second guard readers check.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from engine.config.schema import dump_yaml
from engine.parallel.sharding import load_optimizer_state
from engine.run.checkpoints import COMPLETE, STATE, checkpoint_step, complete_checkpoints, latest_checkpoint, prune  # noqa: F401

TRAINING = "training_state.pt"


def save_checkpoint(trainer, final_path: Path, sampling_per_rank: list | None = None,
                    weights: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Everything to continue ``trainer``'s run, atomically; ``sampling_per_rank``: every
    process's sampling-generator state when several train the run; ``weights`` and
    ``optimizer_state``: the whole of each, gathered beforehand when the model is sharded
    (:mod:`engine.parallel.sharding`), else read from the trainer."""
    final_path = Path(final_path)
    tmp = final_path.parent / f".tmp-{final_path.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        trainer.model.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
        trainer.tokenizer.save_pretrained(tmp)
        torch.save(
            {
                "optimizer": trainer.optimizer.state_dict() if optimizer_state is None else optimizer_state,
                "scheduler": trainer.scheduler.state_dict(),
                "batch": trainer.batch if trainer.reuses_batch else None,  # the round later steps still use
                "rng": {
                    "python": random.getstate(),
                    "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state(),
                    "sampling": trainer.sampling_gen.get_state(),
                    "sampling_per_rank": sampling_per_rank,
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                },
            },
            tmp / TRAINING,
        )
        state = {
            "step": trainer.step,
            "data_order": trainer.order.state_dict(),
            "num_tokens": trainer.num_tokens,
            "skipped_updates": trainer.skipped_updates,
            "adjustments": trainer.adjustments,
        }
        (tmp / STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        (tmp / "config.yaml").write_text(dump_yaml(trainer.cfg), encoding="utf-8")
        (tmp / COMPLETE).write_text("ok\n", encoding="utf-8")
        if final_path.exists():
            shutil.rmtree(final_path)
        tmp.rename(final_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final_path


def load_training_state(trainer, path: Path) -> dict:
    """Restore optimizer, scheduler, RNG streams and the data position saved by save_checkpoint;
    returns trainer_state.json (step, counters, adjustments)."""
    path = Path(path)
    # our own file; mapped, not read: the ranks of a run share one copy of it in memory
    blob = torch.load(path / TRAINING, map_location="cpu", weights_only=False, mmap=True)
    load_optimizer_state(trainer.model, trainer.optimizer, blob["optimizer"])
    trainer.scheduler.load_state_dict(blob["scheduler"])
    rng = blob["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    per_rank = rng.get("sampling_per_rank")
    rank, world = trainer.dist.rank, trainer.dist.world
    trainer.sampling_gen.set_state(per_rank[rank] if per_rank and len(per_rank) == world else rng["sampling"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    trainer.batch = blob.get("batch")
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    trainer.order.load_state_dict(state["data_order"])
    return state
