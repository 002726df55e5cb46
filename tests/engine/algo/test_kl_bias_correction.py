"""``use_bias_correction_kl`` (TRL 1.16, default True): the per-token k3 KL is multiplied by the
importance ratio π_θ/π_old, which carries gradient, so the KL gradient changes even on-policy."""

from __future__ import annotations

import math

import pytest
import torch

from engine.algo import grpo


def _kl_only(logp: float, ref: float, old: float | None, correct: bool, level: str = "token", delta=None):
    logps = torch.tensor([[logp]], requires_grad=True)
    loss, stats = grpo.policy_loss(
        logps, None if old is None else torch.tensor([[old]]), torch.zeros(1), torch.ones(1, 1), loss_type="bnpo",
        beta=0.04, ref_logps=torch.tensor([[ref]]), importance_sampling_level=level, delta=delta,
        use_bias_correction_kl=correct)
    loss.backward()
    return loss.item(), logps.grad.item(), stats["kl"].item()


def test_on_policy_the_value_is_the_same_and_the_gradient_is_not():
    """One token, A = 0, logp −1, ref −1.5, β .04, μ = 1 (ratio 1, gradient 1·∇logp):
    k3 = e^(−.5) − (−.5) − 1 = .106531 → loss β·k3 = .004261 either way;
    ∂k3/∂logp = 1 − e^(−.5) = .393469 → without: β·.393469 = .015739;
    with: ∂(ratio·k3)/∂logp = k3 + ∂k3/∂logp = .5 → β·.5 = .020000."""
    k3 = math.exp(-0.5) + 0.5 - 1
    with_value, with_grad, _ = _kl_only(-1.0, -1.5, None, correct=True)
    without_value, without_grad, _ = _kl_only(-1.0, -1.5, None, correct=False)
    assert with_value == pytest.approx(0.04 * k3) and without_value == pytest.approx(0.04 * k3)
    assert round(with_value, 6) == 0.004261
    assert with_grad == pytest.approx(0.020000, abs=1e-6)
    assert without_grad == pytest.approx(0.015739, abs=1e-6)


def test_off_policy_the_ratio_weights_the_value_and_the_logged_kl():
    """logp −1, old −1.2 → ratio e^.2 = 1.221403; ref −1.5 → k3 = .106531.
    With: KL = 1.221403·.106531 = .130117, loss β·KL = .005205, and TRL logs this weighted KL;
    gradient β·ratio·(k3 + 1 − e^(−.5)) = .04·1.221403·.5 = .024428. Without: .004261 and .015739."""
    ratio, k3 = math.exp(0.2), math.exp(-0.5) + 0.5 - 1
    value, grad, kl = _kl_only(-1.0, -1.5, -1.2, correct=True)
    assert kl == pytest.approx(ratio * k3, rel=1e-5)
    assert value == pytest.approx(0.04 * ratio * k3, rel=1e-5)
    assert grad == pytest.approx(0.04 * ratio * 0.5, rel=1e-5)
    value, grad, kl = _kl_only(-1.0, -1.5, -1.2, correct=False)
    assert kl == pytest.approx(k3, rel=1e-5) and grad == pytest.approx(0.04 * (1 - math.exp(-0.5)), rel=1e-5)


def test_the_ratio_is_the_uncapped_one_and_at_sequence_level_the_sequence_s():
    """δ caps the surrogate's ratio only: with ratio e^.2 = 1.2214 and δ = 1.1 the KL is still
    weighted by 1.2214 (TRL applies δ after computing the KL). At sequence level, two tokens with
    log-ratios .2 and 0 share the weight e^((.2 + 0)/2) = e^.1 = 1.105171."""
    ratio, k3 = math.exp(0.2), math.exp(-0.5) + 0.5 - 1
    _, _, kl = _kl_only(-1.0, -1.5, -1.2, correct=True, delta=1.1)
    assert kl == pytest.approx(ratio * k3, rel=1e-5)
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    _, stats = grpo.policy_loss(logps, torch.tensor([[-1.2, -2.0]]), torch.zeros(1), torch.ones(1, 2),
                                loss_type="bnpo", beta=0.04, ref_logps=torch.tensor([[-1.5, -2.5]]),
                                importance_sampling_level="sequence")
    assert stats["kl"].item() == pytest.approx(math.exp(0.1) * k3, rel=1e-5)  # both tokens have k3 = .106531


def test_the_option_is_a_config_field_with_trl_s_name_and_default():
    from engine.config.presets import load_preset
    from engine.config.schema import ConfigError

    assert load_preset("tiny-arithmetic").use_bias_correction_kl is True
    assert load_preset("tiny-arithmetic", ["use_bias_correction_kl=false"]).use_bias_correction_kl is False
    with pytest.raises(ConfigError, match="use_bias_correction_kl"):
        load_preset("tiny-arithmetic", ["use_bias_correction_kl=sometimes"])
