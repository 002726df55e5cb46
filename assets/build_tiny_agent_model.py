"""Rebuild assets/tiny-agent-model/: a tiny Llama that sometimes calls an `add` tool.

    python assets/build_tiny_agent_model.py      # a few minutes on a laptop CPU

Why this model: agentic GRPO (tools, multi-turn episodes) needs a CPU-sized model whose
episodes differ in reward *because of the tool*. This one is given 4-digit additions
("3471+5890="), which it cannot do in its head (greedy direct answers are mostly wrong),
but it can call `add(a, b)` and copy the result, which is mostly right. After the warm
start it calls the tool only sometimes (about a third of sampled episodes), so GRPO has
something to learn: call the tool more often, and call it well.

One episode, as the chat template renders it (tokens: one per character, plus four added
tokens for the tool markup; `<bos>`/`<eos>` are the special tokens):

    <bos>tools: add\\n3471+5890=                                  prompt (add_generation_prompt adds nothing)
    <tool_call>{"name": "add", "arguments": {"a": 3471, "b": 5890}}</tool_call><eos>   assistant turn 1
    <tool_response>9361</tool_response>                            tool suffix (not trained on)
    9361<eos>                                                      assistant turn 2

or, answering directly, `<bos>tools: add\\n3471+5890=` then `9360<eos>`.

What it does, deterministically (fixed seeds, one CPU thread, deterministic kernels):
  1. a character-level tokenizer like assets/tiny-model's, plus the added tokens
     <tool_call> </tool_call> <tool_response> </tool_response> (not special: decode keeps them);
  2. a LlamaForCausalLM (hidden 128, 4 layers, 4 heads, MLP 512, tied embeddings, 256 positions);
  3. SFT on the arithmetic task (digits=4) train split: a fixed share of conversations use
     the tool, the rest answer directly with the true sum; the choice is random, not tied to
     the problem, so the model learns "call the tool with probability p". Every conversation
     is rendered whole with the chat template and checked to equal prompt + turn 1 + tool
     suffix + turn 2 built the way a TRL-style engine builds an episode; loss only on the
     assistant turns;
  4. measures episodes on the held-out eval problems, greedy and sampled (temperature 1):
     tool-call share, well-formed calls with the right operands, accuracy when calling and
     when answering directly; fails without touching the existing model unless the sampled
     call share lies in CALL_RANGE and the tool path is clearly more accurate;
  5. save_pretrained (safetensors) + tokenizer + chat template + a model card with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import get_json_schema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout, installed or not

from engine.data.tasks import get_task  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_tiny_model import build_tokenizer as tiny_tokenizer, save  # noqa: E402

from engine.agents.parsing import parse_hermes  # noqa: E402
from engine.agents.templates import tool_suffix_ids  # noqa: E402

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]  # printable ASCII (space .. "~") and newline
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
TASK_ARGS = {"digits": 4}
MAX_POSITIONS = 256
#: Sampled (temperature 1) tool-call share the build accepts: "sometimes".
CALL_RANGE = (0.20, 0.50)
#: The tool path must beat answering directly by at least this much (sampled accuracy).
MIN_TOOL_ADVANTAGE = 0.30
#: Greedy direct answers must be at most this accurate: the model cannot add in its head.
MAX_DIRECT_GREEDY = 0.20

# Tools render as their names only ("tools: add\n"): the context is small, and names are
# all this model can use. A tool call is Hermes-style JSON between added tokens; `arguments`
# may be a dict (rendered with tojson) or an already-encoded JSON string (kept as is).
# Every assistant message ends with <eos>, and nothing follows an <eos> until the next
# message starts, so the template is prefix-preserving and TRL's tool-suffix rule
# (cut the dummy rendering after its last <eos>) yields exactly the tool messages' tokens.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if tools %}"
    "{{- 'tools: ' }}"
    "{%- for tool in tools %}"
    "{%- set fn = tool.function if tool.function is defined else tool %}"
    "{{- fn.name }}{{ ',' if not loop.last }}"
    "{%- endfor %}"
    "{{- '\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- message.content or '' }}"
    "{%- for call in message.tool_calls or [] %}"
    "{%- set fn = call.function if call.function is defined else call %}"
    "{%- set args = fn.arguments %}"
    "{{- '<tool_call>{\"name\": ' ~ (fn.name | tojson) ~ ', \"arguments\": ' }}"
    "{{- args if args is string else args | tojson }}"
    "{{- '}</tool_call>' }}"
    "{%- endfor %}"
    "{{- eos_token }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<tool_response>' ~ message.content ~ '</tool_response>' }}"
    "{%- else %}"
    "{{- message.content }}"
    "{%- endif %}"
    "{%- endfor %}"
)


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.

    Returns:
        The sum a + b.
    """
    return a + b


