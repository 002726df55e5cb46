"""The policy loss in two halves: per-token terms (the surrogate), then one number (the normalisation).

:func:`policy_loss` = :func:`per_token_loss` (the loss type's surrogate, token weights, β·k3 KL)
reduced by the loss type's normaliser. Loss types live in :data:`LOSSES`, a name → :class:`Loss`
registry: a new loss type (another surrogate, another normaliser, or both) is one
:func:`register_loss` entry. The names a user may choose are ``engine.config.schema.LossType``
(the engine's config checks read them there); a test keeps the two sets equal.

Shapes: N completions, T tokens (padded); the mask M [N, T] is 1 on real tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

LossType = str
"""A key of :data:`LOSSES` (the choices users see are ``engine.config.schema.LossType``)."""

CLIP_RATIO_STATS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                    "clip_ratio/low_min", "clip_ratio/high_max")
"""TRL's clip statistics, at either importance-sampling level (:func:`clip_ratios`)."""
SEQUENCE_CLIP_STATS = ("clip_ratio/region_token_mean",)
"""Logged besides :data:`CLIP_RATIO_STATS` at sequence level: the share of tokens clipped."""


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π‖π_ref): ``exp(ref − logp) − (ref − logp) − 1`` (≥ 0).

    Example: logp = ref → 0; logp − ref = 0.1 → exp(−0.1) + 0.1 − 1 = 0.00484::

        >>> [round(x, 5) for x in k3_kl(torch.tensor([0., -1.]), torch.tensor([0., -1.1])).tolist()]
        [0.0, 0.00484]
    """
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ values·mask / max(Σ mask, 1)`` — the mean over real (unpadded) tokens; 0 when there are none.

    Example::

        >>> float(masked_mean(torch.tensor([[1., 2., 9.]]), torch.tensor([[1., 1., 0.]])))
        1.5
        >>> float(masked_mean(torch.tensor([[1., 2.]]), torch.zeros(1, 2)))
        0.0
    """
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


# --------------------------------------------------------------------------- the surrogate


def importance_ratio(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor,
                     importance_sampling_level: Literal["token", "sequence"] = "token") -> torch.Tensor:
    """π_θ/π_old, differentiable in ``logps``: per token [N, T], or per sequence [N, 1] (GSPO)::

        token:    ratio_t = exp(logp_t − old_logp_t)
        sequence: ratio   = exp(Σ_t (logp − old_logp)·M / Σ_t M)

    Example: two tokens with ratios 1.5 and .5 → at sequence level their geometric mean::

        >>> logps, old = torch.log(torch.tensor([[1.5, .5]])), torch.zeros(1, 2)
        >>> [round(x, 4) for x in importance_ratio(logps, old, torch.ones(1, 2), "sequence").flatten().tolist()]
        [0.866]
    """
    log_ratio = logps - old_logps
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return torch.exp(log_ratio)


