"""The loss types beyond the clipped surrogate (cispo, sapo, luspo, vespo), the off-policy
sequence mask and the entropy bonus, on tensors small enough to work out by hand, with the
values TRL 1.16's ``GRPOTrainer._compute_loss`` gives for them."""

from __future__ import annotations

import math
import typing

import pytest
import torch

from engine.algo import grpo, loss_families, regularizers
from engine.config.schema import LossType, RunConfig


def _leaf(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_cispo_clips_the_weight_and_keeps_every_gradient():
    """Two rows, old log-probs 0 so r = exp(logp); A = (1, −1); ε_max = 1.2; 3 real tokens.

    Row 1: r = (1.5, .5) → weights sg(min(r, 1.2)) = (1.2, .5); L = −w·A·logp =
    (−1.2·log 1.5, −.5·log .5) = (−.48656, .34657). Row 2 (A = −1): r = 2 → w = 1.2;
    L = 1.2·log 2 = .83178; its second token is padding. Loss = Σ / 3 tokens = .23060.
    Gradient: −w·A / 3 = (−.4, −.16667), (.4, 0) — the capped token still learns (GRPO's clip
    would give 0 there). cispo_clip_ratio: r > 1.2 with A > 0 on 1 of 3 tokens."""
    logps = _leaf([[math.log(1.5), math.log(0.5)], [math.log(2.0), 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    loss, stats = grpo.policy_loss(logps, torch.zeros_like(logps), torch.tensor([1.0, -1.0], dtype=torch.float64),
                                   mask, loss_type="cispo", epsilon_high=1.2, num_items_in_batch=3.0)
    expected = (-1.2 * math.log(1.5) - 0.5 * math.log(0.5) + 1.2 * math.log(2.0)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-9) and expected == pytest.approx(0.23060, abs=1e-5)
    loss.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-0.4, -0.5 / 3, 0.4, 0.0])
    assert float(stats["cispo_clip_ratio"]) == pytest.approx(1 / 3)
    assert "clip_ratio/region_mean" not in stats


def test_cispo_at_sequence_level_counts_capped_sequences():
    """GSPO's sequence ratio: row 1's mean log-ratio log 1.5 → r = 1.5 > 1.2 (capped, A > 0);
    row 2's is 0 → r = 1. TRL counts sequences here: 1 of 2."""
    logps = torch.tensor([[math.log(1.5), math.log(1.5)], [0.0, 0.0]])
    _, stats = grpo.policy_loss(logps, torch.zeros(2, 2), torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
                                loss_type="cispo", epsilon_high=1.2, importance_sampling_level="sequence",
                                num_items_in_batch=3.0)
    assert float(stats["cispo_clip_ratio"]) == pytest.approx(0.5)


def test_sapo_gates_smoothly_with_the_temperature_of_the_advantage_sign():
    """One row, r = (1, 1.5), A = 1, τ_pos = 1: L = −σ(τ(r−1))·4/τ·A = (−2, −4σ(.5)) =
    (−2, −2.48984); grpo's normaliser: the row's mean −2.24492. Gradient (÷ 2 tokens):
    −A·4σ(1−σ)·r/2 → −.5 at r = 1 and −4·σ(.5)·σ(−.5)·1.5/2 = −.70501 at r = 1.5 (GRPO's
    clip would give 0 there, with ε = .2)."""
    logps = _leaf([[0.0, math.log(1.5)]])
    loss, stats = grpo.policy_loss(logps, torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64),
                                   torch.ones(1, 2, dtype=torch.float64), loss_type="sapo",
                                   options={"sapo_temperature_neg": 1.05, "sapo_temperature_pos": 1.0})
    s = 1 / (1 + math.exp(-0.5))
    assert loss.item() == pytest.approx((-2.0 - 4 * s) / 2) and loss.item() == pytest.approx(-2.24492, abs=1e-5)
    loss.backward()
    assert logps.grad.tolist()[0] == pytest.approx([-0.5, -4 * s * (1 - s) * 1.5 / 2])
    assert stats == {}


def test_sapo_negative_temperature_is_an_option_that_takes_effect():
    """On-policy (r = 1), A = −1: L = σ(0)·4/τ_neg = 2/τ_neg — 1.90476 at TRL's 1.05, 1 at 2."""
    for tau, expected in ((1.05, 2 / 1.05), (2.0, 1.0)):
        loss, _ = grpo.policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1),
                                   loss_type="sapo", options={"sapo_temperature_neg": tau, "sapo_temperature_pos": 1.0})
        assert loss.item() == pytest.approx(expected)


