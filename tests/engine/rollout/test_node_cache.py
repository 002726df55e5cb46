"""The default decoding loop's preallocated cache: where nodes go between steps, and that
decoding through it gives what the model's own forward and cache give, for every supported
family, with padding, grouped-query heads, rows that share a prefix and split, and rows that end."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

from engine.rollout import node_cache
from engine.rollout.backend import SamplingParams, TransformersRollout
from engine.rollout.node_cache import placement

SMALL = dict(vocab_size=40, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=512, pad_token_id=0, eos_token_id=1)
FAMILIES = {
    "llama": (LlamaConfig, {}),
    "llama-gqa": (LlamaConfig, dict(num_key_value_heads=2)),
    "qwen2-bias": (Qwen2Config, dict(num_key_value_heads=1)),
    "qwen3-qk-norm": (Qwen3Config, dict(num_key_value_heads=2, head_dim=16)),
}
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17]]  # ragged: left padding


def test_placement_keeps_continuing_nodes_in_place_and_copies_only_into_free_slots():
    rng = random.Random(0)
    for _ in range(500):
        old = rng.randint(1, 12)
        children = [rng.choice([0, 0, 1, 1, 1, 2, 3]) for _ in range(old)]  # per old slot: 0 = its rows ended
        parent = [slot for slot, c in enumerate(children) for _ in range(c)]
        if not parent:
            continue
        order, copies = placement(parent)
        count = len(parent)
        assert sorted(order) == list(range(count))  # every node gets exactly one slot
        written = {dst for _, dst in copies}
        assert not written & {src for src, _ in copies}  # no copy reads a slot another writes
        for slot, node in enumerate(order):
            source = slot if slot not in written else dict((d, s) for s, d in copies)[slot]
            assert source == parent[node]  # the slot then holds its node's parent's prefix
        first_children = {p for j, p in enumerate(parent) if p < count and (j == 0 or parent[j - 1] != p)}
        assert len(copies) == count - len(first_children)  # copies only where a node cannot stay


def make(family: str):
    config_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config_cls(**SMALL, **extra), attn_implementation="sdpa").float()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=24, temperature=0.3),
                                    SamplingParams(max_new_tokens=16, top_k=5, repetition_penalty=1.2)],
                         ids=["low-temperature", "top-k-penalty"])
def test_decoding_through_the_node_cache_gives_the_models_own_forward(family, params, monkeypatch):
    model = make(family)
    with torch.no_grad():  # make the end token likely, so rows end at different steps
        model.lm_head.weight[1] += 0.15 * model.model.norm.weight.sign() * model.lm_head.weight.norm(dim=1).mean()
    copies = []
    real = node_cache.placement
    monkeypatch.setattr(node_cache, "placement", lambda parent: copies.append(real(parent)[1]) or real(parent))
    lean = TransformersRollout(model, 0, [1], cache_implementation="dynamic")
    assert lean.lean is not None
    own = TransformersRollout(model, 0, [1], cache_implementation="dynamic")
    own.lean = None  # the model's own forward and cache
    got = lean.generate(PROMPTS, 6, params, torch.Generator().manual_seed(3))
    want = own.generate(PROMPTS, 6, params, torch.Generator().manual_seed(3))
    assert torch.equal(got.completion_ids, want.completion_ids)
    assert torch.equal(got.completion_mask, want.completion_mask)
    torch.testing.assert_close(got.logprobs, want.logprobs, rtol=1e-5, atol=1e-5)
    lengths = got.lengths.tolist()
    assert min(lengths) < max(lengths)  # some rows ended early
    assert any(copies)  # nodes split or moved down: prefixes were copied between slots
