"""The bundled tiny agent model: its tokenizer keeps the tool markup whole, its chat template
renders tools compactly and episodes prefix-preservingly, and it can call the `add` tool."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import get_json_schema

from engine.agents.calculator import CalculatorEnv
from engine.data.tasks import get_task

MODEL_DIR = Path(__file__).resolve().parents[3] / "assets" / "tiny-agent-model"
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
ADD = get_json_schema(CalculatorEnv().add)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(MODEL_DIR).eval()


def call(a, b, content=""):
    fn = {"name": "add", "arguments": {"a": a, "b": b}}
    return {"role": "assistant", "content": content, "tool_calls": [{"type": "function", "function": fn}]}


EPISODE = [
    {"role": "user", "content": "347+589="},
    call(347, 589),
    {"role": "tool", "name": "add", "content": "936"},
    {"role": "assistant", "content": "936"},
]


def ids(tokenizer, messages, **kwargs):
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)


def text(tokenizer, messages, **kwargs):
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


# ---------------------------------------------------------------------------- files and model
def test_folder_is_small_and_complete(model, tokenizer):
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "README.md"} <= names
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) <= 20 * 1024 * 1024
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 3_000_000
    assert model.config.max_position_embeddings >= 256
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    assert model.config.vocab_size == len(tokenizer)
    gen = model.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (1, 2, 0)


# ---------------------------------------------------------------------------- tokenizer
def test_tool_markup_tokens_are_single_and_not_special(tokenizer):
    for tok in TOOL_TOKENS:
        (tid,) = tokenizer(tok, add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(tid) == tok
        assert tid not in tokenizer.all_special_ids
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_decode_keeps_tool_markup_and_drops_specials(tokenizer):
    episode = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call><tool_response>3</tool_response>3'
    token_ids = tokenizer(episode)["input_ids"] + [tokenizer.eos_token_id]
    assert len(token_ids) == len(episode) - sum(len(t) - 1 for t in TOOL_TOKENS) + 2  # <bos>, one per char, <eos>
    assert tokenizer.decode(token_ids, skip_special_tokens=True) == episode


# ---------------------------------------------------------------------------- chat template
def test_tools_render_as_names(tokenizer):
    assert text(tokenizer, EPISODE[:1], tools=[ADD], add_generation_prompt=True) == "<bos>tools: add\n347+589="
    mul = {"type": "function", "function": {"name": "mul", "description": "x", "parameters": {"type": "object"}}}
    assert text(tokenizer, EPISODE[:1], tools=[ADD, mul]).startswith("<bos>tools: add,mul\n")
    assert text(tokenizer, EPISODE[:1]) == "<bos>347+589="  # no tools, no line


def test_tools_may_be_passed_as_callables(tokenizer):
    rendered = text(tokenizer, EPISODE[:1], tools=[CalculatorEnv().add], add_generation_prompt=True)
    assert rendered == "<bos>tools: add\n347+589="


def test_whole_episode_rendering(tokenizer):
    assert text(tokenizer, EPISODE, tools=[ADD]) == (
        '<bos>tools: add\n347+589=<tool_call>{"name": "add", "arguments": {"a": 347, "b": 589}}</tool_call><eos>'
        "<tool_response>936</tool_response>936<eos>"
    )


def test_eos_ends_every_assistant_message(tokenizer):
    rendered = text(tokenizer, [EPISODE[0], {"role": "assistant", "content": "935"}, {"role": "user", "content": "no"},
                                {"role": "assistant", "content": "936"}])
    assert rendered == "<bos>347+589=935<eos>no936<eos>"


def test_tool_call_round_trips_through_json(tokenizer):
    rendered = text(tokenizer, [EPISODE[0], call(47, 5, content="let me add")])
    (body,) = re.findall(r"<tool_call>(.*?)</tool_call>", rendered)
    assert json.loads(body) == {"name": "add", "arguments": {"a": 47, "b": 5}}
    assert rendered.startswith("<bos>347+589=let me add<tool_call>")


def test_arguments_as_a_json_string_render_like_a_dict(tokenizer):
    as_string = call(347, 589)
    as_string["tool_calls"][0]["function"]["arguments"] = json.dumps({"a": 347, "b": 589})
    assert text(tokenizer, [EPISODE[0], as_string]) == text(tokenizer, [EPISODE[0], call(347, 589)])


def test_template_is_prefix_preserving(tokenizer):
    """Each prefix that the engine feeds the model is a token prefix of the whole episode."""
    full = ids(tokenizer, EPISODE, tools=[ADD])
    for k in range(1, len(EPISODE)):
        if EPISODE[k]["role"] == "assistant":
            head = ids(tokenizer, EPISODE[:k], tools=[ADD], add_generation_prompt=True)
            assert full[: len(head)] == head, k
        head = ids(tokenizer, EPISODE[:k], tools=[ADD])
        assert full[: len(head)] == head, k


def test_engine_concatenation_equals_the_rendering(tokenizer):
    """prompt + turn 1 + tool suffix (TRL's dummy-conversation rule) + turn 2 == the whole rendering."""
    prompt = ids(tokenizer, EPISODE[:1], tools=[ADD], add_generation_prompt=True)
    turn1 = ids(tokenizer, EPISODE[:2], tools=[ADD])[len(prompt):]
    assert turn1[0] == tokenizer.convert_tokens_to_ids("<tool_call>") and turn1[-1] == tokenizer.eos_token_id
    dummy = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": {}}}]}]
    prefix = ids(tokenizer, dummy)
    prefix = prefix[: max(i for i, t in enumerate(prefix) if t == tokenizer.eos_token_id) + 1]
    with_tool = ids(tokenizer, dummy + [EPISODE[2]], add_generation_prompt=True)
    assert with_tool[: len(prefix)] == prefix
    suffix = with_tool[len(prefix):]
    assert tokenizer.decode(suffix) == "<tool_response>936</tool_response>"
    turn2 = tokenizer("936", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert prompt + turn1 + suffix + turn2 == ids(tokenizer, EPISODE, tools=[ADD])


# ---------------------------------------------------------------------------- behaviour
@torch.no_grad()
def test_model_sometimes_opens_a_tool_call(model, tokenizer):
    """The first token is <tool_call> with a probability well inside (0, 1): GRPO can move it."""
    task = get_task("arithmetic", digits=4)
    prompts = [ids(tokenizer, [{"role": "user", "content": ex["prompt"]}], tools=[ADD], add_generation_prompt=True)
               for ex in task.eval_examples()[:50]]
    probs = model(input_ids=torch.tensor(prompts)).logits[:, -1].softmax(-1)
    p_call = probs[:, tokenizer.convert_tokens_to_ids("<tool_call>")].mean().item()
    assert 0.1 <= p_call <= 0.6


@torch.no_grad()
def test_model_calls_add_with_the_operands_once_it_opens_a_call(model, tokenizer):
    task = get_task("arithmetic", digits=4)
    examples = task.eval_examples()[:20]
    start = tokenizer.convert_tokens_to_ids("<tool_call>")
    prompts = [ids(tokenizer, [{"role": "user", "content": ex["prompt"]}], tools=[ADD], add_generation_prompt=True)
               + [start] for ex in examples]
    out = model.generate(input_ids=torch.tensor(prompts), max_new_tokens=60, do_sample=False)
    right = 0
    for ex, row in zip(examples, out[:, len(prompts[0]) - 1:].tolist()):
        (body,) = re.findall(r"<tool_call>(.*?)</tool_call>", tokenizer.decode(row, skip_special_tokens=True))
        a, b = (int(x) for x in ex["prompt"].rstrip("=").split("+"))
        right += json.loads(body) == {"name": "add", "arguments": {"a": a, "b": b}}
    assert right >= 15