def test_luspo_sums_each_sequence_then_averages_the_rows():
    """Sequence level, A = 1, ε = .2. Row 1: log-ratios (.1, .3), mean .2 → r = e^.2 = 1.2214,
    clipped to 1.2 → L = −1.2 on each of 2 tokens, summed −2.4, no gradient. Row 2: one real
    token, log-ratio .05 → r = 1.05127, L = −1.05127. Loss = (−2.4 − 1.05127)/2 = −1.72564.
    Gradient: row 2's token −r/2 = −.52564. High-clipped: row 1, one sequence of 2 (TRL counts
    sequences at sequence level); its 2 tokens of 3 are the GSPO paper's token share."""
    logps = _leaf([[0.1, 0.3], [0.05, 0.7]])
    loss, stats = grpo.policy_loss(logps, torch.zeros(2, 2, dtype=torch.float64),
                                   torch.tensor([1.0, 1.0], dtype=torch.float64),
                                   torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64),
                                   loss_type="luspo", importance_sampling_level="sequence")
    assert loss.item() == pytest.approx((-2.4 - math.exp(0.05)) / 2) and loss.item() == pytest.approx(-1.72564, abs=1e-5)
    loss.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([0.0, 0.0, -math.exp(0.05) / 2, 0.0])
    assert float(stats["clip_ratio/high_mean"]) == pytest.approx(1 / 2)
    assert float(stats["clip_ratio/region_token_mean"]) == pytest.approx(2 / 3)


def test_vespo_weights_the_policy_gradient_by_the_gamma_of_the_sequence_ratio():
    """One row, old log-probs (0, −1), log-probs (log .5, −1): the sequence ratio is the sum of
    the log-ratios, w = .5. A = 1 → k = 2, λ = 3: φ = e³·.5²·e^(−1.5) = .25·e^1.5 = 1.12042.
    L = −φ·A·logp = (.77662, 1.12042), Σ/2 tokens = .94852; gradient −φ/2 = −.56021 each."""
    logps = _leaf([[math.log(0.5), -1.0]])
    old = torch.tensor([[0.0, -1.0]], dtype=torch.float64)
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([1.0], dtype=torch.float64),
                                   torch.ones(1, 2, dtype=torch.float64), loss_type="vespo", num_items_in_batch=2.0,
                                   options={"vespo_k_pos": 2.0, "vespo_lambda_pos": 3.0, "vespo_k_neg": 3.0,
                                            "vespo_lambda_neg": 2.0})
    phi = 0.25 * math.exp(1.5)
    assert phi == pytest.approx(1.12042, abs=1e-5)
    assert loss.item() == pytest.approx(phi * (math.log(2.0) + 1.0) / 2)
    loss.backward()
    assert logps.grad.tolist()[0] == pytest.approx([-phi / 2, -phi / 2])
    assert float(stats["vespo/phi_seq_mean"]) == pytest.approx(phi)


def test_vespo_folds_the_sampler_correction_into_its_weight():
    """With a sampler ratio ρ = (2, 1) per token, log w = log .5 + log 2 + log 1 = 0, so w = 1
    and φ = e^λ·1·e^(−λ) = 1: the correction cancels the drift instead of scaling the loss."""
    phi = loss_families.gamma_weights(torch.tensor([1.0]), torch.tensor([[math.log(0.5), 0.0]]), torch.ones(1, 2),
                                      torch.tensor([[2.0, 1.0]]))
    assert float(phi) == pytest.approx(1.0)
    # a masked-out sampler ratio (0) floors w at 1e-8 rather than giving −∞: φ ≈ 0, not NaN
    phi = loss_families.gamma_weights(torch.tensor([-1.0]), torch.zeros(1, 1), torch.ones(1, 1), torch.zeros(1, 1))
    assert 0.0 <= float(phi) < 1e-20