ADD_SCHEMA = get_json_schema(add)


# ---------------------------------------------------------------------------- tokenizer and model
def build_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny model's tokenizer (one token per character), with this model's context, plus the
    four tool-markup tokens as single (non-special) tokens."""
    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = MAX_POSITIONS
    # special=False: decode(skip_special_tokens=True) keeps the markup, so a completion's
    # text still shows the call; normalized=False: matched verbatim.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: PreTrainedTokenizerFast, args: argparse.Namespace) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).float()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


# ---------------------------------------------------------------------------- episodes as token ids
def chat_ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """What the engine feeds the model first: the user message, the tools, the generation prompt."""
    return chat_ids(tokenizer, [{"role": "user", "content": prompt}], tools=[ADD_SCHEMA], add_generation_prompt=True)


def operands(prompt: str) -> tuple[int, int]:
    a, b = prompt.rstrip("=").split("+")
    return int(a), int(b)


def call_message(a: int, b: int) -> dict:
    call = {"type": "function", "function": {"name": "add", "arguments": {"a": a, "b": b}}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def sft_row(tokenizer, example: dict, use_tool: bool) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one training conversation; labels are -100 off the assistant turns.

    The ids are the chat template's rendering of the whole conversation, and are checked to
    be the concatenation an engine builds: prompt, turn 1 (to <eos>), tool suffix, turn 2.
    """
    user = {"role": "user", "content": example["prompt"]}
    answer = {"role": "assistant", "content": example["answer"]}
    prompt = prompt_ids(tokenizer, example["prompt"])
    if not use_tool:
        full = chat_ids(tokenizer, [user, answer], tools=[ADD_SCHEMA])
        turn = full[len(prompt) :]
        assert full[: len(prompt)] == prompt and turn == encode(tokenizer, example["answer"]) + [tokenizer.eos_token_id]
        return full, [-100] * len(prompt) + turn
    a, b = operands(example["prompt"])
    call = call_message(a, b)
    tool = {"role": "tool", "name": "add", "content": str(add(a, b))}
    turn1 = chat_ids(tokenizer, [user, call], tools=[ADD_SCHEMA])[len(prompt) :]
    suffix = tool_suffix_ids(tokenizer, [tool])
    turn2 = encode(tokenizer, example["answer"]) + [tokenizer.eos_token_id]
    full = chat_ids(tokenizer, [user, call, tool, answer], tools=[ADD_SCHEMA])
    assert full == prompt + turn1 + suffix + turn2, "episode tokens differ from the template's rendering"
    return full, [-100] * len(prompt) + turn1 + [-100] * len(suffix) + turn2


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, lab) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(i)] = 1
    return ids, labels, mask


# ---------------------------------------------------------------------------- measuring episodes
def parse_call(text: str) -> dict | None:
    """The first <tool_call> as {"name", "arguments"}, read as the engine reads it; None when
    absent or malformed."""
    turn = parse_hermes(text)
    if turn.error or not turn.tool_calls:
        return None
    return {"name": turn.tool_calls[0].name, "arguments": turn.tool_calls[0].arguments}


