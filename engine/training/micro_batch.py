"""The loss of one micro-batch of a round, leaving out the groups that carry no signal.

:func:`micro_batch_loss` runs the training forward over a micro-batch's rows, weights the
tokens (high-entropy selection, the correction for a separate sampling engine) and hands
everything to :func:`engine.algo.grpo.policy_loss`. :func:`loss_with_signal` computes only the
groups whose advantages are not all zero, when leaving the others out is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.algo import grpo
from engine.training.batch import Batch
from engine.config.schema import RunConfig
from engine.rollout.backend import Rollout


@dataclass
class LossSetup:
    """What the loss of a micro-batch depends on besides the batch."""

    cfg: RunConfig  # the run's (adjustable) settings, read at each call
    logps: Callable[[Rollout, slice], tuple[torch.Tensor, torch.Tensor]]
    """The training forward: log-probs and entropies [n, T] of rows ``sl`` of a rollout."""
    separate_engine: bool  # completions sampled by another engine (vLLM) with its own log-probs
    world: int  # processes training together


def micro_batch_loss(setup: LossSetup, batch: Batch, sl: slice, num_items: torch.Tensor):
    """The policy loss of rows ``sl`` through the training model: ``(loss, statistics,
    log-probs, entropies)``."""
    cfg = setup.cfg
    logps, entropy = setup.logps(batch.rollout, sl)
    weights, is_stats = None, {}
    if cfg.top_entropy_quantile < 1.0:
        weights = grpo.high_entropy_mask(entropy, batch.mask[sl], cfg.top_entropy_quantile)
    if setup.separate_engine and cfg.vllm_importance_sampling_correction:
        # the sampling policy's log-probs as the trainer computes them: this forward's own
        # until the round's first update has changed the weights, then the saved ones
        old = batch.old_logps[sl] if batch.old_logps is not None else logps.detach()
        is_weights, is_stats = grpo.sampling_correction(
            old, batch.rollout.logprobs[sl], batch.mask[sl], cfg.vllm_importance_sampling_mode,
            cfg.vllm_importance_sampling_clip_min, cfg.vllm_importance_sampling_clip_max)
        weights = is_weights if weights is None else weights * is_weights
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
        entropies=entropy,
        token_weights=weights,
        use_bias_correction_kl=cfg.use_bias_correction_kl,
    )
    return loss, {**stats, **is_stats}, logps, entropy


def loss_with_signal(setup: LossSetup, batch: Batch, sl: slice, num_items: torch.Tensor):
    """:func:`micro_batch_loss` of rows ``sl``, computing only the groups with a nonzero
    advantage when leaving the others out is exact: with β = 0 their loss terms are 0
    (:func:`engine.algo.grpo.groups_without_advantage`), and when the weights are still those
    that sampled them (one optimizer step per round, μ = 1, sampled by the training model
    itself) their log-probs and entropies are the ones recorded while sampling.

    Returns the loss (None when nothing was computed) and the statistics, log-probs and
    entropies of every row of ``sl``, as :func:`micro_batch_loss` does."""
    cfg = setup.cfg
    g = cfg.num_generations
    rollout = batch.rollout
    exact = (batch.ref_logps is None and batch.old_logps is None and rollout.entropy is not None
             and not setup.separate_engine and cfg.top_entropy_quantile >= 1.0
             and sl.start % g == 0 and (sl.stop - sl.start) % g == 0)
    if not exact:
        return micro_batch_loss(setup, batch, sl, num_items)
    flat = grpo.groups_without_advantage(batch.advantages[sl], g)
    if not bool(flat.any()):
        return micro_batch_loss(setup, batch, sl, num_items)
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
    stats = dict.fromkeys(grpo.CLIP_RATIO_STATS + (grpo.SEQUENCE_CLIP_STATS if sequence_level else ()), 0.0)
    if not sequence_level and not bool(mask.sum() > 0):
        stats["clip_ratio/low_min"] = stats["clip_ratio/high_max"] = float("nan")
    loss = None
    if keep.numel():
        sub = batch.select(keep + sl.start)
        loss, sub_stats, sub_logps, sub_entropy = micro_batch_loss(setup, sub, slice(None), num_items)
        kept_tokens, all_tokens = float(sub.mask.sum()), float(mask.sum())
        loss = loss * grpo.subset_loss_scale(cfg.loss_type, keep.numel(), flat.numel(), kept_tokens, all_tokens)
        share = kept_tokens / max(all_tokens, 1.0)  # left-out tokens count 0 in any other token mean
        stats.update({k: float(v) * share for k, v in sub_stats.items() if k not in stats})
        logps[keep.to(logps.device)] = sub_logps.detach()
        entropy[keep.to(entropy.device)] = sub_entropy.detach()
    stats["entropy"] = float(grpo.masked_mean(entropy, mask))
    return loss, stats, logps, entropy
