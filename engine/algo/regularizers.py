"""Terms added to the policy loss: the entropy bonus with its adaptive coefficient, and the
mixture-of-experts router's load-balancing loss. TRL 1.16's maths and defaults.

The full loss of a micro-batch, with K gradient-accumulation steps (TRL scales both terms by
1/K whatever the loss type, so that a coefficient means the same for every one)::

    loss = policy_loss − c·H̄/K + router_aux_loss_coef·aux/K

H̄ is :func:`entropy_bonus`; c is ``entropy_coef``, or with ``use_adaptive_entropy`` the
coefficient :func:`adapt_entropy_coef` keeps, applied only while :func:`entropy_coef_in_effect` says so.
"""

from __future__ import annotations

import torch


def entropy_bonus(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``H̄ = Σ H·M / Σ M``: the mean per-token entropy over the tokens the policy loss acts on
    (``mask`` = the completion mask times the top-entropy selection, when there is one), with
    its gradient. Subtracted as ``c·H̄``, it pushes the policy away from collapsing onto one
    token (Skywork-OR1, arXiv:2505.22312). Not rescaled by the loss type's normaliser.

    Example: entropies [1, 2, 9] with the third token padding → 1.5::

        >>> float(entropy_bonus(torch.tensor([[1., 2., 9.]]), torch.tensor([[1., 1., 0.]])))
        1.5
    """
    mask = mask.to(entropies.dtype)
    return (entropies * mask).sum() / mask.sum().clamp(min=1.0)


def adapt_entropy_coef(coef: float, entropy: float, *, entropy_target: float = 0.2, entropy_coef_delta: float = 0.005,
                       entropy_coef_min: float = 0.0, entropy_coef_max: float = 1.0) -> float:
    """One step of adaptive entropy control (Skywork-OR1): after each optimizer step, with
    ``entropy`` the step's mean token entropy over every process,

        c ← min(c + Δ, c_max)   if entropy ≤ target     (entropy is collapsing: push harder)
        c ← max(c − Δ, c_min)   otherwise

    Example (TRL's defaults: target .2, Δ .005, bounds [0, 1])::

        >>> adapt_entropy_coef(0.01, 0.1), adapt_entropy_coef(0.01, 0.3), adapt_entropy_coef(0.0, 3.0)
        (0.015, 0.005, 0.0)
        >>> adapt_entropy_coef(0.998, 0.1)
        1.0
    """
    if entropy <= entropy_target:
        return min(coef + entropy_coef_delta, entropy_coef_max)
    return max(coef - entropy_coef_delta, entropy_coef_min)


def entropy_coef_in_effect(coef: float, last_entropy: float, *, adaptive: bool, entropy_target: float = 0.2) -> float:
    """The coefficient the next optimizer step applies: ``coef``, or with adaptive control
    ``coef`` only while the last step's entropy was at or below the target (0 otherwise, and
    before any step has been measured: ``last_entropy`` = ∞).

    >>> entropy_coef_in_effect(.01, float("inf"), adaptive=False), entropy_coef_in_effect(.01, float("inf"), adaptive=True)
    (0.01, 0.0)
    >>> entropy_coef_in_effect(.01, .1, adaptive=True)
    0.01
    """
    if adaptive and not last_entropy <= entropy_target:
        return 0.0
    return coef
