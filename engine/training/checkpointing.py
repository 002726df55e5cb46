"""Checkpoints that hold everything needed to continue a run, written atomically.

:class:`TrainState` is where a run stands (its step, data order, counters, adjustments and
the round in use): the part of a checkpoint the trainer's loop moves on, so saving and
restoring read one object. :class:`Checkpointer` saves at a step boundary, with every
process taking part; :func:`restore` puts a checkpoint read by
:func:`~engine.training.checkpoint_files.read_checkpoint` back into a freshly set-up run.
The files themselves are :mod:`engine.training.checkpoint_files`.

A checkpoint is written into ``checkpoints/.tmp-step-NNNNNN`` and renamed to
``checkpoints/step-NNNNNN`` only once complete, so a directory named ``step-*`` is always
whole; ``COMPLETE`` inside it is the second guard readers check.
"""

from __future__ import annotations

import shutil

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.schema import dump_yaml
from engine.data.prompts import BatchOrder
from engine.parallel.sharding import (
    full_optimizer_state,
    full_state_dict,
    load_optimizer_state,
)
from engine.run.checkpoints import (  # noqa: F401
    COMPLETE,
    STATE,
    checkpoint_step,
    complete_checkpoints,
    latest_checkpoint,
    prune,
)
from engine.run.events import RunState
from engine.training.batch import Batch
from engine.training.optimizers import per_group
from engine.training.checkpoint_files import (  # noqa: F401
    TRAINING,
    CheckpointRefused,
    NoCheckpoint,
    SavedCheckpoint,
    read_checkpoint,
    restore_rng,
    rng_state,
    write_checkpoint,
)


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint saves besides weights, optimizer and RNG streams."""

    step: int = 0  # optimizer steps done
    num_tokens: int = 0  # prompt and completion tokens trained on so far
    skipped_updates: int = 0  # optimizer steps skipped for a non-finite loss or gradient
    adjustments: list[dict] = field(default_factory=list)  # live changes, each with the step it followed
    order: BatchOrder | None = None  # the data order: which prompts come next
    round: Batch | None = None  # the generation round the coming steps still use
    entropy_control: dict | None = None  # adaptive entropy control: its coefficient and the last entropy

    def to_json(self) -> dict[str, Any]:
        """The JSON of trainer_state.json (the round goes to files of its own)."""
        return {
            "step": self.step,
            "data_order": self.order.state_dict(),
            "num_tokens": self.num_tokens,
            "skipped_updates": self.skipped_updates,
            "adjustments": self.adjustments,
            "entropy_control": self.entropy_control,
        }


def restore(saved: SavedCheckpoint, parts, state: TrainState, dist) -> None:
    """Put a checkpoint back: optimizer, scheduler, RNG streams, the round in use, the data
    position and the counters. ``parts``: the run's :class:`~engine.training.setup.RunParts`."""
    training = saved.training
    load_optimizer_state(parts.model, parts.optimizer, training["optimizer"])
    parts.scheduler.load_state_dict(per_group(training["scheduler"], len(parts.optimizer.param_groups)))
    restore_rng(training["rng"], parts.sampling_gen, dist.rank, dist.world)
    state.round = saved.round_on(parts.device)
    state.order.load_state_dict(saved.state["data_order"])
    state.num_tokens = saved.state["num_tokens"]
    state.skipped_updates = saved.state["skipped_updates"]
    state.adjustments = saved.state["adjustments"]
    state.entropy_control = saved.state.get("entropy_control")  # absent from checkpoints written before it


def remove_partial_checkpoints(folder: Path) -> list[str]:
    """Delete ``.tmp-*`` checkpoint folders (never through a symbolic link); their names."""
    removed = []
    try:
        entries = list(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
    except OSError:
        return removed
    for path in entries:
        if path.name.startswith(".tmp-") and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


class Checkpointer:
    """Saves the run at a step boundary; every process takes part, rank 0 writes.

    A checkpoint that cannot be written (disk full, folder gone) is reported and training
    goes on: the run loses a resume point, not its progress."""

    def __init__(self, cfg, dist, parts, state: TrainState, publisher, writer, keep_round: bool) -> None:
        """``keep_round``: rounds feed several steps, so the round in use is saved too."""
        self.cfg, self.dist, self.parts, self.state = cfg, dist, parts, state
        self.publisher, self.writer, self.keep_round = publisher, writer, keep_round
        self.saved_step: int | None = None  # the step of the last checkpoint this process wrote
        if dist.is_main:
            remove_partial_checkpoints(writer.root / "checkpoints")  # left by a run killed while writing one

    def ensure(self, reason: str) -> Path | None:
        """A checkpoint of the current step: the one already written, else a new one."""
        if self.saved_step == self.state.step:
            return self.writer.checkpoint_dir(self.state.step)
        return self.save(reason)

    def save(self, reason: str) -> Path | None:
        """Checkpoint the current step; returns its folder, or None when it could not be written."""
        step, parts, dist, publisher = self.state.step, self.parts, self.dist, self.publisher
        previous = publisher.state
        publisher.set_state(RunState.CHECKPOINTING, f"saving checkpoint at step {step}")
        # every rank's sampling stream, so a resumed multi-process run samples as it would have
        sampling_states = dist.gather_object(parts.sampling_gen.get_state())
        weights = full_state_dict(parts.model)  # sharded: gathered on rank 0 (every rank takes part)
        optimizer_state = full_optimizer_state(parts.model, parts.optimizer)
        error = None
        if dist.is_main:
            try:
                write_checkpoint(
                    self.writer.checkpoint_dir(step), model=parts.model, tokenizer=parts.tokenizer, weights=weights,
                    training={"optimizer": optimizer_state, "scheduler": parts.scheduler.state_dict(),
                              "rng": rng_state(parts.sampling_gen, sampling_states)},
                    state=self.state.to_json(), config_yaml=dump_yaml(self.cfg),
                    round=self.state.round if self.keep_round else None,
                )
                prune(self.writer.root, self.cfg.save_total_limit)
            except Exception as exc:  # noqa: BLE001 - a full disk surfaces as OSError, RuntimeError (torch's
                # writer), SafetensorError...: whatever it is, the run loses a resume point, not its progress
                lines = str(exc).strip().splitlines()
                error = f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")
        error = dist.broadcast(error)  # every rank knows whether the run is resumable here
        path = None if error else self.writer.checkpoint_dir(step)
        if path is not None:
            self.saved_step = step
        if error:
            publisher.log("error", "checkpoint", f"checkpoint at step {step} could not be written: {error}", step=step)
        else:
            publisher.log("info", "checkpoint", f"checkpoint saved: {path} ({reason})", step=step,
                          data={"path": str(path)})
        if previous != RunState.CHECKPOINTING:
            publisher.set_state(previous if previous != RunState.STARTING else RunState.RUNNING)
        return path
