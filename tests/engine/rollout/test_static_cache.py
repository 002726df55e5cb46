"""Decoding over the static cache (cache_implementation: static; the default on CUDA) gives the
default loop's greedy tokens and the model's own log-probs for what it samples, for every
supported family, with padding, grouped-query heads, early ends and reused buffers.

On the CPU the step runs as it is; on CUDA the same step is captured as a graph (the CUDA test)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config, Qwen3Config

from conftest import TINY_MODEL
from engine.rollout import static_cache
from engine.rollout.backend import SamplingParams, TransformersRollout, filter_logits, sample

SMALL = dict(vocab_size=40, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=512, pad_token_id=0, eos_token_id=1)
FAMILIES = {
    "llama-gqa": (LlamaConfig, dict(num_key_value_heads=2)),
    "qwen2-bias": (Qwen2Config, dict(num_key_value_heads=1)),
    "qwen3-qk-norm": (Qwen3Config, dict(num_key_value_heads=2, head_dim=16)),
}
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17]]  # ragged: left padding


def make(family: str, device: str = "cpu"):
    config_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_cls(**SMALL, **extra), attn_implementation="sdpa")
    return model.float().to(device)


def backends(model, eos=(1,)):
    return (TransformersRollout(model, 0, list(eos), cache_implementation="dynamic"),
            TransformersRollout(model, 0, list(eos), cache_implementation="static"))


def teacher_forced_logps(model, rollout, temperature=1.0):
    """log p(token | prompt, earlier tokens) from one full forward of each whole sequence."""
    ids = torch.cat([rollout.prompt_ids, rollout.completion_ids], dim=1)
    mask = torch.cat([rollout.prompt_mask, rollout.completion_mask], dim=1)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    width = rollout.prompt_ids.size(1)
    logits = logits[:, width - 1:-1] / temperature
    return torch.log_softmax(logits, -1).gather(2, rollout.completion_ids[..., None]).squeeze(2)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_greedy_tokens_equal_the_default_loop(family):
    model = make(family)
    dynamic, static = backends(model, eos=(1, 2, 3))
    assert static.uses_static_cache(torch.device("cpu")) and not dynamic.uses_static_cache(torch.device("cpu"))
    params = SamplingParams(max_new_tokens=40, greedy=True)
    want = dynamic.generate(PROMPTS, 2, params)
    got = static.generate(PROMPTS, 2, params)
    assert torch.equal(got.completion_ids, want.completion_ids)
    assert torch.equal(got.completion_mask, want.completion_mask)
    assert torch.equal(got.truncated, want.truncated)
    torch.testing.assert_close(got.logprobs, want.logprobs, rtol=1e-5, atol=1e-5)
    assert got.entropy is None and want.entropy is None


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sampled_tokens_carry_the_models_own_logprobs(family, monkeypatch):
    """Long enough to cross a span boundary (spans of 16 here) and a check for ended rows."""
    monkeypatch.setattr(static_cache, "SPAN", 16)
    monkeypatch.setattr("engine.rollout.backend.SPAN", 16)
    model = make(family)
    _, static = backends(model, eos=(1, 2))
    params = SamplingParams(max_new_tokens=50, temperature=0.8)
    rollout = static.generate(PROMPTS, 4, params, torch.Generator().manual_seed(3))
    mask = rollout.completion_mask.bool()
    want = teacher_forced_logps(model, rollout, temperature=0.8)
    torch.testing.assert_close(rollout.logprobs[mask], want[mask], rtol=1e-4, atol=1e-4)
    # rows end at different points: after its end token a row holds padding only, and is out of the mask
    lengths = rollout.completion_mask.sum(1)
    assert lengths.min() < lengths.max() == rollout.completion_ids.size(1)
    for row, n in zip(rollout.completion_ids, lengths.tolist(), strict=True):
        assert (row[n:] == 0).all()
        assert row[n - 1].item() in (1, 2) or n == 50
    assert (rollout.truncated == (lengths == 50)).all()


def test_buffers_are_kept_for_the_next_round_and_follow_weight_updates():
    model = make("llama-gqa")
    dynamic, static = backends(model, eos=(1,))
    params = SamplingParams(max_new_tokens=12, greedy=True)
    static.generate(PROMPTS, 2, params)
    kept = static.static
    with torch.no_grad():  # an optimizer step: the weights change in place, then the trainer syncs them
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    static.sync_weights(model)
    got = static.generate(PROMPTS, 2, params)
    assert static.static is kept  # same shape, same weights' storage: the buffers (and graphs) serve again
    want = dynamic.generate(PROMPTS, 2, params)
    assert torch.equal(got.completion_ids, want.completion_ids)
    static.generate(PROMPTS, 2, SamplingParams(max_new_tokens=5, greedy=True))  # fewer slots needed: served too
    assert static.static is kept
    static.generate(PROMPTS[:2], 2, params)  # other rows: new buffers
    assert static.static is not kept


def test_the_tiny_models_batch_matches_the_default_loop_and_reports_progress():
    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    dynamic, static = backends(model, eos=(tok.eos_token_id,))
    dynamic.pad_id = static.pad_id = tok.pad_token_id
    prompts = [tok(p)["input_ids"] for p in ("12+34=", "7+8=", "90+9=")]
    params = SamplingParams(max_new_tokens=40, greedy=True)
    seen = []
    got = static.generate(prompts, 3, params, progress=lambda *a: seen.append(a))
    want = dynamic.generate(prompts, 3, params)
    assert torch.equal(got.completion_ids, want.completion_ids)
    assert not got.truncated.any()  # the tiny model ends its answers: the loop stopped at a check
    assert got.completion_ids.size(1) < 40
    assert all(position % static_cache.CHECK_EVERY == 0 and rows == 9 for position, _, _, _, rows in seen)


def test_cache_implementation_picks_the_loop():
    model = make("llama-gqa")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not TransformersRollout(model, 0, [1]).uses_static_cache(cpu)
    assert TransformersRollout(model, 0, [1]).uses_static_cache(cuda)  # None: static on CUDA
    assert not TransformersRollout(model, 0, [1], cache_implementation="dynamic").uses_static_cache(cuda)
    assert not TransformersRollout(model, 0, [1], cache_implementation="hybrid").uses_static_cache(cuda)  # TRL's
    assert TransformersRollout(model, 0, [1], cache_implementation="offloaded_static").uses_static_cache(cpu)
    gpt2 = AutoModelForCausalLM.from_config(
        __import__("transformers").GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=40))
    assert not TransformersRollout(gpt2, 0, [1], cache_implementation="static").uses_static_cache(cuda)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cuda_graphs_give_the_eager_steps_results(family, monkeypatch):
    monkeypatch.setattr("engine.rollout.backend.SPAN", 16)  # several spans, so several graphs
    model = make(family, "cuda")
    dynamic, static = backends(model, eos=(39,))
    params = SamplingParams(max_new_tokens=100, greedy=True)
    want = dynamic.generate(PROMPTS, 2, params)
    got = static.generate(PROMPTS, 2, params)
    assert static.static.graph_error is None
    assert len(static.static.graphs) >= 2
    assert torch.equal(got.completion_ids, want.completion_ids)
    sampled = static.generate(PROMPTS, 4, SamplingParams(max_new_tokens=100),
                              torch.Generator(device="cuda").manual_seed(0))
    mask = sampled.completion_mask.bool()
    torch.testing.assert_close(sampled.logprobs[mask], teacher_forced_logps(model, sampled)[mask],
                               rtol=1e-3, atol=1e-3)


def test_sampling_draws_what_torch_multinomial_draws_from_the_same_generator():
    """The sampler skips multinomial's probability checks (two waits for the device per token) but
    not its draws: the same tokens from the same stream, and the stream left in the same state."""
    logits = torch.randn(32, 500, generator=torch.Generator().manual_seed(0)) * 3
    params = SamplingParams(max_new_tokens=1, temperature=0.7, top_k=50)
    mine, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    token, logp, _ = sample(logits, params, mine)
    probs = torch.softmax(filter_logits(logits / 0.7, params), dim=-1)
    assert torch.equal(token, torch.multinomial(probs, 1, generator=theirs).squeeze(1))
    assert torch.equal(mine.get_state(), theirs.get_state())


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_a_model_with_non_finite_logits_fails_with_one_clear_error(cache):
    model = make("llama-gqa")
    with torch.no_grad():
        model.lm_head.weight[3].fill_(float("nan"))
    backend = TransformersRollout(model, 0, [1], cache_implementation=cache)
    with pytest.raises(FloatingPointError, match="not finite"):
        backend.generate(PROMPTS, 2, SamplingParams(max_new_tokens=5), torch.Generator().manual_seed(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_step_that_cannot_be_captured_runs_as_it_is(monkeypatch):
    """A layer that waits for the device (not allowed in a CUDA graph) costs the graphs, not the
    results, and leaves the thread on its own stream."""
    original = static_cache.StaticCache.forward

    def waiting(self, span):
        out = original(self, span)
        float(out[0, 0])  # a host synchronisation
        return out

    monkeypatch.setattr(static_cache.StaticCache, "forward", waiting)
    model = make("llama-gqa", "cuda")
    dynamic, static = backends(model, eos=(39,))
    stream = torch.cuda.current_stream()
    params = SamplingParams(max_new_tokens=30, greedy=True)
    got = static.generate(PROMPTS, 2, params)
    assert static.static.graph_error and not static.static.graphs
    assert torch.cuda.current_stream() == stream
    assert torch.equal(got.completion_ids, dynamic.generate(PROMPTS, 2, params).completion_ids)
