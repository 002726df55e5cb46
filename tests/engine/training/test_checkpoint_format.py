"""Checkpoints hold tensors and JSON only: every file reads as data, a checkpoint of the
pickling format 1 or one tampered with is refused with one clear line (nothing in it runs),
and a run resumed in the middle of a reused round goes on exactly as it would have."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_config, train
from safetensors.torch import load_file

from engine.run.control import Control
from engine.run.events import RunFinished
from engine.run.rundir import read_jsonl
from engine.training import checkpointing as ckpt
from engine.training.trainer import NoCheckpoint, Trainer

# Two steps per round, each round used twice (μ = 2): a checkpoint at step 3 falls in the
# middle of the first round, so the round itself is part of it.
REUSED_ROUNDS = ["num_iterations=2", "steps_per_generation=2", "per_device_train_batch_size=16",
                 "log_completions_groups=1", "dataset.task_args.eval_size=16"]
TIMING = {"time", "step_time", "time/generate", "time/reward", "time/update", "time/eval", "completions_per_s", "elapsed_s",
          "eta_s"}


@dataclass
class OldRound:
    """Stands for the Batch dataclass that format-1 checkpoints pickled."""

    rows: list


class Payload:
    """What a tampered checkpoint could hold: unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def run_with_checkpoint(tmp_path_factory) -> Path:
    """A 4-step run with a checkpoint at step 3, in the middle of a reused round."""
    tmp = tmp_path_factory.mktemp("ckpt")
    trainer, events = train(tiny_config(tmp, "max_steps=4", "save_steps=3", *REUSED_ROUNDS), evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    return trainer.run_dir


def copy_for_resume(run_dir: Path, dest: Path) -> Path:
    """The run as if it had been killed after its step-3 checkpoint."""
    shutil.copytree(run_dir, dest)
    shutil.rmtree(dest / "final", ignore_errors=True)
    return dest


def test_every_file_of_a_checkpoint_reads_as_data(run_with_checkpoint):
    folder = ckpt.latest_checkpoint(run_with_checkpoint)
    assert folder.name == "step-000003"
    seen = set()
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".pt":
            torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            load_file(path)
        elif path.is_file():
            path.read_text(encoding="utf-8")  # config.yaml, the chat template, COMPLETE: text
        seen.add(path.name)
    assert {"training_state.pt", "round.pt", "round.json", "model.safetensors", "trainer_state.json"} <= seen
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["format"] == 2 and state["step"] == 3 and state["written_by"].startswith("grpo-tui")


def test_resumed_in_the_middle_of_a_round_matches_the_uninterrupted_run(run_with_checkpoint, tmp_path):
    resumed_dir = copy_for_resume(run_with_checkpoint, tmp_path / "resumed")
    control, events = Control(), []
    control.subscribe(events.append)
    Trainer.resume(resumed_dir, control=control, evaluate=False).run()
    assert isinstance(events[-1], RunFinished), events[-1]

    def comparable(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(path)]

    # the same process, the same arithmetic: the steps after the checkpoint are identical
    assert comparable(resumed_dir / "metrics.jsonl") == comparable(run_with_checkpoint / "metrics.jsonl")
    assert [r["step"] for r in read_jsonl(resumed_dir / "metrics.jsonl")] == [1, 2, 3, 4]


def write_format_1(folder: Path) -> None:
    """Rewrite a checkpoint as grpo-tui 0.1.0 wrote it: pickled classes and RNG tuples in
    training_state.pt, no format in trainer_state.json."""
    torch.save({"optimizer": {}, "scheduler": {}, "batch": OldRound(rows=[{"prompt": "1+1="}]),
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}},
               folder / "training_state.pt")
    for name in ("round.pt", "round.json"):
        (folder / name).unlink(missing_ok=True)
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    del state["format"], state["written_by"]
    (folder / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")


def test_a_format_1_checkpoint_is_refused_with_one_clear_line(run_with_checkpoint, tmp_path):
    run_dir = copy_for_resume(run_with_checkpoint, tmp_path / "old")
    folder = ckpt.latest_checkpoint(run_dir)
    write_format_1(folder)
    with pytest.raises(NoCheckpoint) as caught:
        Trainer.resume(run_dir)
    message = str(caught.value)
    assert "written by grpo-tui 0.1.0 (checkpoint format 1)" in message and str(folder) in message
    assert "would run code" in message and "model_name_or_path" in message

    result = subprocess.run([sys.executable, "-m", "grpo_tui", "resume", str(run_dir), "--headless"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"grpo-tui: {message}"  # one line, no traceback


@pytest.mark.parametrize("name", ["training_state.pt", "round.pt"])
def test_a_tampered_checkpoint_is_refused_and_nothing_in_it_runs(run_with_checkpoint, tmp_path, name):
    run_dir = copy_for_resume(run_with_checkpoint, tmp_path / "tampered")
    folder = ckpt.latest_checkpoint(run_dir)
    marker = tmp_path / "code-ran"
    blob = torch.load(folder / name, map_location="cpu", weights_only=True)
    blob["extra"] = Payload(marker)
    torch.save(blob, folder / name)

    with pytest.raises(ckpt.CheckpointRefused, match=f"{name} holds a pickled Python object \\(io.open\\)"):
        Trainer.resume(run_dir)
    assert not marker.exists()

    # a trainer pointed at the checkpoint directly fails the same way, as one line
    control, events = Control(), []
    control.subscribe(events.append)
    direct = Trainer(tiny_config(tmp_path, *REUSED_ROUNDS), control=control, run_dir=run_dir, evaluate=False)
    direct.resume_from = folder
    summary = direct.run()
    assert "CheckpointRefused" in summary["error"] and "\n" not in summary["error"]
    assert not marker.exists()