def clipped_surrogate(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
    delta: float | None = None,
    importance_sampling_level: Literal["token", "sequence"] = "token",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's (PPO's) clipped surrogate per token, and the ratio it used::

        ratio_t = exp(logp_t − old_logp_t)                          (token level)
        ratio_t = exp(Σ_t (logp − old_logp)·M / Σ_t M), every t     (sequence level, GSPO)
        L_t = −min(min(ratio_t, δ)·A, clip(ratio_t, 1−ε_low, 1+ε_high)·A)

    The cap δ (``delta``, two-sided clipping) applies only when set; ε_high > ε_low is DAPO's
    clip-higher. Returns the terms [N, T] and the (δ-capped) ratio, [N, T] or [N, 1] at
    sequence level, from which :func:`clip_ratios` counts the clipped tokens.

    Example: ratios 1.5 and .5, ε = .2. With A = 1 the first is clipped to 1.2 and the second
    kept (min picks .5); with A = −1 the first is kept at 1.5 and the second clipped to .8::

        >>> logps, old = torch.log(torch.tensor([[1.5, .5], [1.5, .5]])), torch.zeros(2, 2)
        >>> terms, ratio = clipped_surrogate(logps, old, torch.tensor([1., -1.]), torch.ones(2, 2),
        ...                                  epsilon_low=.2, epsilon_high=.2)
        >>> [[round(x, 4) for x in row] for row in terms.tolist()]
        [[-1.2, -0.5], [1.5, 0.8]]
        >>> _, ratio = clipped_surrogate(logps, old, torch.tensor([1., -1.]), torch.ones(2, 2),
        ...                              epsilon_low=.2, epsilon_high=.2, importance_sampling_level="sequence")
        >>> [round(x, 4) for x in ratio.flatten().tolist()]  # √(1.5 · .5)
        [0.866, 0.866]
    """
    ratio = importance_ratio(logps, old_logps, mask, importance_sampling_level)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    if delta is not None:
        ratio = torch.clamp(ratio, max=delta)
    adv = advantages.unsqueeze(1)
    return -torch.min(ratio * adv, clipped * adv), ratio


def clip_ratios(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                epsilon_low: float, epsilon_high: float) -> dict[str, torch.Tensor]:
    """TRL's clip statistics. A token (a sequence, when ``ratio`` has one column: GSPO's
    sequence-level ratio) is low-clipped when ratio < 1−ε_low and A < 0, high-clipped when
    ratio > 1+ε_high and A > 0:

    - ``clip_ratio/low_mean``, ``/high_mean``, ``/region_mean`` (either): the share of real
      tokens, or at sequence level of sequences, that are clipped;
    - ``clip_ratio/low_min``, ``/high_max``: each sequence's share of clipped tokens (0 or 1 at
      sequence level), its least low and its most high (sequences without tokens left out; NaN
      when there are none);
    - at sequence level also ``clip_ratio/region_token_mean``: the share of real tokens in
      clipped sequences, the clipping fraction the GSPO paper reports.

    Example: A = 1, ratios [1.5, 1, .5] in one row and [1.5] in the other → high-clipped tokens
    1 of 3 and 1 of 1 → ``high_mean`` 2/4, ``high_max`` 1::

        >>> stats = clip_ratios(torch.tensor([[1.5, 1., .5], [1.5, 1., 1.]]), torch.tensor([1., 1.]),
        ...                     torch.tensor([[1., 1., 1.], [1., 0., 0.]]), .2, .2)
        >>> {name.split("/")[1]: round(float(v), 4) for name, v in stats.items()}
        {'low_mean': 0.0, 'high_mean': 0.5, 'region_mean': 0.5, 'low_min': 0.0, 'high_max': 1.0}

    At sequence level (ratios [N, 1]) the same rows count one each, however long::

        >>> stats = clip_ratios(torch.tensor([[1.5], [1.]]), torch.tensor([1., 1.]),
        ...                     torch.tensor([[1., 1., 1.], [1., 0., 0.]]), .2, .2)
        >>> round(float(stats["clip_ratio/high_mean"]), 4), round(float(stats["clip_ratio/region_token_mean"]), 4)
        (0.5, 0.75)
    """
    with torch.no_grad():
        adv = advantages.unsqueeze(1)
        ratio_d = ratio.detach()
        low = ((ratio_d < 1 - epsilon_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio_d > 1 + epsilon_high) & (adv > 0)).to(mask.dtype)
        both = torch.clamp(low + high, max=1.0)
        per_sequence = ratio_d.size(-1) == 1  # as TRL decides it: one ratio column is one per sequence
        if per_sequence:
            def mean(x):
                return x.sum() / max(x.size(0), 1)

            def seq(x):
                return x.squeeze(1)
        else:
            def mean(x):
                return masked_mean(x, mask)

            def seq(x):
                return (x * mask).sum(-1) / mask.sum(-1)  # NaN for a row without tokens
        stats = {name: mean(x) for name, x in zip(CLIP_RATIO_STATS, (low, high, both))}
        stats["clip_ratio/low_min"] = _nan_extreme(seq(low), torch.min)
        stats["clip_ratio/high_max"] = _nan_extreme(seq(high), torch.max)
        if per_sequence:
            stats["clip_ratio/region_token_mean"] = masked_mean(both.expand_as(mask), mask)
        return stats


def _nan_extreme(values: torch.Tensor, extreme) -> torch.Tensor:
    """``extreme`` (torch.min or torch.max) of the non-NaN values; NaN when there are none."""
    kept = values[~torch.isnan(values)]
    return extreme(kept) if kept.numel() else torch.full((), float("nan"), dtype=values.dtype)


Surrogate = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``(logps, old_logps, advantages, mask, *, epsilon_low, epsilon_high, delta,
importance_sampling_level, **options) → (terms [N, T], ratio)``, as :func:`clipped_surrogate`;
``options`` are the loss type's own settings (:attr:`Loss.options`)."""

