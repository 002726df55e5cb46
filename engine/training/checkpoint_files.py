"""What a checkpoint folder holds, and how it is read without running code from it.

A run directory may come from anywhere (a colleague's machine, a download), and
``torch.load`` of a pickle runs whatever the pickle names. So every file of a checkpoint is
data only, and each is read as data:

```
checkpoints/step-NNNNNN/
  model.safetensors, config.json, tokenizer files   save_pretrained (LoRA: the adapter)
  config.yaml          the run's config, live adjustments included
  trainer_state.json   format, writer, step, data order, counters, adjustments, entropy control
  training_state.pt    optimizer and scheduler state dicts, RNG streams: tensors and plain
                       containers, read with ``torch.load(weights_only=True)``
  round.pt, round.json the generation round later steps still use (when rounds are reused):
                       its tensors by name, and its rows, completions and statistics as JSON
  COMPLETE
```

Format 1 (grpo-tui 0.1.0) pickled the round's classes and the RNG state tuples; such a
checkpoint is refused with a message that says what to do instead (:func:`read_checkpoint`).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.rollout.backend import ROLLOUT_FIELDS, Rollout
from engine.run.checkpoints import COMPLETE, STATE
from engine.training.batch import Batch

FORMAT = 2
"""Bumped whenever a checkpoint's files change in a way an older reader would misread."""

TRAINING = "training_state.pt"
ROUND_TENSORS = "round.pt"
ROUND_PARTS = "round.json"
BATCH_TENSORS = ("advantages", "mask", "old_logps", "ref_logps", "rewards_total", "rewards_per_func",
                 "token_logps", "token_entropy")
"""The tensor fields of a :class:`Batch` besides its rollout's."""


class NoCheckpoint(ValueError):
    """Resume was asked for a run directory without a complete checkpoint."""


class CheckpointRefused(NoCheckpoint):
    """A checkpoint that is not read, because reading it could run code or would misread it;
    ``str(e)`` is one line that says what to do instead."""


def written_by() -> str:
    """``grpo-tui <version>``, as a checkpoint records who wrote it."""
    try:
        return f"grpo-tui {metadata.version('grpo-tui')}"
    except metadata.PackageNotFoundError:
        return "grpo-tui (version unknown)"


# --------------------------------------------------------------------------- RNG streams as data


