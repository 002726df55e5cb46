"""The lean forward gives the model's own logits and gradients, for every supported family."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config, Qwen3Config

from engine.rollout.llama_forward import gather_cache, lean_decoder
from engine.rollout.backend import position_ids_from_mask

SMALL = dict(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64, pad_token_id=0)


def make(config_cls, **extra):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_cls(**SMALL, **extra), attn_implementation="sdpa")
    return model.float()


FAMILIES = {
    "llama-gqa": lambda: make(LlamaConfig, num_key_value_heads=2),
    "qwen2-bias": lambda: make(Qwen2Config, num_key_value_heads=2),
    "qwen3-qk-norm": lambda: make(Qwen3Config, num_key_value_heads=2, head_dim=16),
}


def left_padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(3, 31, (5, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, :1] = 0
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_with_padding_and_cache_match_the_model(family):
    model = FAMILIES[family]().eval()
    lean = lean_decoder(model)
    assert lean is not None
    ids, mask = left_padded_batch()
    pos = position_ids_from_mask(mask)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        got, cache = lean(ids, pos, mask)
        real = mask.bool()
        torch.testing.assert_close(got[real], ref.logits[real], rtol=1e-5, atol=1e-5)

        # two more tokens on top of the cache, for rows picked out of it (as generation does)
        rows = torch.tensor([4, 0, 0, 2])
        ref.past_key_values.batch_select_indices(rows)
        nxt = torch.randint(3, 31, (4, 2))
        mask2 = torch.cat([mask[rows], torch.ones(4, 2, dtype=mask.dtype)], dim=1)
        pos2 = pos[rows, -1:] + 1 + torch.arange(2)
        want = model(input_ids=nxt, attention_mask=mask2, position_ids=pos2, past_key_values=ref.past_key_values).logits
        got2, cache2 = lean(nxt, pos2, mask2, gather_cache(cache, rows))
        torch.testing.assert_close(got2, want, rtol=1e-5, atol=1e-5)
        assert cache2[0][0].size(2) == ids.size(1) + 2


def test_unpadded_prefill_and_one_token_decode_match():
    model = FAMILIES["llama-gqa"]().eval()
    lean = lean_decoder(model)
    ids = torch.randint(3, 31, (3, 6))
    pos = torch.arange(6).expand(3, 6)
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=True)
        got, cache = lean(ids, pos, None, keep=1)
        torch.testing.assert_close(got, ref.logits[:, -1:], rtol=1e-5, atol=1e-5)
        tok, p = torch.randint(3, 31, (3, 1)), torch.full((3, 1), 6)
        want = model(input_ids=tok, position_ids=p, past_key_values=ref.past_key_values).logits
        got, cache = lean(tok, p, None, cache)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # several new tokens on a cache without padding: causal among themselves, all of the past
        more, p3 = torch.randint(3, 31, (3, 3)), 7 + torch.arange(3).expand(3, 3)
        want = model(input_ids=more, position_ids=p3, past_key_values=ref.past_key_values).logits
        torch.testing.assert_close(lean(more, p3, None, cache)[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradients_match_the_model(family):
    model = FAMILIES[family]().train()
    ids, mask = left_padded_batch()
    pos = position_ids_from_mask(mask)
    weights = torch.randn(ids.size(0), ids.size(1), SMALL["vocab_size"])

    def grads(logits):
        model.zero_grad()
        (logits * weights)[mask.bool()].sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = grads(model(input_ids=ids, attention_mask=mask, position_ids=pos).logits)
    got = grads(lean_decoder(model)(ids, pos, mask)[0])
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_other_models_keep_their_own_forward():
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=32))
    assert lean_decoder(gpt2) is None
    windowed = make(LlamaConfig)
    windowed.config.sliding_window = 4  # Llama has no sliding window: a config that asks for one is not ours
    assert lean_decoder(windowed) is None
    compiled = make(LlamaConfig)
    compiled.model.layers[0]._compiled_call_impl = object()  # what nn.Module.compile leaves behind
    assert lean_decoder(compiled) is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_under_bf16_autocast_the_lean_forward_matches_the_model():
    model = FAMILIES["qwen2-bias"]().cuda().eval()
    ids, mask = (t.cuda() for t in left_padded_batch())
    pos = position_ids_from_mask(mask)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        got, cache = lean_decoder(model)(ids, pos, mask)
        real = mask.bool()
        torch.testing.assert_close(got[real].float(), ref.logits[real].float(), rtol=2e-2, atol=2e-2)
        more = torch.randint(3, 31, (5, 3), device="cuda")
        mask2 = torch.cat([mask, torch.ones_like(more)], dim=1)
        pos2 = pos[:, -1:] + 1 + torch.arange(3, device="cuda")
        want = model(input_ids=more, attention_mask=mask2, position_ids=pos2, past_key_values=ref.past_key_values).logits
        torch.testing.assert_close(lean_decoder(model)(more, pos2, mask2, cache)[0].float(), want.float(),
                                   rtol=2e-2, atol=2e-2)


def test_a_model_on_its_own_forward_decodes_and_scores_without_deprecation_warnings():
    """A model the lean decoder does not take (Mistral with a sliding window) samples and is scored
    through its own forward with its cache under the keyword its transformers version names:
    no "past_key_values is deprecated" warning on the user's screen."""
    import warnings

    from transformers import MistralConfig

    from engine.rollout.backend import SamplingParams, TransformersRollout
    from engine.training.logprobs import completion_logps

    import logging

    class Kept(logging.Handler):  # transformers logs some (once per message), warns others
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    model = make(MistralConfig, num_key_value_heads=2, sliding_window=32).eval()
    assert lean_decoder(model) is None
    backend = TransformersRollout(model, 0, [1], cache_implementation="dynamic")
    logged, library = Kept(), logging.getLogger("transformers")
    library.addHandler(logged)
    if hasattr(logging.Logger, "warning_once"):
        logging.Logger.warning_once.cache_clear()  # a message logged once before would not show again
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rollout = backend.generate([[5, 6, 7], [8, 9]], 3, SamplingParams(max_new_tokens=6),
                                       torch.Generator().manual_seed(0))
            logps, _ = completion_logps(model, rollout, slice(0, 6), 3, 1.0)
    finally:
        library.removeHandler(logged)
    assert rollout.completion_ids.size(1) > 1
    mask = rollout.completion_mask.bool()
    torch.testing.assert_close(logps[mask], rollout.logprobs[mask], rtol=1e-4, atol=1e-4)
    said = [str(w.message) for w in caught] + logged.messages
    assert not [m for m in said if "deprecated" in m], said