Statistics = Callable[..., dict[str, torch.Tensor]]
"""``(ratio, advantages, mask, epsilon_low, epsilon_high) → {name: scalar}``, as :func:`clip_ratios`:
what a loss type logs about the ratio (or weight) its surrogate returned."""


def per_token_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    surrogate: Surrogate = clipped_surrogate,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    importance_sampling_level: Literal["token", "sequence"] = "token",
    delta: float | None = None,
    token_weights: torch.Tensor | None = None,
    statistics: Statistics = clip_ratios,
    options: Mapping[str, Any] | None = None,
    use_bias_correction_kl: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss terms L [N, T] before normalisation: ``L_t = w_t·surrogate_t + β·KL_t``.

    ``w`` = ``token_weights`` (e.g. the top-entropy mask, the sampling correction; 1 when not
    given). ``KL_t`` = :func:`k3_kl` against ``ref_logps`` (only when β ≠ 0), times the
    :func:`importance_ratio` when ``use_bias_correction_kl`` (TRL's default; DeepSeek-V3.2):
    the k3 estimator is for samples of π_θ, the tokens were sampled from π_old, so weighting by
    π_θ/π_old makes its gradient the unbiased gradient of KL(π_θ‖π_ref). The ratio is not
    detached, so this changes the gradient even on-policy, where its value is 1: there
    ``∇(ratio·k3) = k3·∇logp + ∇k3``, with ``∇k3 = (1 − e^(ref−logp))·∇logp``. At sequence
    level the sequence's ratio weights each of its tokens, before any δ cap, for every loss type.
    ``epsilon_high`` defaults to ``epsilon_low``. ``old_logps=None`` means the sampling policy
    is the current one (μ = 1): the ratio is 1 but its gradient is the policy gradient.

    Statistics: ``kl`` (mean ``KL_t`` over real tokens, when β ≠ 0, so ratio-weighted like the
    loss, as TRL logs it) and ``statistics`` of the ratio (:func:`clip_ratios` unless the loss
    type logs others). ``options`` go to the surrogate.

    Example: μ = 1 (ratio 1), A = −1, β = .5 and logp − ref = .1 → L = 1 + .5·.00484::

        >>> terms, stats = per_token_loss(torch.tensor([[-1.]]), None, torch.tensor([-1.]), torch.ones(1, 1),
        ...                               beta=.5, ref_logps=torch.tensor([[-1.1]]))
        >>> round(float(terms), 5), round(float(stats["kl"]), 5)
        (1.00242, 0.00484)

    The gradient, one token, A = 0, logp = −1, ref = −1.5, β = .04: k3 = e^−.5 + .5 − 1 = .10653,
    ∇k3 = 1 − e^−.5 = .39347; with the correction β·(.10653 + .39347) = .02, without β·.39347::

        >>> for correct in (True, False):
        ...     logp = torch.tensor([[-1.]], requires_grad=True)
        ...     terms, _ = per_token_loss(logp, None, torch.zeros(1), torch.ones(1, 1), beta=.04,
        ...                               ref_logps=torch.tensor([[-1.5]]), use_bias_correction_kl=correct)
        ...     terms.sum().backward()
        ...     print(f"{float(terms.detach()):.6f} {float(logp.grad):.6f}")
        0.004261 0.020000
        0.004261 0.015739
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    mask = completion_mask.to(logps.dtype)
    if old_logps is None:
        old_logps = logps.detach()
    terms, ratio = surrogate(logps, old_logps, advantages, mask, epsilon_low=epsilon_low, epsilon_high=epsilon_high,
                             delta=delta, importance_sampling_level=importance_sampling_level, **(options or {}))
    if token_weights is not None:
        terms = terms * token_weights

    stats: dict[str, torch.Tensor] = {}
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs ref_logps")
        kl = k3_kl(logps, ref_logps)
        if use_bias_correction_kl:
            kl = kl * importance_ratio(logps, old_logps, mask, importance_sampling_level)
        terms = terms + beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask)
    stats.update(statistics(ratio, advantages, mask, epsilon_low, epsilon_high))
    return terms, stats


