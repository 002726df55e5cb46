"""Rebuild assets/tiny-model/: a 1M-parameter Llama that half-knows 2-digit addition.

    python assets/build_tiny_model.py            # about a minute or two on a laptop CPU

Why a warm-started tiny model: GRPO only learns from groups whose completions differ in
reward, so the bundled model must already be right some of the time (~40%) but far
from always. Training a fresh random model with GRPO alone would see zero reward for
a long time; a model that is already perfect would show nothing.

What it does, deterministically (fixed seeds, one CPU thread, deterministic kernels):
  1. a character-level tokenizer: <pad> <bos> <eos> <unk>, then printable ASCII and "\\n";
  2. a LlamaForCausalLM (hidden 128, 4 layers, 4 heads, MLP 512, tied embeddings, fp32);
  3. supervised fine-tuning on the arithmetic task's train split, loss only on the
     answer and <eos>, checking greedy accuracy on the *dev* split every --eval-every
     steps and stopping at the first check at or above --target;
  4. greedy accuracy on the 500 *eval* problems (the ones runs report), which must land
     in [0.30, 0.60] or the script fails without touching the existing model;
  5. save_pretrained (safetensors) + tokenizer + chat template + a model card.

Same torch build and CPU kind give the same bytes; the printed sha256 lets you check.
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
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout, installed or not

from engine.data.tasks import get_task  # noqa: E402

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]  # printable ASCII (space .. "~") and newline
CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
ACCEPT_RANGE = (0.30, 0.60)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character; decoding is plain concatenation."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # "." would not match "\n" (Oniguruma), and "\n\n" would become one unknown piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=128,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
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


def sft_tensors(tokenizer, examples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, labels (-100 except on answer + <eos>), attention_mask; right-padded."""
    rows = []
    for ex in examples:
        prompt = tokenizer(ex["prompt"])["input_ids"]  # <bos> + one id per character
        target = tokenizer(ex["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt + target, [-100] * len(prompt) + target))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (i, lab) in enumerate(rows):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(i)] = 1
    return ids, labels, mask


@torch.no_grad()
def greedy_accuracy(model, tokenizer, task, examples: list[dict]) -> float:
    """Greedy exact-match accuracy; the prompts share one length, so one unpadded batch."""
    was_training = model.training
    model.eval()
    enc = tokenizer([ex["prompt"] for ex in examples], return_tensors="pt")
    max_answer = max(len(ex["answer"]) for ex in examples)
    out = model.generate(**enc, max_new_tokens=max_answer + 1, do_sample=False)
    correct = 0.0
    for ex, ids in zip(examples, out[:, enc["input_ids"].shape[1] :].tolist()):
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id)]
        correct += task.verify(tokenizer.decode(ids, skip_special_tokens=True), ex)
    model.train(was_training)
    return correct / len(examples)


def write_card(out: Path, facts: dict) -> None:
    checks = "\n".join(f"| {c['step']} | {c['loss']:.4f} | {c['dev_accuracy']:.3f} |" for c in facts["checks"])
    lo, hi = ACCEPT_RANGE
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [llama, tiny, arithmetic, grpo]
---

# tiny-model: a 1M-parameter Llama for 2-digit addition

The model grpo-tui's default preset (`tiny-arithmetic`) fine-tunes. It answers prompts such
as `12+34=` with `46<eos>` and is right about {facts['eval_accuracy']:.0%} of the time: good
enough that GRPO groups contain both right and wrong answers (so there is a learning
signal), bad enough that a few minutes of GRPO on a CPU visibly improve it.

- Architecture: `LlamaForCausalLM`, hidden 128, 4 layers, 4 heads (head dim 32), MLP 512,
  tied input/output embeddings, RoPE, max 128 positions, float32.
- Parameters: {facts['params']:,}; weights file {facts['weights_bytes'] / 1e6:.2f} MB.
- Tokenizer: one token per character. Vocabulary ({facts['vocab_size']}): `<pad>`=0, `<bos>`=1,
  `<eos>`=2, `<unk>`=3, then the printable ASCII characters (space to `~`) and `\\n`.
  Encoding adds `<bos>`; the chat template is `{CHAT_TEMPLATE}`, so a
  one-message conversation renders as `<bos>12+34=` (encode that with
  `add_special_tokens=False`).
- Data: the built-in `arithmetic` task (`engine/tasks/arithmetic.py`): all pairs a, b in
  0..99 shuffled once with `random.Random(0)`; the first 500 are the eval split, the next
  500 the dev split, the remaining 9,000 the train split.
