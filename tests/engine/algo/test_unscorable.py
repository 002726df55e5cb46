"""A completion no reward function scored (every one gave None) is left out of its group's mean
and std and gets advantage 0, as TRL 1.16 (``rewards[unscorable] = NaN`` then ``nan_to_num``)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.algo import grpo

NONE = float("nan")


def test_an_unscorable_row_is_left_out_of_its_group_and_gets_no_advantage():
    """G = 4, one function, rewards [1, 0, None, 1]. The scored rows [1, 0, 1] have mean 2/3 and
    Bessel std √(((1/3)² + (2/3)² + (1/3)²) / 2) = √(1/3) = .57735, so
    A = (1/3)/.57745 = .5772, (−2/3)/.57745 = −1.1545, 0, .5772 (the 1e-4 in the divisor);
    scoring the None as 0 would give [.866, −.866, −.866, .866]."""
    per_func = torch.tensor([[1.0], [0.0], [NONE], [1.0]])
    total = grpo.mark_unscorable(per_func.nansum(dim=1), per_func)
    assert math.isnan(total[2])
    advantages, stats = grpo.group_advantages(total, num_generations=4)
    std = math.sqrt(1 / 3)
    expected = [(1 / 3) / (std + 1e-4), (-2 / 3) / (std + 1e-4), 0.0, (1 / 3) / (std + 1e-4)]
    assert advantages.tolist() == pytest.approx(expected, rel=1e-6)
    assert [round(a, 3) for a in advantages.tolist()] == [0.577, -1.155, 0.0, 0.577]
    assert float(stats["reward_std"]) == pytest.approx(std)  # over the three scored rows


def test_a_function_that_scored_some_rows_still_counts():
    """Two functions; row 1 has only the second's 0.5, row 2 none at all:
    totals [1 + 0, 0.5, None, 0 + 1] = [1, .5, NaN, 1] → mean .8333 of the three."""
    per_func = torch.tensor([[1.0, 0.0], [NONE, 0.5], [NONE, NONE], [0.0, 1.0]])
    total = grpo.mark_unscorable(per_func.nansum(dim=1), per_func)
    assert total[[0, 1, 3]].tolist() == [1.0, 0.5, 1.0] and math.isnan(total[2])
    advantages, _ = grpo.group_advantages(total, num_generations=4, scale_rewards="none")
    assert advantages.tolist() == pytest.approx([1 / 6, -1 / 3, 0.0, 1 / 6], rel=1e-6)


def test_batch_scaling_and_a_group_with_one_scored_row():
    """G = 2, scale_rewards batch: group 1 [2, None] has mean 2 → A = 0 for both; group 2 [0, 1]
    has mean .5. Batch std over the scored [2, 0, 1] = 1 → A = [0, 0, −.5/1.0001, .5/1.0001].
    With group scaling group 1's std (one value) is undefined: its advantages are 0."""
    rewards = torch.tensor([2.0, NONE, 0.0, 1.0])
    advantages, stats = grpo.group_advantages(rewards, 2, "batch")
    assert advantages.tolist() == pytest.approx([0.0, 0.0, -0.5 / 1.0001, 0.5 / 1.0001], rel=1e-6)
    assert float(stats["frac_reward_zero_std"]) == 0.0  # the batch's std, 1, is not 0
    advantages, stats = grpo.group_advantages(rewards, 2, "group")
    assert advantages.tolist()[:2] == [0.0, 0.0]
    assert float(stats["frac_group_reward_zero_std"]) == 0.5  # one scored row has no spread


def test_normalize_then_sum_leaves_the_unscorable_row_out_of_the_batch_statistics():
    """G = 2, F = 1, rewards [[1], [0], [None], [None]]: group 1 normalises to ±.5/(.7071 + 1e-4)
    = ±.7070; group 2 has no scored row. s = [.7070, −.7070, NaN, NaN] → batch mean 0, Bessel std
    s·√2 = .99985 → A = ±.7070/(.99985 + 1e-4) = ±.7071, 0, 0 (counted as s = 0 the two NaN rows
    would shrink the std to .5773 and A to ±1.2245)."""
    per_func = torch.tensor([[1.0], [0.0], [NONE], [NONE]])
    advantages, stats = grpo.normalize_then_sum_advantages(per_func, torch.ones(1), num_generations=2)
    s = 0.5 / (math.sqrt(0.5) + 1e-4)
    std = math.sqrt(2 * s * s)  # Bessel over two values ±s
    assert advantages.tolist() == pytest.approx([s / (std + 1e-4), -s / (std + 1e-4), 0.0, 0.0], rel=1e-5)
    assert float(stats["reward_std"]) == pytest.approx(math.sqrt(0.5))  # std of the totals [1, 0]


def test_dynamic_sampling_sees_no_signal_in_a_group_with_one_scored_row():
    """[1, None]: one score cannot differ from another; [None, None]: nothing scored; [1, 0]: signal."""
    rewards = torch.tensor([1.0, NONE, NONE, NONE, 1.0, 0.0])
    assert grpo.groups_with_signal(rewards, 2).tolist() == [False, False, True]
