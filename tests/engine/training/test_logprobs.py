"""Computing each group's prompt once gives the same log-probs and gradients as the full forward."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import TINY_MODEL
from engine.training.logprobs import completion_logps
from engine.rollout.backend import SamplingParams, TransformersRollout


import pytest


@pytest.mark.parametrize("bucket_overhead", [0, 10_000])  # many buckets / a single one
def test_shared_prompt_forward_equals_full_forward(monkeypatch, bucket_overhead):
    monkeypatch.setattr("engine.training.logprobs.BUCKET_OVERHEAD_TOKENS", bucket_overhead)
    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    backend = TransformersRollout(model, tok.pad_token_id, [tok.eos_token_id])
    prompts = [tok(p)["input_ids"] for p in ("12+34=", "7+8=", "90+9=")]  # ragged: left padding
    rollout = backend.generate(prompts, 4, SamplingParams(max_new_tokens=6), torch.Generator().manual_seed(1))
    lengths = rollout.completion_mask.sum(1).tolist()
    assert len(set(lengths)) > 1, lengths  # ragged lengths, so buckets differ
    rows = [tuple(r) for r in rollout.completion_ids.tolist()]
    assert len(set(rows[:4])) < 4 or len(set(rows[4:8])) < 4  # some completions repeat within a group
    model.train()

    def run(sl, group):
        model.zero_grad()
        logps, ent = completion_logps(model, rollout, sl, group, temperature=0.7, with_entropy=True)
        (logps * rollout.completion_mask[sl]).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return logps.detach(), ent, grads

    shared = run(slice(0, 12), 4)
    full = run(slice(0, 12), 1)  # group 1 = no sharing
    mask = rollout.completion_mask.bool()
    assert torch.allclose(shared[0][mask], full[0][mask], atol=1e-5)
    assert torch.allclose(shared[1][mask], full[1][mask], atol=1e-5)
    assert torch.allclose(shared[2], full[2], atol=1e-4)
    # a micro-batch that splits a group falls back to the full forward
    part = run(slice(2, 6), 4)
    assert torch.allclose(part[0][mask[2:6]], full[0][2:6][mask[2:6]], atol=1e-5)


def test_length_buckets():
    from engine.training.logprobs import length_buckets

    assert length_buckets([3] * 60 + [8] * 4, overhead=64) == [3, 8]
    assert length_buckets([8] * 64, overhead=64) == [8]
    assert length_buckets([2] * 30 + [5] * 30 + [40] * 4, overhead=16) == [2, 5, 40]
    assert length_buckets([4, 5], overhead=64) == [5]  # not worth a second forward
