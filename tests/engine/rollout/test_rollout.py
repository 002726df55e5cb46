"""The transformers rollout backend on the bundled model, and the sampling filters."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import TINY_MODEL
from engine.rollout.backend import SamplingParams, TransformersRollout, apply_repetition_penalty, filter_logits


def backend():
    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    return TransformersRollout(model, tok.pad_token_id, [tok.eos_token_id]), tok, model


def test_greedy_matches_transformers_generate_with_left_padding():
    rollout_backend, tok, model = backend()
    prompts = ["12+34=", "7+5=", "99+99="]  # different lengths: left padding and positions matter
    ids = [tok(p)["input_ids"] for p in prompts]
    out = rollout_backend.generate(ids, 1, SamplingParams(max_new_tokens=6, greedy=True))
    for i, p in enumerate(ids):
        ref = model.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[0, len(p):]
        n = int(out.lengths[i])
        assert out.completion_ids[i, :n].tolist() == ref[:n].tolist()


def test_groups_masks_eos_and_logprobs():
    rollout_backend, tok, _ = backend()
    ids = [tok("12+34=")["input_ids"], tok("50+50=")["input_ids"]]
    gen = torch.Generator().manual_seed(0)
    out = rollout_backend.generate(ids, 4, SamplingParams(max_new_tokens=8), gen)
    assert out.completion_ids.shape[0] == 8
    assert torch.equal(out.prompt_ids[0], out.prompt_ids[3]) and not torch.equal(out.prompt_ids[0], out.prompt_ids[4])
    for row, mask, trunc in zip(out.completion_ids, out.completion_mask, out.truncated):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # 1 up to and including EOS, then 0
        if not trunc:
            assert row[n - 1] == tok.eos_token_id and (row[n:] == tok.pad_token_id).all()
    assert (out.logprobs <= 0).all() and (out.logprobs[out.completion_mask == 0] == 0).all()


def test_truncation_flag():
    rollout_backend, tok, _ = backend()
    out = rollout_backend.generate([tok("12+34=")["input_ids"]], 2, SamplingParams(max_new_tokens=1))
    assert out.truncated.all() and out.completion_mask.sum() == 2  # answers need more than 1 token


def test_filters():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert torch.isinf(filter_logits(logits, SamplingParams(1, top_k=2))[0, 2:]).all()
    probs = torch.softmax(logits, -1)[0]  # ≈ .64 .24 .09 .03
    kept = ~torch.isinf(filter_logits(logits, SamplingParams(1, top_p=0.8))[0])
    assert kept.tolist() == [True, True, False, False] and probs[0] < 0.8
    kept = ~torch.isinf(filter_logits(logits, SamplingParams(1, min_p=0.3))[0])
    assert kept.tolist() == [True, True, False, False]  # .09 < .3 × .64
    pen = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 2.0]]), torch.tensor([[True, True, False]]), 2.0)
    assert pen.tolist() == [[1.0, -4.0, 2.0]]
