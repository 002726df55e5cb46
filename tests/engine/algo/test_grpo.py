"""The GRPO maths against hand-computed values (TRL's formulas)."""

import math

import pytest
import torch

from engine.algo import grpo
def test_group_advantages_group_scaling():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv, stats = grpo.group_advantages(rewards, 4, "group")
    std = math.sqrt(((0.75**2) + 3 * (0.25**2)) / 3)  # Bessel: 0.5
    assert std == pytest.approx(0.5)
    expected = [0.75 / (0.5 + 1e-4)] + [-0.25 / (0.5 + 1e-4)] * 3 + [0.0] * 4
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)
    assert float(stats["frac_reward_zero_std"]) == pytest.approx(0.5)
    assert float(stats["reward_std"]) == pytest.approx(rewards.std().item())  # TRL's: over the whole batch
    assert float(stats["reward_std_within_group"]) == pytest.approx(0.25)  # mean of 0.5 and 0


def test_group_advantages_batch_and_none():
    rewards = torch.tensor([2.0, 0.0, 1.0, 1.0])
    adv_none, _ = grpo.group_advantages(rewards, 2, "none")
    assert adv_none.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0])
    adv_batch, stats = grpo.group_advantages(rewards, 2, "batch")
    batch_std = torch.tensor([2.0, 0.0, 1.0, 1.0]).std().item()  # sqrt(2/3)
    assert batch_std == pytest.approx(math.sqrt(2 / 3))
    assert adv_batch.tolist() == pytest.approx([1 / (batch_std + 1e-4), -1 / (batch_std + 1e-4), 0.0, 0.0], rel=1e-6)
    assert float(stats["reward_std"]) == pytest.approx(batch_std)


def test_selective_log_softmax_and_entropy():
    logits = torch.tensor([[[1.0, 2.0, 3.0]]])
    logp = grpo.selective_log_softmax(logits, torch.tensor([[2]]))
    z = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    assert logp.item() == pytest.approx(3 - z)
    uniform = torch.zeros(1, 1, 4)
    assert grpo.entropy_from_logits(uniform).item() == pytest.approx(math.log(4))


def test_k3_kl():
    logp = torch.tensor([0.0, -1.0])
    ref = torch.tensor([0.0, -1.1])
    kl = grpo.k3_kl(logp, ref)
    assert kl[0].item() == pytest.approx(0.0)
    assert kl[1].item() == pytest.approx(math.exp(-0.1) + 0.1 - 1, rel=1e-5)


def _loss(**kw):
    defaults = dict(loss_type="bnpo", epsilon_low=0.2)
    defaults.update(kw)
    return defaults


def test_policy_loss_mu1_value_and_gradient():
    # μ = 1: ratio is 1, loss = −mean(A) over tokens, gradient = −A/num_tokens on each logp
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = grpo.policy_loss(logps, None, adv, mask, **_loss())
    assert loss.item() == pytest.approx((-1 - 1 + 1) / 3)
    loss.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-1 / 3, -1 / 3, 1 / 3, 0.0])
    assert stats["clip_ratio/region_mean"].item() == 0.0


def test_policy_loss_clipping_high_and_low():
    old = torch.zeros(1, 2)
    logps = torch.log(torch.tensor([[1.5, 0.5]]))
    mask = torch.ones(1, 2)
    # positive advantage: token 0 ratio 1.5 clipped to 1.2 (high), token 1 ratio .5 unclipped (min picks .5)
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([1.0]), mask, **_loss())
    assert loss.item() == pytest.approx(-(1.2 + 0.5) / 2)
    assert stats["clip_ratio/high_mean"].item() == pytest.approx(0.5)
    assert stats["clip_ratio/low_mean"].item() == 0.0
    # negative advantage: −min(r·A, clip·A) = max(r, clip)·|A| → token 0 → 1.5, token 1 → clip(.5)=.8 (low)
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([-1.0]), mask, **_loss())
    assert loss.item() == pytest.approx((1.5 + 0.8) / 2)
    assert stats["clip_ratio/low_mean"].item() == pytest.approx(0.5)
    assert stats["clip_ratio/region_mean"].item() == pytest.approx(0.5)


