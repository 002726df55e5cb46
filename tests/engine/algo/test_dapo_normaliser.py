"""``loss_type: dapo`` divides by TRL's normaliser: the generation round's tokens, per process and
per optimizer step (``num_items_in_batch / processes · GA / SPG``), the same for every step of a
round; not by each step's own tokens."""

from __future__ import annotations

import pytest
import torch

from engine.algo import grpo


def test_every_step_of_a_round_divides_by_the_round_s_tokens_per_step():
    """One process, GA = 1 micro-batch of 2 rows per step, SPG = 2 (a round of 4 rows, 2 steps).
    Step 1's rows have 3 + 1 = 4 real tokens, step 2's 6 + 6 = 12: the round has 16, so both steps
    divide by 16 · 1/2 = 8. With ratio 1 and A = −1 every real token's term is +1, so the losses
    are 4/8 = .5 and 12/8 = 1.5 (each by its own tokens, as before: 4/4 = 1 and 12/12 = 1)."""
    masks = [torch.tensor([[1.0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]), torch.ones(2, 6)]
    round_tokens = float(sum(m.sum() for m in masks))
    assert round_tokens == 16.0
    num_items = grpo.dapo_num_items(round_tokens, processes=1, step_rows=2, round_rows=4)
    assert num_items == 8.0
    losses = [grpo.policy_loss(torch.zeros(2, 6), None, -torch.ones(2), m, loss_type="dapo",
                               num_items_in_batch=num_items)[0].item() for m in masks]
    assert losses == pytest.approx([0.5, 1.5])


def test_processes_share_the_count_and_one_step_rounds_divide_by_their_tokens():
    """Two processes with 10 and 30 tokens in a one-step round (SPG = GA): each divides by
    40 / 2 = 20, and the averaged gradients are those of the token mean over all 40 tokens."""
    assert grpo.dapo_num_items(40.0, processes=2, step_rows=8, round_rows=8) == 20.0
    assert grpo.dapo_num_items(0.0, processes=1, step_rows=8, round_rows=8) == 1.0  # no tokens: no division by 0