@torch.no_grad()
def generate_left_padded(model, tokenizer, contexts: list[list[int]], max_new: int, sample: bool) -> list[list[int]]:
    """One assistant turn per context: the new ids up to and including <eos> (or max_new ids)."""
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for r, c in enumerate(contexts):
        ids[r, width - len(c) :] = torch.tensor(c)
        mask[r, width - len(c) :] = 1
    kwargs = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, **kwargs)
    turns = []
    for row in out[:, width:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        turns.append(row)
    return turns


def text_of(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def measure(model, tokenizer, task, examples: list[dict], sample: bool, batch: int = 250) -> dict:
    """Run one-tool-round episodes and count what the engine's rewards would see."""
    was_training = model.training
    model.eval()
    n = calls = good_calls = tool_right = direct_right = 0
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        prompts = [prompt_ids(tokenizer, ex["prompt"]) for ex in chunk]
        turn1 = generate_left_padded(model, tokenizer, prompts, max_new=64, sample=sample)
        pending = []  # (example, context for turn 2)
        for ex, p, t in zip(chunk, prompts, turn1):
            n += 1
            text = text_of(tokenizer, t)
            if "<tool_call>" not in text:
                direct_right += task.verify(text, ex)
                continue
            calls += 1
            call = parse_call(text)
            args = call["arguments"] if call else {}
            a, b = args.get("a"), args.get("b")
            if not (call and call.get("name") == "add" and isinstance(a, int) and isinstance(b, int)):
                continue  # malformed: the episode ends with a parse error, reward 0
            good_calls += sorted((a, b)) == sorted(operands(ex["prompt"]))
            suffix = tool_suffix_ids(tokenizer, [{"role": "tool", "name": "add", "content": str(add(a, b))}])
            pending.append((ex, p + t + suffix))
        if pending:
            turn2 = generate_left_padded(model, tokenizer, [c for _, c in pending], max_new=8, sample=sample)
            for (ex, _), t in zip(pending, turn2):
                tool_right += task.verify(text_of(tokenizer, t), ex)
    model.train(was_training)
    direct = n - calls
    return {
        "episodes": n,
        "call_share": calls / n,
        "good_call_share": good_calls / n,
        "accuracy": (tool_right + direct_right) / n,
        "tool_accuracy": tool_right / calls if calls else 0.0,
        "direct_accuracy": direct_right / direct if direct else 0.0,
        "calls": calls,
        "direct": direct,
    }


# ---------------------------------------------------------------------------- card and saving
def write_card(out: Path, facts: dict) -> None:
    g, s = facts["greedy"], facts["sampled"]
    lo, hi = CALL_RANGE
    lengths = facts["lengths"]
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [llama, tiny, arithmetic, grpo, tool-use, agents]
---

# tiny-agent-model: a tiny Llama that sometimes calls a calculator

The model grpo-tui's agentic example fine-tunes on CPU. It gets 4-digit additions
(the built-in `arithmetic` task with `digits: 4`), which it cannot do in its head, and
it has one tool, `add(a, b)` (`engine/agents/calculator.py`, `CalculatorEnv`). After its
warm start it calls the tool in about {s['call_share']:.0%} of sampled episodes; calling
is far more accurate than answering directly, so GRPO has a clear signal: call more.

An episode, as its chat template renders it:

```
<bos>tools: add
3471+5890=<tool_call>{{"name": "add", "arguments": {{"a": 3471, "b": 5890}}}}</tool_call><eos><tool_response>9361</tool_response>9361<eos>
```

- prompt: `<bos>tools: add\\n3471+5890=` ({lengths['prompt']} tokens; the generation prompt adds nothing);
- assistant turn 1: the call and `<eos>` ({lengths['tool_call_turn']} tokens);
- tool suffix: `<tool_response>9361</tool_response>` ({lengths['tool_suffix']} tokens, not trained on);
- assistant turn 2: the answer and `<eos>` ({lengths['answer_turn']} tokens).

A direct answer is the sum's digits and `<eos>` right after the prompt.

## Measured on the {g['episodes']} held-out eval problems (one tool round)

| decoding | calls the tool | well-formed call, right operands | accuracy when calling | accuracy when answering directly | overall accuracy |
|---|---|---|---|---|---|
| greedy | {g['call_share']:.3f} | {g['good_call_share']:.3f} | {g['tool_accuracy']:.3f} ({g['calls']} episodes) | {g['direct_accuracy']:.3f} ({g['direct']}) | {g['accuracy']:.3f} |
| sampled, temperature 1 (seed {facts['seed']}) | {s['call_share']:.3f} | {s['good_call_share']:.3f} | {s['tool_accuracy']:.3f} ({s['calls']} episodes) | {s['direct_accuracy']:.3f} ({s['direct']}) | {s['accuracy']:.3f} |

Greedy decoding follows the more likely first token, so it calls the tool rarely or never;
sampling shows the mixture. The build fails unless the sampled call share lies in
[{lo:.2f}, {hi:.2f}], the sampled tool path beats the sampled direct path by at least
{MIN_TOOL_ADVANTAGE:.2f}, and greedy direct accuracy is at most {MAX_DIRECT_GREEDY:.2f}.

## Model and tokenizer

- `LlamaForCausalLM`, hidden {facts['hidden']}, {facts['layers']} layers, 4 heads, MLP {4 * facts['hidden']}, tied embeddings,
  RoPE, {MAX_POSITIONS} positions, float32; {facts['params']:,} parameters; weights {facts['weights_bytes'] / 1e6:.2f} MB.
- Tokenizer ({facts['vocab_size']} tokens): `<pad>`=0, `<bos>`=1, `<eos>`=2, `<unk>`=3, printable ASCII
  and `\\n` one token each, then `<tool_call>`, `</tool_call>`, `<tool_response>`, `</tool_response>`
  as added, non-special tokens (single tokens; `decode(..., skip_special_tokens=True)` keeps them).
- Chat template (`chat_template.jinja`): tools render as their names (`tools: add\\n`); user
  messages as their content; an assistant message as its content, then each tool call as
  `<tool_call>{{"name": ..., "arguments": ...}}</tool_call>` (`tojson`), then `<eos>`; a tool
  message as `<tool_response>CONTENT</tool_response>`. It is prefix-preserving, so
  TRL's tool-suffix rule gives exactly the tool messages' tokens.

## Warm start

Supervised fine-tuning on the task's train split (20,000 sampled problems; the eval and
dev splits are held out): each conversation uses the tool with probability
{facts['tool_share']:.2f} (a seeded coin, independent of the problem), otherwise answers directly with
the true sum. Every conversation is rendered whole with the chat template and checked to
equal prompt + turn 1 + tool suffix + turn 2; loss on the assistant turns only.
Batch {facts['batch_size']}, AdamW lr {facts['lr']:g} with {facts['warmup_steps']} warm-up steps, grad-norm clip 1.0,
{facts['sft_steps']} steps, seed {facts['seed']}, {facts['threads']} CPU thread, deterministic kernels; the
SFT took {facts['sft_seconds']:.0f} s.

## Rebuild

```
python assets/build_tiny_agent_model.py
```

With the same torch build on the same kind of CPU the weights are byte-identical
(`model.safetensors` sha256 `{facts['sha256']}`, torch {facts['torch']}, transformers {facts['transformers']}).

It knows nothing but this one task; it is a test fixture and a teaching model.
"""
    (out / "README.md").write_text(card)


def episode_lengths(tokenizer, example: dict) -> dict:
    a, b = operands(example["prompt"])
    prompt = prompt_ids(tokenizer, example["prompt"])
    user = {"role": "user", "content": example["prompt"]}
    turn1 = chat_ids(tokenizer, [user, call_message(a, b)], tools=[ADD_SCHEMA])[len(prompt) :]
    suffix = tool_suffix_ids(tokenizer, [{"role": "tool", "name": "add", "content": example["answer"]}])
    return {
        "example": example["prompt"],
        "prompt": len(prompt),
        "tool_call_turn": len(turn1),
        "tool_suffix": len(suffix),
        "answer_turn": len(encode(tokenizer, example["answer"])) + 1,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "tiny-agent-model")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--tool-share", type=float, default=0.35, help="share of SFT conversations that call the tool")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--train-size", type=int, default=20_000, help="train problems used (of 20,000)")
    ap.add_argument("--eval-size", type=int, default=500, help="held-out eval problems measured")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--report-every", type=int, default=200)
    ap.add_argument("--dev-checks", action="store_true", help="also sample 200 dev episodes at each report")
    args = ap.parse_args()

    # ------------------------------------------------------------ determinism
    torch.set_num_threads(1)  # reduction order, and so the bytes, depend on the thread count
    torch.use_deterministic_algorithms(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    task = get_task("arithmetic", **TASK_ARGS)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params:,}  vocab: {len(tokenizer)}  task: {task!r}", flush=True)

    # ------------------------------------------------------------ SFT data
    t0 = time.perf_counter()
    coin = random.Random(args.seed)
    train = task.train_examples()[: args.train_size]
    uses_tool = [coin.random() < args.tool_share for _ in train]
    # Two pools, one per kind: a direct conversation is a third as long as a tool one. Each
    # step takes a fixed number of rows from each pool (so every gradient sees the same
    # tool share, and the first-token "call or not" probability settles at that share
    # instead of swinging with the last batches) as two micro-batches padded separately
    # (so no compute goes to padding: the SFT is compute-bound on a CPU).
    pools = [
        pad_rows([sft_row(tokenizer, ex, kind) for ex, t in zip(train, uses_tool) if t == kind], tokenizer.pad_token_id)
        for kind in (False, True)
    ]
    n_tool = round(args.batch_size * args.tool_share)
    per_step = (args.batch_size - n_tool, n_tool)
    print(
        f"{len(train)} conversations ({sum(uses_tool)} with the tool) rendered and checked "
        f"in {time.perf_counter() - t0:.1f} s; per step {per_step[0]} direct + {per_step[1]} tool",
        flush=True,
    )

    # ------------------------------------------------------------ SFT
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    dev = task.dev_examples()[:200]
    orders = [torch.randperm(len(p[0]), generator=gen) for p in pools]
    cursors = [0, 0]
    model.train()
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        warm = min(1.0, step / args.warmup_steps)
        decay = 0.5 * (1 + np.cos(np.pi * step / args.steps))  # cosine to zero: a settled end point
        for group in opt.param_groups:
            group["lr"] = args.lr * warm * decay
        parts = []
        for kind, (ids, labels, mask) in enumerate(pools):
            if cursors[kind] + per_step[kind] > len(ids):  # this pool's next epoch, in a new order
                orders[kind], cursors[kind] = torch.randperm(len(ids), generator=gen), 0
            idx = orders[kind][cursors[kind] : cursors[kind] + per_step[kind]]
            cursors[kind] += per_step[kind]
            width = int(mask[idx].sum(1).max())  # trim to the longest row
            parts.append((ids[idx, :width], labels[idx, :width], mask[idx, :width]))
        n_targets = sum(int((lab[:, 1:] != -100).sum()) for _, lab, _ in parts)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for ids, labels, mask in parts:  # token-weighted mean over both micro-batches
            n = int((labels[:, 1:] != -100).sum())
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss * (n / n_targets)
            loss.backward()
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.report_every == 0:
            line = {"step": step, "loss": round(loss_sum, 4)}
            if args.dev_checks:
                check = measure(model, tokenizer, task, dev, sample=True)
                line |= {k: round(check[k], 3) for k in ("call_share", "good_call_share", "tool_accuracy", "direct_accuracy")}
            print(json.dumps(line | {"elapsed_s": round(time.perf_counter() - t0, 1)}), flush=True)
    sft_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------ measure, accept or fail
    held_out = task.eval_examples()[: args.eval_size]
    greedy = measure(model, tokenizer, task, held_out, sample=False)
    torch.manual_seed(args.seed)
    sampled = measure(model, tokenizer, task, held_out, sample=True)
    print("greedy ", json.dumps(greedy))
    print("sampled", json.dumps(sampled))
    lo, hi = CALL_RANGE
    problems = []
    if not lo <= sampled["call_share"] <= hi:
        problems.append(f"sampled call share {sampled['call_share']:.3f} outside [{lo}, {hi}]")
    if sampled["tool_accuracy"] - sampled["direct_accuracy"] < MIN_TOOL_ADVANTAGE:
        problems.append(f"tool path not clearly better ({sampled['tool_accuracy']:.3f} vs {sampled['direct_accuracy']:.3f})")
    if greedy["direct_accuracy"] > MAX_DIRECT_GREEDY:
        problems.append(f"greedy direct accuracy {greedy['direct_accuracy']:.3f} > {MAX_DIRECT_GREEDY}")
    if problems:
        print("not saved: " + "; ".join(problems), file=sys.stderr)
        return 1

    # ------------------------------------------------------------ save (next to, then swap in)
    tmp = args.out.with_name(args.out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tokenizer, tmp)
    weights = tmp / "model.safetensors"
    facts = {
        "params": n_params,
        "vocab_size": len(tokenizer),
        "hidden": args.hidden,
        "layers": args.layers,
        "weights_bytes": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "sft_steps": args.steps,
        "sft_seconds": sft_seconds,
        "tool_share": args.tool_share,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "greedy": greedy,
        "sampled": sampled,
        "lengths": episode_lengths(tokenizer, held_out[0]),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    write_card(tmp, facts)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(json.dumps({k: v for k, v in facts.items() if k not in ("greedy", "sampled")} | {"dir_bytes": total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
