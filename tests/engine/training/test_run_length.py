"""How long a run trains, by TRL's rule: max_steps -1 (the default) trains num_train_epochs
passes over the training prompts, counted once the dataset is read, and the run directory's
config.yaml then holds that count; a positive max_steps wins over num_train_epochs."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.config.presets import load_preset
from engine.run.events import RunFinished, RunStarted
from engine.run.listing import summarize_run
from engine.run.rundir import read_jsonl
from tests.conftest import TINY_MODEL, train, write

pytestmark = pytest.mark.slow

ROWS = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(2) for b in range(3)]  # 6 prompts


def _preset(tmp_path, *lines: str):
    data = write(tmp_path / "prompts.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))
    text = "\n".join([
        f"model_name_or_path: {TINY_MODEL}",
        f"dataset: {{path: {data}, eval_size: 0}}",
        "reward_funcs: [accuracy]",
        "num_generations: 4",
        "per_device_train_batch_size: 8",  # 2 prompts per step
        "max_completion_length: 4",
        "gradient_checkpointing: false",
        "log_completions_groups: 0",
        f"output_dir: {tmp_path / 'runs' / 'run'}",
        *lines, ""])
    return load_preset(str(write(tmp_path / "preset.yaml", text)))


def test_max_steps_minus_one_trains_num_train_epochs_of_the_prompts(tmp_path):
    cfg = _preset(tmp_path, "num_train_epochs: 1.5")
    assert cfg.max_steps == -1  # the default: the dataset decides
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    # 1.5 passes over 6 prompts at 2 prompts a step: ceil(4.5) = 5 steps
    assert [r["step"] for r in read_jsonl(trainer.run_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    assert [e.total_steps for e in events if isinstance(e, RunStarted)] == [5]
    saved = yaml.safe_load((trainer.run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert (saved["max_steps"], saved["num_train_epochs"]) == (5, 1.5)  # attach, view and compare read the total
    listed = summarize_run(trainer.run_dir)
    assert (listed.step, listed.max_steps) == (5, 5)


def test_a_positive_max_steps_wins_over_num_train_epochs(tmp_path):
    trainer, events = train(_preset(tmp_path, "num_train_epochs: 5", "max_steps: 2"), evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    assert [r["step"] for r in read_jsonl(trainer.run_dir / "metrics.jsonl")] == [1, 2]
    assert yaml.safe_load((trainer.run_dir / "config.yaml").read_text(encoding="utf-8"))["max_steps"] == 2