def test_epsilon_high_clip_higher():
    old = torch.zeros(1, 1)
    logps = torch.log(torch.tensor([[1.25]]))
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([1.0]), torch.ones(1, 1), **_loss(epsilon_high=0.28))
    assert loss.item() == pytest.approx(-1.25)
    assert stats["clip_ratio/high_mean"].item() == 0.0


def test_delta_two_sided_clipping():
    old = torch.zeros(1, 1)
    logps = torch.log(torch.tensor([[3.0]]))
    loss, _ = grpo.policy_loss(logps, old, torch.tensor([-1.0]), torch.ones(1, 1), **_loss(delta=2.0))
    assert loss.item() == pytest.approx(2.0)  # ratio 3 capped at δ = 2 (without δ: 3)


def test_loss_type_normalisations():
    per = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # mask: 3 tokens and 1 token
    logps = torch.zeros(2, 3)
    old = torch.zeros(2, 3)
    adv = torch.tensor([-1.0, -1.0])  # with ratio 1 each masked token contributes +1
    # grpo: mean over rows of per-row token means = (1 + 1)/2 = 1
    assert grpo.policy_loss(logps, old, adv, per, **_loss(loss_type="grpo"))[0].item() == pytest.approx(1.0)
    # bnpo: 4 / 4 = 1 ; with per-token values differing it differs, check with advantages [-1, -3]
    adv2 = torch.tensor([-1.0, -3.0])
    assert grpo.policy_loss(logps, old, adv2, per, **_loss(loss_type="grpo"))[0].item() == pytest.approx((1 + 3) / 2)
    assert grpo.policy_loss(logps, old, adv2, per, **_loss(loss_type="bnpo"))[0].item() == pytest.approx((3 + 3) / 4)
    # dr_grpo: Σ / (N · T_max) with T_max = 5
    assert grpo.policy_loss(logps, old, adv2, per, **_loss(loss_type="dr_grpo", max_completion_length=5))[0].item() == pytest.approx(6 / 10)
    # dapo: Σ / tokens of the whole generation batch (e.g. 12 across accumulation steps)
    assert grpo.policy_loss(logps, old, adv2, per, **_loss(loss_type="dapo", num_items_in_batch=12.0))[0].item() == pytest.approx(6 / 12)
    # dapo without a global count is the micro-batch token mean (= bnpo)
    assert grpo.policy_loss(logps, old, adv2, per, **_loss(loss_type="dapo"))[0].item() == pytest.approx(6 / 4)


def test_kl_penalty_added_with_beta():
    logps = torch.tensor([[-1.0]])
    ref = torch.tensor([[-1.1]])
    loss, stats = grpo.policy_loss(logps, None, torch.tensor([0.0]), torch.ones(1, 1), **_loss(beta=0.5, ref_logps=ref))
    kl = math.exp(-0.1) + 0.1 - 1
    assert stats["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * kl, rel=1e-5)
    with pytest.raises(ValueError):
        grpo.policy_loss(logps, None, torch.tensor([0.0]), torch.ones(1, 1), **_loss(beta=0.5))


def test_sequence_level_importance_sampling_gspo():
    old = torch.zeros(1, 2)
    logps = torch.tensor([[math.log(1.1), math.log(1.5)]])
    mask = torch.ones(1, 2)
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([1.0]), mask,
                                   **_loss(importance_sampling_level="sequence"))
    w = math.exp((math.log(1.1) + math.log(1.5)) / 2)  # geometric mean of the ratios ≈ 1.2845
    assert w > 1.2
    assert loss.item() == pytest.approx(-1.2)  # both tokens share the clipped sequence weight
    assert stats["clip_ratio/high_mean"].item() == pytest.approx(1.0)
    loss_tok, _ = grpo.policy_loss(logps, old, torch.tensor([1.0]), mask, **_loss())
    assert loss_tok.item() == pytest.approx(-(1.1 + 1.2) / 2)


def test_truncated_completions_masked():
    mask = torch.ones(3, 2)
    out = grpo.truncation_mask(mask, torch.tensor([False, True, False]))
    assert out.tolist() == [[1, 1], [0, 0], [1, 1]]
    logps = torch.zeros(3, 2)
    adv = torch.tensor([-1.0, -5.0, -1.0])
    loss, _ = grpo.policy_loss(logps, None, adv, out, **_loss())
    assert loss.item() == pytest.approx(1.0)  # the truncated row's −5 is ignored


