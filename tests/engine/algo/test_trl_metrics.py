"""Statistics logged under TRL's names mean what TRL 1.16 logs; our own quantities have names of
their own (``reward_std_within_group``, ``frac_group_reward_zero_std``,
``clip_ratio/region_token_mean``)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.algo import grpo
from engine.training.metrics import mean_over_micro_batches, reward_metrics

NONE = float("nan")


def test_reward_std_is_the_std_over_the_whole_batch():
    """Rewards [1, 0 | 1, 1] (G = 2): TRL's reward_std is the std of all four: mean .75, Bessel
    √((3·.0625 + .5625)/3) = .5; the mean within-group std is (.7071 + 0)/2 = .3536."""
    _, stats = grpo.group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2)
    assert float(stats["reward_std"]) == pytest.approx(0.5)
    assert float(stats["reward_std_within_group"]) == pytest.approx(math.sqrt(0.5) / 2)


def test_frac_reward_zero_std_with_batch_scaling_asks_whether_the_batch_std_is_zero():
    """[1, 0 | 1, 1] with scale_rewards batch: the batch std .5 is not 0 → 0.0, although one group
    of two is flat (frac_group_reward_zero_std .5). All equal → 1.0. Group scaling: 1 row in 2."""
    _, stats = grpo.group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2, "batch")
    assert float(stats["frac_reward_zero_std"]) == 0.0
    assert float(stats["frac_group_reward_zero_std"]) == 0.5
    _, stats = grpo.group_advantages(torch.ones(4), 2, "batch")
    assert float(stats["frac_reward_zero_std"]) == 1.0
    _, stats = grpo.group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2, "group")
    assert float(stats["frac_reward_zero_std"]) == 0.5


def test_frac_reward_zero_std_with_normalize_then_sum_is_the_batch_s():
    """normalize_then_sum, G = 2, F = 1, [1, 0 | 1, 1]: s = [.707, −.707, 0, 0] has a batch std ≠ 0
    → TRL's frac_reward_zero_std 0.0; the second group's rewards agree → ours .5."""
    _, stats = grpo.normalize_then_sum_advantages(torch.tensor([[1.0], [0.0], [1.0], [1.0]]), torch.ones(1), 2)
    assert float(stats["frac_reward_zero_std"]) == 0.0
    assert float(stats["frac_group_reward_zero_std"]) == 0.5
    assert float(stats["reward_std"]) == pytest.approx(0.5)  # of the weighted totals [1, 0, 1, 1]


def test_a_reward_std_of_fewer_than_two_values_is_missing_not_zero():
    """``rewards/a/std`` over one scored value is NaN (written as null), as TRL's nanstd;
    ``reward`` is the mean over the rows some function scored: (1 + 3)/2 = 2."""
    per_func = torch.tensor([[1.0, NONE], [NONE, 3.0], [NONE, NONE]])
    m = reward_metrics(torch.tensor([1.0, 3.0, NONE]), per_func, ["a", "b"])
    assert math.isnan(m["rewards/a/std"]) and math.isnan(m["rewards/b/std"])
    assert m["reward"] == 2.0 and m["rewards/a/mean"] == 1.0


def test_micro_batch_statistics_are_the_mean_of_the_micro_batches_values():
    """Entropy 1.0 over 30 tokens and 2.0 over 10: TRL logs (1 + 2)/2 = 1.5, not the token-weighted
    (30 + 20)/40 = 1.25. A NaN value (e.g. no sequence with tokens) is left out."""
    stats = mean_over_micro_batches([{"entropy": 1.0, "clip_ratio/low_min": NONE},
                                     {"entropy": 2.0, "clip_ratio/low_min": 0.25}])
    assert stats == {"entropy": 1.5, "clip_ratio/low_min": 0.25}


def test_gspo_clip_ratios_count_sequences():
    """Sequence level, ε = .2, A = [1, 1]: sequence 1 (3 tokens) has ratio e^(mean(log 1.5, log 1.5,
    log 1.5)) = 1.5 > 1.2 (clipped), sequence 2 (1 token) ratio 1. TRL: 1 sequence of 2 → .5
    (counting tokens would say 3/4); the token share stays as clip_ratio/region_token_mean = .75."""
    logps = torch.log(torch.tensor([[1.5, 1.5, 1.5], [1.0, 7.0, 7.0]]))
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    _, stats = grpo.policy_loss(logps, torch.zeros(2, 3), torch.ones(2), mask, loss_type="bnpo",
                                importance_sampling_level="sequence")
    assert stats["clip_ratio/high_mean"].item() == 0.5 and stats["clip_ratio/region_mean"].item() == 0.5
    assert stats["clip_ratio/region_token_mean"].item() == 0.75
    assert stats["clip_ratio/high_max"].item() == 1.0 and stats["clip_ratio/low_min"].item() == 0.0


def test_low_min_and_high_max_are_per_sequence_extremes():
    """Token level, ε = .2. Row 1, A = −1, ratios [.5, 1]: low-clipped share 1/2. Row 2, A = −1,
    ratios [.5, .5, .5] (2 real tokens): 2/2. Row 3 has no tokens (left out).
    low_min = min(.5, 1) = .5; high_max = 0 (no A > 0); low_mean = 3/4 of the real tokens."""
    logps = torch.log(torch.tensor([[0.5, 1.0, 1.0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    _, stats = grpo.policy_loss(logps, torch.zeros(3, 3), -torch.ones(3), mask, loss_type="bnpo")
    assert stats["clip_ratio/low_min"].item() == 0.5
    assert stats["clip_ratio/high_max"].item() == 0.0
    assert stats["clip_ratio/low_mean"].item() == 0.75
    assert "clip_ratio/region_token_mean" not in stats  # at token level it would be region_mean again


def test_sampling_logp_difference_leaves_out_tokens_the_sampler_did_not_score():
    """|old − sampling| over real tokens: [.1, .3] and a NaN sampler log-prob → mean .2, max .3
    (counting the NaN token as 0 would say mean .1333)."""
    old = torch.tensor([[-1.1, -1.3, -1.0]])
    sampling = torch.tensor([[-1.0, -1.0, NONE]])
    _, stats = grpo.sampling_correction(old, sampling, torch.ones(1, 3), "token_truncate", None, None)
    assert stats["sampling/sampling_logp_difference/mean"].item() == pytest.approx(0.2)
    assert stats["sampling/sampling_logp_difference/max"].item() == pytest.approx(0.3)
