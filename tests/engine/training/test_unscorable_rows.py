"""A completion that no reward function scored trains as TRL 1.16 trains it: advantage 0, and
left out of its group's baseline and of the logged reward statistics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import tiny_config, train


def one_none_per_group(prompts, completions, **kwargs):
    """Each group of 4 scores [1, 0, None, 1]."""
    return [(1.0, 0.0, None, 1.0)[i % 4] for i in range(len(completions))]


def test_an_unscorable_completion_gets_advantage_zero_and_stays_out_of_the_baseline(tmp_path):
    """Per group: the scored [1, 0, 1] have mean 2/3 and std √(1/3), so the advantages are
    (1/3)/(.57735 + 1e-4) = .5772, −1.1545, 0 (the None), .5772; scored as 0 they would be
    ±.866. ``reward`` is the mean over scored rows, 2/3; ``reward_std`` the std of all scored
    rows of the batch (k groups: √((6k/9)/(3k − 1)))."""
    cfg = tiny_config(tmp_path, "max_steps=1", "num_generations=4", "per_device_train_batch_size=8",
                      "gradient_accumulation_steps=2", "beta=0.0", "log_completions_groups=4")
    trainer, _ = train(cfg, evaluate=False, reward_funcs=[one_none_per_group])
    assert "error" not in trainer.summary, trainer.summary
    samples = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    std = math.sqrt(1 / 3)
    expected = [(1 / 3) / (std + 1e-4), (-2 / 3) / (std + 1e-4), 0.0, (1 / 3) / (std + 1e-4)]
    for group in samples["groups"]:
        assert [c["advantage"] for c in group["completions"]] == pytest.approx(expected, abs=1e-4)
        assert group["completions"][2]["reward"] is None
        assert group["reward_mean"] == pytest.approx(2 / 3, abs=1e-4)
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    scored = torch.tensor([1.0, 0.0, 1.0] * 4)  # 16 completions, 4 groups
    assert metrics["reward"] == pytest.approx(2 / 3, rel=1e-5)
    assert metrics["reward_std"] == pytest.approx(float(scored.std()), rel=1e-5)
    assert metrics["frac_reward_zero_std"] == 0.0