def test_num_iterations_old_logps_ratio():
    # μ > 1: the second pass sees a ratio against the logps stored at generation time
    old = torch.tensor([[-1.0]])
    logps = torch.tensor([[-1.0 + math.log(1.1)]], requires_grad=True)
    loss, stats = grpo.policy_loss(logps, old, torch.tensor([2.0]), torch.ones(1, 1), **_loss())
    assert loss.item() == pytest.approx(-2.2)
    loss.backward()
    assert logps.grad.item() == pytest.approx(-2.2)  # d(−r·A)/dlogp = −r·A inside the clip range
    assert stats["clip_ratio/region_mean"].item() == 0.0


def test_completion_logits_alignment():
    # the logit at position t predicts token t+1: completion logits are positions P-1 .. P+T-2
    logits = torch.arange(5.0).view(1, 5, 1).expand(1, 5, 2)
    out = grpo.completion_logits(logits, 2, temperature=2.0)
    assert out[0, :, 0].tolist() == [1.0, 1.5]


def test_normalize_then_sum_hand_computed():
    per_func = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    adv, stats = grpo.normalize_then_sum_advantages(per_func, torch.tensor([1.0, 1.0]), 2)
    s = 0.5 / (math.sqrt(0.5) + 1e-4)  # Â_0 = ±(1 − .5)/(std .7071 + 1e-4), Â_1 = 0
    sums = torch.tensor([s, -s])
    expected = (sums - sums.mean()) / (sums.std() + 1e-4)
    assert adv.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    # a reward with a huge spread no longer dominates: scale one function by 100
    per_func = torch.tensor([[100.0, 0.0], [0.0, 1.0], [100.0, 1.0], [0.0, 0.0]])
    adv_a, _ = grpo.normalize_then_sum_advantages(per_func, torch.ones(2), 2)
    adv_b, _ = grpo.normalize_then_sum_advantages(per_func / torch.tensor([100.0, 1.0]), torch.ones(2), 2)
    assert adv_a.tolist() == pytest.approx(adv_b.tolist(), abs=1e-4)
    # NaN (None) rows count as zero for that function
    per_func = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    adv, _ = grpo.normalize_then_sum_advantages(per_func, torch.ones(2), 2)
    assert torch.isfinite(adv).all() and adv[0] > 0 > adv[1]


def test_groups_with_signal():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    assert grpo.groups_with_signal(rewards, 2).tolist() == [False, True, False]


def test_high_entropy_mask():
    ent = torch.tensor([[0.1, 0.5, 0.9, 0.3]])
    mask = torch.ones(1, 4)
    assert grpo.high_entropy_mask(ent, mask, 0.5).tolist() == [[0.0, 1.0, 1.0, 0.0]]
    assert grpo.high_entropy_mask(ent, mask, 1.0).tolist() == [[1.0, 1.0, 1.0, 1.0]]
    # padded positions never count, nor set the threshold
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert grpo.high_entropy_mask(ent, mask, 0.5).tolist() == [[0.0, 1.0, 0.0, 0.0]]
    # the weights zero the loss of low-entropy tokens
    logps = torch.zeros(1, 4)
    loss, _ = grpo.policy_loss(logps, None, torch.tensor([-1.0]), torch.ones(1, 4), loss_type="bnpo",
                               token_weights=torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    assert loss.item() == pytest.approx(2 / 4)


def test_mix_into_reference_and_pass_at_k():
    ref, model = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    ref.weight.data.fill_(0.0)
    model.weight.data.fill_(1.0)
    grpo.mix_into_reference(ref, model, 0.6)
    assert ref.weight.item() == pytest.approx(0.6)
    assert grpo.pass_at_k(4, 0, 2) == 0.0
    assert grpo.pass_at_k(4, 4, 2) == 1.0
    assert grpo.pass_at_k(4, 1, 2) == pytest.approx(1 - (3 * 2) / (4 * 3))  # 1 − C(3,2)/C(4,2) = .5
