"""The loss of one micro-batch of a round, leaving out the groups that carry no signal.

:func:`micro_batch_loss` runs the training forward over a micro-batch's rows, weights the
tokens (high-entropy selection, the correction for a separate sampling engine, the off-policy
sequence mask), hands everything to :func:`engine.algo.grpo.policy_loss` and adds the entropy
bonus and a mixture-of-experts router's loss when they are on. :func:`loss_with_signal` computes only the
groups whose advantages are not all zero, when leaving the others out is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.algo import grpo
from engine.algo.regularizers import entropy_bonus
from engine.training.batch import Batch
from engine.training.regularization import EntropyControl
from engine.config.schema import RunConfig


@dataclass
class LossSetup:
    """What the loss of a micro-batch depends on besides the batch."""

    cfg: RunConfig  # the run's (adjustable) settings, read at each call
    logps: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
    """The training forward (:meth:`engine.training.forwards.Forwards.training`): log-probs and
    entropies [n, T] of rows ``sl`` of a rollout, and the router loss when asked for."""
    separate_engine: bool  # completions sampled by another engine (vLLM) with its own log-probs
    world: int  # processes training together
    router_aux_loss_coef: float = 0.0  # weight of a mixture-of-experts router's loss; 0 = not computed
    entropy: EntropyControl | None = None  # the entropy bonus's coefficient; None = no bonus

    def regularized(self) -> bool:
        """Whether terms beyond the policy loss (entropy bonus, router loss) are added: every
        row then has a gradient, so no group can be left out of the forward."""
        return self.router_aux_loss_coef != 0.0 or (self.entropy is not None and self.entropy.enabled)


def micro_batch_loss(setup: LossSetup, batch: Batch, sl: slice, num_items: torch.Tensor, steps: int = 1,
                     record: bool = True):
    """The loss of rows ``sl`` through the training model, one of ``steps`` micro-batches of
    an optimizer step: ``(loss, statistics, log-probs, entropies)``. The loss is scaled for
    gradient accumulation (÷ ``steps``, except for loss types already normalised over the
    step), with the entropy bonus and router loss when on (:mod:`engine.algo.regularizers`).
    ``record``: count its entropies towards adaptive entropy control (not for passes that
    only keep processes in step)."""
    cfg = setup.cfg
    loss_kind = grpo.loss_for(cfg.loss_type)
    bonus = setup.entropy is not None and setup.entropy.enabled
    logps, entropy, aux = setup.logps(batch.rollout, sl, entropy_grad=bonus, router_loss=setup.router_aux_loss_coef != 0.0)
    mask = batch.mask[sl]
    weights, entropy_weights, is_weights, is_stats = None, None, None, {}
    if cfg.top_entropy_quantile < 1.0:
        weights = entropy_weights = grpo.high_entropy_mask(entropy.detach(), mask, cfg.top_entropy_quantile)
    if setup.separate_engine and cfg.vllm_importance_sampling_correction:
        # the sampling policy's log-probs as the trainer computes them: this forward's own
        # until the round's first update has changed the weights, then the saved ones
        old = batch.old_logps[sl] if batch.old_logps is not None else logps.detach()
        is_weights, is_stats = grpo.sampling_correction(
            old, batch.rollout.logprobs[sl], mask, cfg.vllm_importance_sampling_mode,
            cfg.vllm_importance_sampling_clip_min, cfg.vllm_importance_sampling_clip_max)
        if "importance_sampling_ratio" not in loss_kind.options:  # vespo folds it into its own weight
            weights = is_weights if weights is None else weights * is_weights
    if cfg.off_policy_mask_threshold is not None:
        if setup.separate_engine:
            sampling = batch.rollout.logprobs[sl].to(logps.device)
        else:
            sampling = batch.old_logps[sl] if batch.old_logps is not None else logps.detach()
        keep = grpo.off_policy_mask(batch.advantages[sl], logps, sampling, mask, cfg.off_policy_mask_threshold)
        weights = keep if weights is None else weights * keep
    options = {name: getattr(cfg, name) for name in loss_kind.options if name != "importance_sampling_ratio"}
    if "importance_sampling_ratio" in loss_kind.options:
        options["importance_sampling_ratio"] = is_weights
    loss, stats = grpo.policy_loss(
        logps,
        batch.old_logps[sl] if batch.old_logps is not None else None,
        batch.advantages[sl],
        batch.mask[sl],
        loss_type=cfg.loss_type,
        epsilon_low=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        beta=cfg.beta if batch.ref_logps is not None else 0.0,
        ref_logps=batch.ref_logps[sl] if batch.ref_logps is not None else None,
        importance_sampling_level=cfg.importance_sampling_level,
        delta=cfg.delta,
        max_completion_length=cfg.max_completion_length,
        num_items_in_batch=num_items,
        entropies=entropy.detach(),
        token_weights=weights,
        options=options,
        use_bias_correction_kl=cfg.use_bias_correction_kl,
    )
    policy = loss.detach()
    if loss_kind.divides_by != "batch":
        loss = loss / steps
    if bonus:
        stats["policy_loss"] = policy  # TRL's name for the loss without the bonus
        acts_on = mask if entropy_weights is None else mask * entropy_weights
        loss = loss - setup.entropy.in_effect() * entropy_bonus(entropy, acts_on) / steps
        if record:
            setup.entropy.observe(entropy, acts_on)
    if aux is not None:
        loss = loss + setup.router_aux_loss_coef * aux / steps
        stats["aux_loss"] = aux.detach()
    return loss, {**stats, **is_stats}, logps, entropy.detach()


def loss_with_signal(setup: LossSetup, batch: Batch, sl: slice, num_items: torch.Tensor, steps: int = 1):
    """:func:`micro_batch_loss` of rows ``sl``, computing only the groups with a nonzero
    advantage when leaving the others out is exact: with β = 0 their loss terms are 0
    (:func:`engine.algo.grpo.groups_without_advantage`), and when the weights are still those
    that sampled them (one optimizer step per round, μ = 1, sampled by the training model
    itself) their log-probs and entropies are the ones recorded while sampling. Not so with an
    entropy bonus or a router loss (every row has a gradient), nor for a loss type whose
    statistics a flat group would change (:attr:`engine.algo.losses.Loss.exact_without_flat_groups`).

    Returns the loss (None when nothing was computed) and the statistics, log-probs and
    entropies of every row of ``sl``, as :func:`micro_batch_loss` does."""
    cfg = setup.cfg
    g = cfg.num_generations
    rollout = batch.rollout
    exact = (batch.ref_logps is None and batch.old_logps is None and rollout.entropy is not None
             and not setup.separate_engine and cfg.top_entropy_quantile >= 1.0
             and sl.start % g == 0 and (sl.stop - sl.start) % g == 0
             and not setup.regularized() and grpo.loss_for(cfg.loss_type).exact_without_flat_groups)
    if not exact:
        return micro_batch_loss(setup, batch, sl, num_items, steps)
    flat = grpo.groups_without_advantage(batch.advantages[sl], g)
    if not bool(flat.any()):
        return micro_batch_loss(setup, batch, sl, num_items, steps)
    keep = torch.nonzero(~flat).squeeze(1)
    if keep.numel() == 0 and setup.world > 1:  # every process runs a forward and backward (DDP, FSDP)
        keep = torch.arange(g, device=flat.device)
    mask = batch.mask[sl]
    logps = rollout.logprobs[sl].to(mask.device).clone()
    entropy = rollout.entropy[sl].to(mask.device).clone()
    # Here the ratio is 1 (no sampling policy to compare against), so nothing is clipped: every
    # clip statistic is 0 whichever rows are computed (a per-sequence extreme is NaN, as the full
    # computation's, when no row has a token).
    sequence_level = cfg.importance_sampling_level == "sequence"
    names = grpo.loss_for(cfg.loss_type).stat_names
    clipped = names == grpo.CLIP_RATIO_STATS  # the clipped surrogate's statistics (others: their own)
    stats = dict.fromkeys(names + (grpo.SEQUENCE_CLIP_STATS if clipped and sequence_level else ()), 0.0)
    if clipped and not sequence_level and not bool(mask.sum() > 0):
        stats["clip_ratio/low_min"] = stats["clip_ratio/high_max"] = float("nan")
    loss = None
    if keep.numel():
        sub = batch.select(keep + sl.start)
        loss, sub_stats, sub_logps, sub_entropy = micro_batch_loss(setup, sub, slice(None), num_items, steps)
        kept_tokens, all_tokens = float(sub.mask.sum()), float(mask.sum())
        loss = loss * grpo.subset_loss_scale(cfg.loss_type, keep.numel(), flat.numel(), kept_tokens, all_tokens)
        share = kept_tokens / max(all_tokens, 1.0)  # left-out tokens count 0 in any other token mean
        stats.update({k: float(v) * share for k, v in sub_stats.items() if k not in stats})
        logps[keep.to(logps.device)] = sub_logps.detach()
        entropy[keep.to(entropy.device)] = sub_entropy.detach()
    stats["entropy"] = float(grpo.masked_mean(entropy, mask))
    return loss, stats, logps, entropy