- Warm-up: supervised fine-tuning on the train split (loss on the answer and `<eos>` only),
  batch {facts['batch_size']}, AdamW lr {facts['lr']:g} with {facts['warmup_steps']} warm-up steps, grad-norm clip 1.0, seed
  {facts['seed']}, {facts['threads']} CPU thread, deterministic kernels. Greedy dev accuracy is checked every
  {facts['eval_every']} steps; training stops at the first check at or above {facts['target']:.2f}.
- Result: **{facts['sft_steps']} SFT steps**; greedy dev accuracy {facts['dev_accuracy']:.3f};
  **greedy accuracy {facts['eval_accuracy']:.3f} on the 500 held-out eval problems**
  (the build fails unless it lies in [{lo:.2f}, {hi:.2f}]).

| SFT step | train loss | dev greedy accuracy |
|---|---|---|
{checks}

## Rebuild

```
python assets/build_tiny_model.py
```

Runs on CPU in a minute or two and rewrites this folder. With the same torch build on the
same kind of CPU the weights are byte-identical (`model.safetensors` sha256
`{facts['sha256']}`, built with torch {facts['torch']}, transformers {facts['transformers']}).

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("assets/tiny-model")
model = AutoModelForCausalLM.from_pretrained("assets/tiny-model")
out = model.generate(**tok(["12+34="], return_tensors="pt"), max_new_tokens=4, do_sample=False)
print(tok.decode(out[0, 7:], skip_special_tokens=True))
```

It knows nothing but this one task; it is a test fixture and a teaching model.
"""
    (out / "README.md").write_text(card)


def save(model, tokenizer, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # Name the class every transformers version knows (v5 writes its new alias).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "tiny-model")
    ap.add_argument("--target", type=float, default=0.40, help="stop at the first dev check >= this")
    ap.add_argument("--max-steps", type=int, default=5000)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    # ------------------------------------------------------------ determinism
    torch.set_num_threads(1)  # reduction order, and so the bytes, depend on the thread count
    torch.use_deterministic_algorithms(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    task = get_task("arithmetic")  # the default task: same splits as runs report
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params:,}  vocab: {len(tokenizer)}", flush=True)

    # ------------------------------------------------------------ SFT
    ids, labels, mask = sft_tensors(tokenizer, task.train_examples())
    dev, held_out = task.dev_examples(), task.eval_examples()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    order, pos = torch.randperm(len(ids), generator=gen), 0
    checks: list[dict] = []
    dev_acc, step = 0.0, 0
    model.train()
    t0 = time.perf_counter()
    while step < args.max_steps:
        if pos + args.batch_size > len(ids):  # new epoch, new order; drop the ragged tail
            order, pos = torch.randperm(len(ids), generator=gen), 0
        idx = order[pos : pos + args.batch_size]
        pos += args.batch_size
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup_steps)
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.eval_every == 0:
            dev_acc = greedy_accuracy(model, tokenizer, task, dev)
            checks.append({"step": step, "loss": loss.item(), "dev_accuracy": dev_acc})
            print(json.dumps(checks[-1] | {"elapsed_s": round(time.perf_counter() - t0, 1)}), flush=True)
            if dev_acc >= args.target:
                break
    sft_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------ accept or fail
    eval_acc = greedy_accuracy(model, tokenizer, task, held_out)
    print(f"SFT steps {step}, {sft_seconds:.1f} s; greedy accuracy on {len(held_out)} eval problems: {eval_acc:.3f}")
    lo, hi = ACCEPT_RANGE
    if not (dev_acc >= args.target and lo <= eval_acc <= hi):
        print(f"not saved: need dev >= {args.target} and eval accuracy in [{lo}, {hi}]", file=sys.stderr)
        return 1

    # ------------------------------------------------------------ save (next to, then swap in)
    tmp = args.out.with_name(args.out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tokenizer, tmp)
    weights = tmp / "model.safetensors"
    facts = {
        "params": n_params,
        "vocab_size": len(tokenizer),
        "weights_bytes": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "sft_steps": step,
        "checks": checks,
        "dev_accuracy": dev_acc,
        "eval_accuracy": eval_acc,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "eval_every": args.eval_every,
        "target": args.target,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    write_card(tmp, facts)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    total = sum(f.stat().st_size for f in args.out.iterdir())
    print(json.dumps({k: v for k, v in facts.items() if k != "checks"} | {"dir_bytes": total, "sft_seconds": round(sft_seconds, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
