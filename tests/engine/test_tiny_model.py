"""The bundled tiny model loads offline, tokenizes per character, and is mediocre at addition."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from engine.data.tasks import get_task  # noqa: E402

MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "tiny-model"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    m = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
    m.eval()
    return m


def test_folder_is_small_and_complete():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    total = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024


def test_architecture(model, tokenizer):
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (128, 4, 4, 512)
    assert cfg.tie_word_embeddings
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert cfg.max_position_embeddings == 128
    assert cfg.vocab_size == len(tokenizer)
    assert next(model.parameters()).dtype == torch.float32
    gen = model.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (1, 2, 0)


def test_special_tokens(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2, 3)


def test_prompt_is_bos_plus_one_token_per_char(tokenizer):
    ids = tokenizer("12+34=")["input_ids"]
    assert len(ids) == 7
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:]) == list("12+34=")


def test_round_trip_printable_text(tokenizer):
    text = "".join(chr(c) for c in range(32, 127)) + "\nline two\n\n  <answer>42</answer>"
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text) + 1
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == text


def test_unknown_characters_map_to_unk(tokenizer):
    ids = tokenizer("é", add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.unk_token_id]


def test_chat_template(tokenizer):
    messages = [{"role": "user", "content": "12+34="}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<bos>12+34="
    assert tokenizer(rendered, add_special_tokens=False)["input_ids"] == tokenizer("12+34=")["input_ids"]


def test_greedy_accuracy_is_mediocre(model, tokenizer):
    """Warm but not solved: GRPO needs groups with both right and wrong answers."""
    task = get_task("arithmetic")
    examples = task.eval_examples()[:100]
    enc = tokenizer([ex["prompt"] for ex in examples], return_tensors="pt")  # same length: no padding
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    correct = 0.0
    for ex, ids in zip(examples, out[:, enc["input_ids"].shape[1] :].tolist()):
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id)]
        correct += task.verify(tokenizer.decode(ids, skip_special_tokens=True), ex)
    assert 0.2 <= correct / len(examples) <= 0.7