# --------------------------------------------------------------------------- the normalisation

Normalizer = Callable[..., torch.Tensor]
"""``(terms [N, T], mask [N, T], *, max_completion_length, num_items_in_batch) → scalar loss``."""


@dataclass(frozen=True)
class Loss:
    """A loss type: how its per-token terms are made and how they reduce to one number."""

    normalize: Normalizer
    divides_by: Literal["rows", "tokens", "batch"]
    """What the normaliser counts: the micro-batch's rows, its tokens, or a count fixed for
    the whole generation round (:func:`dapo_num_items`). It says how a loss over some rows
    scales to all of them (:func:`subset_loss_scale`); only ``"batch"`` needs no division by
    accumulation steps."""
    surrogate: Surrogate = clipped_surrogate
    statistics: Statistics = clip_ratios
    stat_names: tuple[str, ...] = CLIP_RATIO_STATS
    """The names ``statistics`` returns (each 0 where no token is clipped or weighted)."""
    options: tuple[str, ...] = ()
    """Keyword arguments of ``surrogate`` beyond the common ones, named as the config fields
    (and TRL's ``GRPOConfig``) that hold them, e.g. ``sapo_temperature_pos``."""
    exact_without_flat_groups: bool = True
    """Whether its statistics over a group with all advantages 0, sampled by these very
    weights, are 0, so that leaving such groups out of the forward changes nothing."""


LOSSES: dict[str, Loss] = {}
"""Every loss type by name (TRL's ``loss_type``)."""


def register_loss(name: str, *, divides_by: Literal["rows", "tokens", "batch"],
                  surrogate: Surrogate = clipped_surrogate, **more: Any) -> Callable[[Normalizer], Normalizer]:
    """Decorate a normaliser to make it the loss type ``name`` (with ``surrogate``'s terms;
    ``more``: the other :class:`Loss` fields, e.g. ``statistics``, ``options``)."""

    def add(normalize: Normalizer) -> Normalizer:
        LOSSES[name] = Loss(normalize=normalize, divides_by=divides_by, surrogate=surrogate, **more)
        return normalize

    return add


def loss_for(loss_type: LossType) -> Loss:
    """The registered loss type ``loss_type``; ValueError naming it when there is none."""
    try:
        return LOSSES[loss_type]
    except KeyError:
        raise ValueError(f"unknown loss_type {loss_type!r}") from None


