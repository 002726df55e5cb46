"""The loss-type registry: the names users may choose, the split into surrogate and
normalisation giving bit for bit the numbers and gradients of the single function it replaced,
and a new loss type added by one registry entry."""

from __future__ import annotations

import itertools
import typing

import pytest
import torch

from engine.algo import grpo, losses


def _policy_loss_before_split(logps, old_logps, advantages, completion_mask, *, loss_type="dapo", epsilon_low=0.2,
                              epsilon_high=None, beta=0.0, ref_logps=None, importance_sampling_level="token",
                              delta=None, max_completion_length=None, num_items_in_batch=None, entropies=None,
                              token_weights=None):
    """``grpo.policy_loss`` as one function, frozen as it was before the loss types became a registry
    (its KL is the plain k3 term: ``use_bias_correction_kl=False``; its clip ratios count tokens)."""
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    mask = completion_mask.to(logps.dtype)
    if old_logps is None:
        old_logps = logps.detach()
    log_ratio = logps - old_logps
    if importance_sampling_level == "sequence":
        log_weights = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_weights = log_ratio
    ratio = torch.exp(log_weights)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    if delta is not None:
        ratio = torch.clamp(ratio, max=delta)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if token_weights is not None:
        per_token = per_token * token_weights
    stats = {}
    if beta != 0.0:
        delta_ref = ref_logps - logps
        kl = torch.exp(delta_ref) - delta_ref - 1
        per_token = per_token + beta * kl
        stats["kl"] = (kl.detach() * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.size(0) * max_completion_length)
    else:
        normaliser = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1.0)
        loss = (per_token * mask).sum() / normaliser
    with torch.no_grad():
        ratio_d = ratio.detach().expand_as(per_token)
        low = ((ratio_d < 1 - epsilon_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio_d > 1 + epsilon_high) & (adv > 0)).to(mask.dtype)
        for name, tokens in zip(grpo.CLIP_RATIO_STATS, (low, high, torch.clamp(low + high, max=1.0))):
            stats[name] = (tokens * mask).sum() / mask.sum().clamp(min=1.0)
        if entropies is not None:
            stats["entropy"] = (entropies.detach() * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, stats


def _inputs(seed: int):
    gen = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    logps = (torch.randn(n, t, generator=gen) * 0.3 - 1.0).requires_grad_(True)
    old = logps.detach() + torch.randn(n, t, generator=gen) * 0.4  # ratios well outside 1 ± ε
    lengths = torch.randint(0, t + 1, (n,), generator=gen)  # one row may be all padding
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).float()
    return dict(
        logps=logps, old=old, mask=mask,
        advantages=torch.randn(n, generator=gen),
        ref=logps.detach() + torch.randn(n, t, generator=gen) * 0.2,
        entropies=torch.rand(n, t, generator=gen) * 3,
        weights=(torch.rand(n, t, generator=gen) > 0.3).float(),
    )


OPTIONS = list(itertools.product(
    [0.0, 0.04],  # beta
    [None, 1.3],  # delta
    [None, 0.28],  # epsilon_high
    [True, False],  # old log-probs given (μ > 1) or not (μ = 1)
    [True, False],  # token weights and entropies given
))


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_registry_composition_equals_the_single_function_bit_for_bit(loss_type, level):
    for beta, delta, epsilon_high, with_old, with_weights in OPTIONS:
        case = dict(beta=beta, delta=delta, epsilon_high=epsilon_high, with_old=with_old, with_weights=with_weights)
        results = []
        for fn in (_policy_loss_before_split, grpo.policy_loss):
            x = _inputs(seed=7)
            loss, stats = fn(
                x["logps"], x["old"] if with_old else None, x["advantages"], x["mask"],
                loss_type=loss_type, epsilon_low=0.2, epsilon_high=epsilon_high, beta=beta,
                ref_logps=x["ref"] if beta else None, importance_sampling_level=level, delta=delta,
                max_completion_length=9, num_items_in_batch=x["mask"].sum() + 5 if loss_type == "dapo" else None,
                entropies=x["entropies"] if with_weights else None,
                token_weights=x["weights"] if with_weights else None,
                **({} if fn is _policy_loss_before_split else {"use_bias_correction_kl": False}))
            loss.backward()
            results.append((loss.detach(), x["logps"].grad, stats))
        (before, grad_before, stats_before), (after, grad_after, stats_after) = results
        assert torch.equal(before, after), (case, before.item(), after.item())
        assert torch.equal(grad_before, grad_after), case
        assert set(stats_before) <= set(stats_after), case
        for name in stats_before:
            if level == "sequence" and name.startswith("clip_ratio/"):
                continue  # at sequence level they count sequences, as TRL (tests/engine/algo/test_trl_metrics.py)
            assert torch.equal(stats_before[name], stats_after[name]), (case, name)


def test_the_registry_holds_the_loss_types_users_may_choose():
    schema = pytest.importorskip("engine.config.schema")
    names = getattr(schema, "LossType", None)
    if names is None:
        pytest.skip("engine.config.schema has no LossType Literal to compare the registry with")
    assert set(losses.LOSSES) == set(typing.get_args(names))


def test_the_advantage_scalings_are_those_users_may_choose():
    schema = pytest.importorskip("engine.config.schema")
    names = getattr(schema, "ScaleRewards", None)
    if names is None:
        pytest.skip("engine.config.schema has no ScaleRewards Literal to compare with")
    assert set(typing.get_args(grpo.ScaleRewards)) == set(typing.get_args(names))


def test_a_new_loss_type_is_one_registry_entry(monkeypatch):
    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))

    def sign_surrogate(logps, old_logps, advantages, mask, **_):
        ratio = torch.exp(logps - old_logps)
        return -ratio * advantages.sign().unsqueeze(1), ratio

    @losses.register_loss("sum_sign", divides_by="rows", surrogate=sign_surrogate)
    def plain_sum(terms, mask, *, max_completion_length=None, num_items_in_batch=None):
        return (terms * mask).sum()

    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    loss, stats = grpo.policy_loss(torch.zeros(2, 3), None, torch.tensor([2.0, -3.0]), mask, loss_type="sum_sign")
    assert loss.item() == pytest.approx(-2 + 1)  # −1 on each of row 0's two tokens, +1 on row 1's one
    assert stats["clip_ratio/region_mean"].item() == 0.0
    assert grpo.subset_loss_scale("sum_sign", 1, 4, 1.0, 3.0) == pytest.approx(0.25)


def test_an_unknown_loss_type_is_named():
    with pytest.raises(ValueError, match="unknown loss_type 'ppo'"):
        grpo.policy_loss(torch.zeros(1, 1), None, torch.ones(1), torch.ones(1, 1), loss_type="ppo")
    with pytest.raises(ValueError, match="unknown loss_type 'ppo'"):
        grpo.subset_loss_scale("ppo", 1, 2, 1.0, 2.0)


def test_subset_scale_follows_what_each_normaliser_divides_by():
    # rows 0..1 kept of 4, the rest contribute exactly 0: the scaled subset loss equals the full loss
    terms = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    for name, loss in losses.LOSSES.items():
        kw = dict(max_completion_length=3, num_items_in_batch=float(mask.sum()))
        full = loss.normalize(terms, mask, **kw)
        part = loss.normalize(terms[:2], mask[:2], **kw)
        scale = grpo.subset_loss_scale(name, 2, 4, float(mask[:2].sum()), float(mask.sum()))
        assert (part * scale).item() == pytest.approx(full.item()), name
