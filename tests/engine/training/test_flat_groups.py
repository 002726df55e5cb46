"""Groups whose advantages are all 0 are left out of the update, and nothing changes for it."""

from __future__ import annotations

import json

import pytest
import torch

import engine.algo.grpo
from engine.config.presets import load_preset
from engine.run.control import Control
from engine.run.events import RunStarted
from engine.training.trainer import Trainer


def half_flat(prompts, completions, **kwargs):
    """Every other group of 4 scores 1 throughout (no signal); in the others every other one scores."""
    return [1.0 if (i // 4) % 2 == 0 else float(i % 2) for i in range(len(completions))]


def all_flat(prompts, completions, **kwargs):
    return [1.0] * len(completions)


def one_step(tmp_path, name, reward, loss_type, keep_every_group: bool):
    cfg = load_preset("tiny-arithmetic", [
        f"output_dir={tmp_path / name}", "max_steps=1", "num_generations=4", "per_device_train_batch_size=8",
        "gradient_accumulation_steps=2", f"loss_type={loss_type}", "beta=0.0", "eval_steps=0", "save_steps=0",
        "log_completions_groups=4",
    ])
    trainer = Trainer(cfg, Control(), evaluate=False, reward_funcs=[reward])
    grads: dict[str, torch.Tensor] = {}

    def capture(event) -> None:
        if isinstance(event, RunStarted):
            step = trainer.optimizer.step

            def wrapped(*args, **kwargs):
                grads.update({n: p.grad.clone() for n, p in trainer.model.named_parameters()})
                return step(*args, **kwargs)

            trainer.optimizer.step = wrapped

    trainer.control.subscribe(capture)
    if keep_every_group:
        original = engine.algo.grpo.groups_without_advantage
        engine.algo.grpo.groups_without_advantage = lambda a, g: torch.zeros_like(original(a, g))
    try:
        summary = trainer.run()
    finally:
        if keep_every_group:
            engine.algo.grpo.groups_without_advantage = original
    assert "error" not in summary, summary
    metrics = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])
    samples = json.loads((tmp_path / name / "samples.jsonl").read_text().splitlines()[0])
    return grads, metrics, samples


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_leaving_out_flat_groups_changes_no_gradient_or_metric(tmp_path, loss_type):
    skipped, m_skip, s_skip = one_step(tmp_path, "skip", half_flat, loss_type, keep_every_group=False)
    full, m_full, s_full = one_step(tmp_path, "full", half_flat, loss_type, keep_every_group=True)
    assert m_full["frac_reward_zero_std"] == pytest.approx(0.5)
    for name, grad in full.items():
        torch.testing.assert_close(skipped[name], grad, rtol=1e-4, atol=1e-7, msg=name)
    for key in ("loss", "grad_norm", "entropy", "clip_ratio/region_mean", "num_tokens"):
        assert m_skip[key] == pytest.approx(m_full[key], rel=1e-4, abs=1e-7), key
    # the inspector's per-token log-probs of left-out rows come from sampling: the same values
    for g_skip, g_full in zip(s_skip["groups"], s_full["groups"]):
        for c_skip, c_full in zip(g_skip["completions"], g_full["completions"]):
            assert c_skip["logprobs"] == pytest.approx(c_full["logprobs"], abs=1e-4)
            assert c_skip["entropy"] == pytest.approx(c_full["entropy"], abs=1e-4)


def test_a_step_with_no_signal_at_all_still_steps_the_optimizer(tmp_path):
    skipped, m_skip, _ = one_step(tmp_path, "skip", all_flat, "dapo", keep_every_group=False)
    full, m_full, _ = one_step(tmp_path, "full", all_flat, "dapo", keep_every_group=True)
    assert m_skip["frac_reward_zero_std"] == 1.0
    assert set(skipped) == set(full)
    assert all(bool((g == 0).all()) for g in skipped.values())
    assert m_skip["loss"] == m_full["loss"] == 0.0
    assert m_skip["entropy"] == pytest.approx(m_full["entropy"], rel=1e-4)