@register_loss("grpo", divides_by="rows")
def sequence_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
                  num_items_in_batch: float | None = None) -> torch.Tensor:
    """``grpo``: ``mean_i(Σ_t L·M / Σ_t M)`` — each sequence's token mean, then the mean over rows.

    Example: rows of 3 and 1 real tokens → (6/3 + 4/1) / 2::

        >>> float(sequence_mean(torch.tensor([[1., 2., 3.], [4., 9., 9.]]), torch.tensor([[1., 1., 1.], [1., 0., 0.]])))
        3.0
    """
    return ((terms * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


@register_loss("bnpo", divides_by="tokens")
def token_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
               num_items_in_batch: float | None = None) -> torch.Tensor:
    """``bnpo``: ``Σ L·M / Σ M`` — the token mean over this micro-batch.

    Example: (6 + 4) / 4 tokens::

        >>> float(token_mean(torch.tensor([[1., 2., 3.], [4., 9., 9.]]), torch.tensor([[1., 1., 1.], [1., 0., 0.]])))
        2.5
    """
    return (terms * mask).sum() / mask.sum().clamp(min=1.0)


@register_loss("dr_grpo", divides_by="rows")
def constant_length_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
                         num_items_in_batch: float | None = None) -> torch.Tensor:
    """``dr_grpo`` (Dr. GRPO): ``Σ L·M / (N · T_max)`` with T_max = ``max_completion_length``, a
    normaliser that does not depend on the lengths, so long answers are not favoured.

    Example: 10 / (2 rows · 5)::

        >>> float(constant_length_mean(torch.tensor([[1., 2., 3.], [4., 9., 9.]]),
        ...                            torch.tensor([[1., 1., 1.], [1., 0., 0.]]), max_completion_length=5))
        1.0
    """
    if max_completion_length is None:
        raise ValueError("dr_grpo needs max_completion_length")
    return (terms * mask).sum() / (terms.size(0) * max_completion_length)


@register_loss("dapo", divides_by="batch")
def batch_token_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
                     num_items_in_batch: float | None = None) -> torch.Tensor:
    """``dapo``: ``Σ L·M / num_items_in_batch`` with TRL's normaliser, :func:`dapo_num_items`
    (the generation round's tokens per optimizer step); without it, this micro-batch's tokens
    (= ``bnpo``).

    Example: 10 / 8 tokens; alone, 10 / 4::

        >>> terms, mask = torch.tensor([[1., 2., 3.], [4., 9., 9.]]), torch.tensor([[1., 1., 1.], [1., 0., 0.]])
        >>> float(batch_token_mean(terms, mask, num_items_in_batch=8.0)), float(batch_token_mean(terms, mask))
        (1.25, 2.5)
    """
    normaliser = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1.0)
    return (terms * mask).sum() / normaliser


