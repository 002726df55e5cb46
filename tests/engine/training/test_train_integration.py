"""Train the real bundled tiny model for a few steps and check what a user gets."""

from __future__ import annotations

import json
import math

import pytest

from conftest import TINY_MODEL, tiny_config, train
from engine.run.events import RunFinished, StepMetrics, StepSamples
from engine.run.rundir import read_run

TRL_METRICS = [
    "reward", "reward_std", "rewards/accuracy/mean", "rewards/accuracy/std", "frac_reward_zero_std", "kl",
    "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
    "completions/mean_length", "completions/clipped_ratio", "loss", "grad_norm", "learning_rate",
    "num_tokens", "step_time", "advantage/std", "accuracy", "time/generate", "time/reward", "time/update",
]


def test_run_directory_is_complete(short_run):
    trainer, events = short_run
    run = read_run(trainer.run_dir)
    steps = [m["step"] for m in run.metrics]
    assert steps == [0, 1, 2, 3, 4, 5, 6]  # step 0 holds the evaluation before training
    for record in run.metrics[1:]:
        missing = [k for k in TRL_METRICS if k not in record]
        assert not missing, missing
        assert all(v is None or math.isfinite(v) for v in record.values() if isinstance(v, float))
    assert "eval/accuracy" in run.metrics[0] and "eval/accuracy" in run.metrics[-1]
    assert run.state == "finished"
    assert "model_name_or_path" in run.config_text

    assert [s["step"] for s in run.samples] == [1, 2, 3, 4, 5, 6]
    group = run.samples[0]["groups"][0]
    assert len(run.samples[0]["groups"]) == 2
    assert len(group["completions"]) == 8
    c = group["completions"][0]
    assert {"text", "reward", "rewards", "advantage", "length", "truncated", "tokens", "logprobs", "entropy"} <= set(c)
    assert len(c["tokens"]) == len(c["logprobs"]) == len(c["entropy"]) == c["length"]
    assert "accuracy" in c["rewards"]

    kinds = {e["kind"] for e in run.events}
    assert {"status", "eval", "checkpoint", "summary"} <= kinds
    ckpt = trainer.run_dir / "checkpoints" / "step-000003"
    assert (ckpt / "COMPLETE").exists() and (ckpt / "model.safetensors").exists()
    assert (ckpt / "training_state.pt").exists()
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 3

    kinds = [type(e) for e in events]
    assert kinds.count(StepMetrics) == 6 and kinds.count(StepSamples) == 6
    assert isinstance(events[-1], RunFinished)


def test_final_model_loads_and_parameters_changed(short_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trainer, _ = short_run
    final = trainer.run_dir / "final"
    trained = AutoModelForCausalLM.from_pretrained(final)
    AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    diffs = [float((a - b).abs().max().detach()) for a, b in zip(trained.parameters(), base.parameters())]
    assert max(diffs) > 0
    assert trainer.summary["final_model"] == str(final)
    assert 0.0 <= trainer.summary["eval_accuracy_before"] <= 1.0


def test_training_raises_mean_reward(tmp_path):
    """80 steps of the tiny preset: the last tenth's reward beats the first tenth's."""
    cfg = tiny_config(tmp_path, "max_steps=80", "log_completions_groups=0", "dataset.task_args.eval_size=32")
    trainer, events = train(cfg, evaluate=False)
    rewards = [e.metrics["reward"] for e in events if isinstance(e, StepMetrics)]
    assert len(rewards) == 80
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > first + 0.05, (first, last)


def test_same_seed_same_metrics_on_cpu(tmp_path):
    def losses(sub):
        cfg = tiny_config(tmp_path / sub, "max_steps=3", "log_completions_groups=0")
        _, events = train(cfg, evaluate=False)
        return [(e.metrics["reward"], e.metrics["loss"]) for e in events if isinstance(e, StepMetrics)]

    assert losses("a") == losses("b")


@pytest.mark.parametrize("overrides", [
    ["loss_type=grpo", "scale_rewards=batch", "num_iterations=2", "beta=0.0"],
    ["loss_type=dr_grpo", "importance_sampling_level=sequence", "mask_truncated_completions=true",
     "per_device_train_batch_size=16", "gradient_accumulation_steps=2", "lr_scheduler_type=cosine", "warmup_steps=1",
     "top_k=5", "top_p=0.9", "repetition_penalty=1.1"],
    ["bf16=true", "gradient_checkpointing=true", "min_p=0.05", "delta=1.5", "epsilon_high=0.28"],
])
def test_algorithm_variants_train(tmp_path, overrides):
    cfg = tiny_config(tmp_path, "max_steps=2", "log_completions_groups=1", *overrides)
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    metrics = [e.metrics for e in events if isinstance(e, StepMetrics)]
    assert len(metrics) == 2 and all(math.isfinite(m["loss"]) for m in metrics)
    assert (trainer.run_dir / "final" / "model.safetensors").exists()
