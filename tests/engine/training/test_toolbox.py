"""The DAPO / Dr.GRPO / GDPO toolbox, LoRA and pass@k, each trained for real on the tiny model."""

from __future__ import annotations

import math
import warnings

import pytest

from conftest import tiny_config, train
from engine.config.presets import load_preset
from engine.run.events import RunFinished, StepMetrics


def metrics_of(events) -> list[dict]:
    return [e.metrics for e in events if isinstance(e, StepMetrics)]


def test_dapo_preset_runs_and_learns(tmp_path):
    cfg = load_preset("tiny-dapo", [f"output_dir={tmp_path / 'run'}", "dataset.task_args.eval_size=64"])
    trainer, events = train(cfg)
    assert isinstance(events[-1], RunFinished)
    steps = metrics_of(events)
    assert len(steps) == 60
    for m in steps:
        assert 0.0 <= m["dynamic_sampling/frac_dropped"] < 1.0
        if m["dynamic_sampling/rounds"] <= cfg.dynamic_sampling_max_tries:  # refilled in time: all groups informative
            assert m["frac_reward_zero_std"] == 0.0
    assert "rewards/length/mean" in steps[0]
    summary = trainer.summary
    assert summary["eval_accuracy_after"] > summary["eval_accuracy_before"]


def test_normalize_then_sum_top_entropy_sync_ref_and_rounds(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=4", "log_completions_groups=1",
                      "reward_funcs=[accuracy, length]", "reward_kwargs={length: {max_length: 8, cache_length: 4}}",
                      "multi_objective_aggregation=normalize_then_sum", "top_entropy_quantile=0.3",
                      "beta=0.04", "sync_ref_model=true", "ref_model_sync_steps=1", "ref_model_mixup_alpha=0.5",
                      "per_device_train_batch_size=16", "steps_per_generation=2", "num_generations=8")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished)
    steps = metrics_of(events)
    assert len(steps) == 4 and all(math.isfinite(m["loss"]) for m in steps)
    # a round of 32 completions feeds 2 optimizer steps: the second step reuses the round's rewards
    assert steps[0]["reward"] == steps[1]["reward"] and steps[2]["reward"] == steps[3]["reward"]
    assert any(e for e in events if getattr(e, "category", "") == "ref_sync")
    assert steps[1]["kl"] >= 0.0


def test_pass_at_k_evaluation(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1", "log_completions_groups=0", "num_generations_eval=4",
                      "dataset.task_args.eval_size=32")
    trainer, _ = train(cfg)
    before = trainer.eval_before
    assert 0.0 <= before["eval/mean@4"] <= before["eval/pass@4"] <= 1.0
    assert before["eval/pass@4"] >= before["eval/mean@4"]


def test_lora_adapter_reference_is_the_base_and_saves_merged(tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(tmp_path, "max_steps=2", "log_completions_groups=0", "beta=0.04", "save_steps=2",
                      "learning_rate=1e-3", "peft={r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj], merge_on_save: true}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, events = train(cfg, evaluate=False)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]  # no library deprecation in the console
    assert isinstance(events[-1], RunFinished), events[-1]
    assert trainer.ref_model is None  # no second copy: the adapter switched off is the reference
    steps = metrics_of(events)
    assert steps[1]["kl"] > 0.0  # the adapter moved the policy away from the base
    ckpt = trainer.run_dir / "checkpoints" / "step-000002"
    assert (ckpt / "adapter_model.safetensors").exists() and (ckpt / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "final")  # a plain model, adapter merged
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in trainer.model.get_base_model().parameters())


def test_ranked_groups_train_without_generation(tmp_path):
    import json
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(300):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        right = a + b
        group = [{"response": str(right), "rank": 1}, {"response": str(right + 1), "rank": 2},
                 {"response": str(right + 10), "rank": 3}, {"response": str(right * 3), "rank": 4}]
        rng.shuffle(group)
        lines.append(json.dumps({"prompt": f"{a:02d}+{b:02d}=", "group": group}))
    data = tmp_path / "ranked.jsonl"
    data.write_text("\n".join(lines) + "\n")
    cfg = tiny_config(tmp_path, "max_steps=15", "log_completions_groups=1", "dataset.task=null",
                      f"dataset.path={data}", "dataset.format=ranked", "dataset.eval_size=40",
                      "num_generations=4", "per_device_train_batch_size=32", "learning_rate=1e-4", "beta=0.0")
    trainer, events = train(cfg)
    assert isinstance(events[-1], RunFinished), events[-1]
    steps = metrics_of(events)
    assert "rewards/rank_score/mean" in steps[0] and "time/generate" in steps[0]
    assert steps[0]["time/generate"] == 0.0  # nothing sampled
    before, after = trainer.eval_before["eval/ranking_accuracy"], trainer.last_eval["eval/ranking_accuracy"]
    assert after > before + 0.02, (before, after)