# --------------------------------------------------------------------------- the policy loss


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    loss_type: LossType = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    importance_sampling_level: Literal["token", "sequence"] = "token",
    delta: float | None = None,
    max_completion_length: int | None = None,
    num_items_in_batch: float | None = None,
    entropies: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
    options: Mapping[str, Any] | None = None,
    use_bias_correction_kl: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of ``loss_type``: its :func:`per_token_loss` terms L reduced by its normaliser
    over the mask M (N rows, T_max = ``max_completion_length``)::

        L_t = −min(ratio_t·A, clip(ratio_t, 1−ε_low, 1+ε_high)·A)·w_t + β·KL_t
        grpo:    mean over rows of Σ_t L·M / Σ_t M        bnpo: Σ L·M / Σ M
        dr_grpo: Σ L·M / (N · T_max)                      dapo: Σ L·M / num_items_in_batch

    (``KL_t``: see :func:`per_token_loss`.) The caller divides grpo/bnpo/dr_grpo by the number
    of gradient-accumulation steps, as TRL, and passes dapo :func:`dapo_num_items`. The loss
    types with other surrogates (cispo, sapo, luspo, vespo) are :mod:`engine.algo.loss_families`;
    ``options`` carries their settings (:attr:`Loss.options`).

    Statistics (scalars): ``kl`` (when β ≠ 0), the ``clip_ratio/*`` shares (:func:`clip_ratios`)
    and ``entropy`` (the mean of ``entropies`` over real tokens, when given).

    Example: one token, A = 1, logp − old = log 1.5, ε = .2 → ratio 1.5, clipped 1.2,
    L = −min(1.5, 1.2) = −1.2, high-clipped::

        >>> loss, stats = policy_loss(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1),
        ...                           torch.tensor([1.]), torch.ones(1, 1), loss_type="bnpo")
        >>> round(float(loss), 4), float(stats["clip_ratio/high_mean"])
        (-1.2, 1.0)
    """
    loss = loss_for(loss_type)
    mask = completion_mask.to(logps.dtype)
    terms, stats = per_token_loss(
        logps, old_logps, advantages, mask, surrogate=loss.surrogate, epsilon_low=epsilon_low,
        epsilon_high=epsilon_high, beta=beta, ref_logps=ref_logps,
        importance_sampling_level=importance_sampling_level, delta=delta, token_weights=token_weights,
        statistics=loss.statistics, options=options, use_bias_correction_kl=use_bias_correction_kl)
    value = loss.normalize(terms, mask, max_completion_length=max_completion_length,
                           num_items_in_batch=num_items_in_batch)
    if entropies is not None:
        with torch.no_grad():
            stats["entropy"] = masked_mean(entropies.detach(), mask)
    return value, stats


def dapo_num_items(round_tokens: float, processes: int, step_rows: int, round_rows: int) -> float:
    """TRL's ``dapo`` normaliser on one process: the generation round's real tokens (every
    process's), per process, per optimizer step::

        num_items = N_round / processes · GA / SPG,   GA / SPG = step_rows / round_rows

    When a round feeds several optimizer steps (``steps_per_generation`` > GA) every step divides
    by the same count, the round's mean tokens per step, not by its own tokens: each token of the
    round weighs the same in whichever step it falls (so a step of short completions takes a
    smaller step). Gradients are averaged over processes, hence the division by their number.

    Example: one process, a round of 2 steps with 10 and 30 tokens → both divide by 20 (each by its
    own tokens would make the first step's loss 2× and the second's 2/3×)::

        >>> dapo_num_items(40.0, processes=1, step_rows=8, round_rows=16)
        20.0
        >>> dapo_num_items(40.0, processes=2, step_rows=8, round_rows=8)
        20.0
    """
    return max(round_tokens, 1.0) / processes * step_rows / max(round_rows, 1)


def subset_loss_scale(loss_type: LossType, rows_kept: int, rows_all: int, tokens_kept: float,
                      tokens_all: float) -> float:
    """The factor turning the loss over some rows into the loss over all of them, when the
    rows left out contribute exactly 0 to every sum, by what the normaliser divides by:

    - rows (``grpo``: mean over rows; ``dr_grpo``: ÷ N·T_max): ``rows_kept / rows_all``
    - tokens (``bnpo``: ÷ this micro-batch's tokens): ``tokens_kept / tokens_all``
    - batch (``dapo``: ÷ ``num_items_in_batch``, already counted over every row): 1

    Example: a mean over 3 of 4 rows × 3/4 = the mean over 4 with one 0::

        >>> [subset_loss_scale(t, 3, 4, 30.0, 40.0) for t in ("grpo", "dr_grpo", "bnpo", "dapo")]
        [0.75, 0.75, 0.75, 1.0]
        >>> subset_loss_scale("bnpo", 3, 4, 10.0, 40.0)
        0.25
    """
    divides_by = loss_for(loss_type).divides_by
    if divides_by == "rows":
        return rows_kept / max(rows_all, 1)
    if divides_by == "tokens":
        return tokens_kept / max(tokens_all, 1.0)
    return 1.0


# The loss types beyond the clipped surrogate (cispo, sapo, luspo, vespo) register themselves.
import engine.algo.loss_families  # noqa: E402,F401