def test_vespo_negative_advantage_uses_its_own_shape():
    """w = 2, A = −1 → k = 3, λ = 2: φ = e²·2³·e^(−4) = 8e^(−2) = 1.08268; with TRL's
    positive-side shape it would be e³·4·e^(−6) = .19915."""
    log_ratio = torch.tensor([[math.log(2.0)]])
    neg = loss_families.gamma_weights(torch.tensor([-1.0]), log_ratio, torch.ones(1, 1))
    pos = loss_families.gamma_weights(torch.tensor([1.0]), log_ratio, torch.ones(1, 1))
    assert float(neg) == pytest.approx(8 * math.exp(-2)) and float(pos) == pytest.approx(4 * math.exp(-3))


def test_every_loss_type_is_a_choice_with_its_options_as_config_fields():
    assert {"cispo", "sapo", "luspo", "vespo"} <= set(typing.get_args(LossType))
    fields = RunConfig()
    for name in typing.get_args(LossType):
        for option in grpo.loss_for(name).options:
            assert option == "importance_sampling_ratio" or hasattr(fields, option), (name, option)


def test_trl_defaults():
    """TRL 1.16's GRPOConfig defaults for every option added with these loss types."""
    cfg = RunConfig()
    assert (cfg.sapo_temperature_neg, cfg.sapo_temperature_pos) == (1.05, 1.0)
    assert (cfg.vespo_k_pos, cfg.vespo_lambda_pos, cfg.vespo_k_neg, cfg.vespo_lambda_neg) == (2.0, 3.0, 3.0, 2.0)
    assert (cfg.entropy_coef, cfg.use_adaptive_entropy) == (0.0, False)
    assert (cfg.entropy_coef_min, cfg.entropy_coef_max, cfg.entropy_coef_delta, cfg.entropy_target) == (0.0, 1.0, 0.005, 0.2)
    assert cfg.off_policy_mask_threshold is None and cfg.router_aux_loss_coef is None


def test_off_policy_mask_drops_negative_sequences_that_drifted():
    """δ = .5. Per-token drift sampling_logp − logp: row 1 (1, 1, padding 9) → mean 1 > δ with
    A < 0: dropped; row 2 the same drift with A = 0: kept (A ≥ 0); row 3 drift (.4, NaN): NaN
    counts 0, mean .2 ≤ δ: kept."""
    logps = torch.zeros(3, 3)
    sampling = torch.tensor([[1.0, 1.0, 9.0], [1.0, 1.0, 9.0], [0.4, float("nan"), 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    keep = grpo.off_policy_mask(torch.tensor([-1.0, 0.0, -1.0]), logps, sampling, mask, 0.5)
    assert keep.flatten().tolist() == [0.0, 1.0, 1.0]


def test_entropy_bonus_is_the_mean_entropy_over_the_tokens_it_acts_on_with_its_gradient():
    """H = (1, 2, 9) with the third token padding: H̄ = 1.5, ∂H̄/∂H = (.5, .5, 0)."""
    h = _leaf([[1.0, 2.0, 9.0]])
    bonus = regularizers.entropy_bonus(h, torch.tensor([[1.0, 1.0, 0.0]]))
    bonus.backward()
    assert bonus.item() == 1.5 and h.grad.tolist() == [[0.5, 0.5, 0.0]]


def test_adaptive_entropy_schedule():
    """Start at .01, target .2, Δ .005, bounds [0, .02]. Entropies .1, .1, .1 (at or below
    target) raise it to .015, .02, then hold at the .02 cap; .3, .3, .3, .3, .3 lower it to
    .015, .01, .005, 0, then hold at the floor 0. The coefficient in effect is applied only
    after a step whose entropy was at or below the target."""
    coef, seen = 0.01, []
    for entropy in (0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3):
        coef = regularizers.adapt_entropy_coef(coef, entropy, entropy_target=0.2, entropy_coef_delta=0.005,
                                               entropy_coef_min=0.0, entropy_coef_max=0.02)
        seen.append(round(coef, 6))
    assert seen == [0.015, 0.02, 0.02, 0.015, 0.01, 0.005, 0.0, 0.0]
    assert regularizers.entropy_coef_in_effect(0.02, 0.3, adaptive=True, entropy_target=0.2) == 0.0
    assert regularizers.entropy_coef_in_effect(0.02, 0.2, adaptive=True, entropy_target=0.2) == 0.02
    assert regularizers.entropy_coef_in_effect(0.02, 0.3, adaptive=False, entropy_target=0.2) == 0.02