def rng_state(sampling: torch.Generator, sampling_per_rank: list | None) -> dict[str, Any]:
    """Every random stream a run draws from, as tensors and lists of numbers."""
    version, keys, gauss = random.getstate()
    kind, np_keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "keys": list(keys), "gauss_next": gauss},
        "numpy": {"kind": kind, "keys": np_keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "sampling": sampling.get_state(),
        "sampling_per_rank": sampling_per_rank,  # every process's sampling stream, when several train
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(rng: dict[str, Any], sampling: torch.Generator, rank: int, world: int) -> None:
    """Put back what :func:`rng_state` saved: this process's sampling stream is its own when
    the run had as many processes, else the one rank 0 saved. A run resumed on another kind of
    device (saved on a GPU, resumed on the CPU) keeps its freshly seeded sampling stream."""
    py = rng["python"]
    random.setstate((py["version"], tuple(py["keys"]), py["gauss_next"]))
    npy = rng["numpy"]
    np.random.set_state((npy["kind"], np.array(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(rng["torch"])
    per_rank = rng.get("sampling_per_rank")
    state = per_rank[rank] if per_rank and len(per_rank) == world else rng["sampling"]
    if state.numel() == sampling.get_state().numel():  # a CPU stream's state and a CUDA one's differ in kind
        sampling.set_state(state)
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


# --------------------------------------------------------------------------- the round as data


def round_tensors(batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A round as a flat ``{name: tensor}`` and the JSON of everything else (rows,
    completions, statistics, and the device of each tensor)."""
    tensors = {f"rollout.{f}": getattr(batch.rollout, f) for f in ROLLOUT_FIELDS}
    tensors.update({name: getattr(batch, name) for name in BATCH_TENSORS})
    tensors = {name: t for name, t in tensors.items() if t is not None}
    parts = {"rows": batch.rows, "completions": batch.completions, "stats": batch.stats,
             "devices": {name: str(t.device) for name, t in tensors.items()}}
    if batch.episodes is not None:  # a tool run's turns, for the samples written after a resume
        parts["episodes"] = batch.episodes
    return tensors, parts


def round_from_tensors(tensors: dict[str, torch.Tensor], parts: dict[str, Any], device: torch.device) -> Batch:
    """The round :func:`round_tensors` saved, each tensor back where it was built (the run's
    device, or the CPU)."""
    def get(name: str) -> torch.Tensor | None:
        t = tensors.get(name)
        if t is None:
            return None
        return t.to(device) if parts["devices"].get(name, "cpu") != "cpu" else t

    rollout = Rollout(**{f: get(f"rollout.{f}") for f in ROLLOUT_FIELDS})
    return Batch(rollout=rollout, rows=parts["rows"], completions=parts["completions"], stats=parts["stats"],
                 episodes=parts.get("episodes"), **{name: get(name) for name in BATCH_TENSORS})


# --------------------------------------------------------------------------- writing


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, and the folders, to the disk; modes made uniform
    (0644 files, 0755 folders) whatever the writers' defaults were."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o644)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif path.is_dir():
            os.chmod(path, 0o755)
            fsync_dir(path)
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk, where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system flushes folders
    finally:
        os.close(fd)


def write_checkpoint(final_path: Path, *, model, tokenizer, weights: dict | None, training: dict[str, Any],
                     state: dict[str, Any], config_yaml: str, round: Batch | None) -> Path:
    """Write a checkpoint into ``.tmp-<name>`` beside ``final_path`` and rename it once whole.

    ``weights``: the whole state dict when the model is sharded (gathered beforehand), else
    None (read from ``model``); ``training``: optimizer, scheduler and RNG state (tensors and
    plain containers); ``state``: the JSON of :class:`~engine.training.checkpointing.TrainState`;
    ``round``: the round later steps still use, or None."""
    final_path = Path(final_path)
    tmp = final_path.parent / f".tmp-{final_path.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=weights)
        tokenizer.save_pretrained(tmp)
        torch.save(training, tmp / TRAINING)
        if round is not None:
            tensors, parts = round_tensors(round)
            torch.save(tensors, tmp / ROUND_TENSORS)
            # rows are kept for the record only (their rewards are computed): a value JSON cannot hold is kept as text
            (tmp / ROUND_PARTS).write_text(json.dumps(parts, default=str), encoding="utf-8")
        state = {"format": FORMAT, "written_by": written_by(), **state}
        (tmp / STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
        (tmp / COMPLETE).write_text("ok\n", encoding="utf-8")
        fsync_tree(tmp)  # on disk before the name says complete: a power loss leaves no empty file
        if final_path.exists():
            shutil.rmtree(final_path)
        tmp.rename(final_path)
        fsync_dir(final_path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final_path


# --------------------------------------------------------------------------- reading


@dataclass
class SavedCheckpoint:
    """A checkpoint's data as read (tensors memory-mapped), before it is put back into a run."""

    path: Path
    state: dict[str, Any]  # trainer_state.json
    training: dict[str, Any]  # training_state.pt
    round_parts: dict[str, Any] | None = None
    round_tensors: dict[str, torch.Tensor] | None = None

    def round_on(self, device: torch.device) -> Batch | None:
        """The saved round (None when none was saved), its tensors on ``device`` or the CPU."""
        if self.round_tensors is None or self.round_parts is None:
            return None
        return round_from_tensors(self.round_tensors, self.round_parts, device)


def read_checkpoint(path: str | Path) -> SavedCheckpoint:
    """Read a checkpoint as data: JSON, and tensors through ``torch.load(weights_only=True)``.

    Raises :class:`CheckpointRefused` for a checkpoint of another format (one written by
    grpo-tui 0.1.0 pickled Python objects) or a file holding anything but tensors and plain
    containers; nothing from such a file runs."""
    path = Path(path)
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    check_format(path, state)
    saved = SavedCheckpoint(path=path, state=state, training=_load_tensors(path / TRAINING))
    if (path / ROUND_TENSORS).exists():
        saved.round_tensors = _load_tensors(path / ROUND_TENSORS)
        saved.round_parts = json.loads((path / ROUND_PARTS).read_text(encoding="utf-8"))
    return saved


def check_format(path: Path, state: dict[str, Any]) -> None:
    """Refuse a checkpoint this version does not read, saying why and what to do instead."""
    version = state.get("format", 1)
    if version == FORMAT:
        return
    if version == 1:
        raise CheckpointRefused(
            f"checkpoint {path} was written by grpo-tui 0.1.0 (checkpoint format 1), which pickled Python "
            f"objects; it is not loaded, since loading it would run code from the run directory: resume it "
            f"with grpo-tui 0.1.0, or start a new run from its model weights ({path} is a save_pretrained "
            f"folder: --set model_name_or_path={path})")
    raise CheckpointRefused(
        f"checkpoint {path} was written by {state.get('written_by', 'another grpo-tui')} (checkpoint format "
        f"{version}); this {written_by()} reads format {FORMAT}: resume it with the version that wrote it")


def _load_tensors(file: Path) -> dict[str, Any]:
    """``torch.load`` that reads tensors and plain containers only, memory-mapped (the ranks of
    a run share one copy in memory); anything else is refused before it is built."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({named.group(1)})" if named else ""
        raise CheckpointRefused(
            f"checkpoint file {file} holds a pickled Python object{what}, not only tensors; it is not loaded, "
            f"since loading it would run code from the run directory") from None
