"""Per-token log-probs of completions under a model, without computing what is not needed.

Savings, all exact (the tests compare against one plain forward over prompt+completion):

1. **Each prompt once.** All G completions of a group share one prompt. The prompt runs
   once per group with a KV cache; its keys and values are gathered for every completion
   row, and the completions run on top of them. Gradients flow back through the gathered
   cache into the single prompt pass.
2. **No padding past the end.** Completions in a batch have different lengths, but a padded
   batch computes every row to the longest one. Rows are put in up to three buckets by
   length, each bucket padded only to its own longest row (with typical long-tailed
   lengths this halves the completion tokens computed).
3. **Each distinct completion once.** Completions of one group that are token for token the
   same (common once a policy grows confident on short answers) have the same logits; they
   are computed once and shared, and their gradients add up through the shared rows.
4. **Few calls, each cheap.** Llama-family models run through :mod:`engine.rollout.llama_forward` (the same
   arithmetic without the per-call machinery of the model's forward) unless wrapped by DDP.
"""

from __future__ import annotations

import torch

from engine.algo import grpo
from engine.rollout.llama_forward import gather_cache, lean_decoder
from engine.rollout.backend import Rollout, cache_argument, position_ids_from_mask

BUCKET_OVERHEAD_TOKENS = 64  # a forward call costs about this many tokens' worth of work
MAX_BUCKETS = 3


def completion_logits_full(model, prompt_ids, prompt_mask, completion_ids) -> torch.Tensor:
    """Logits predicting each completion token from one forward over prompt+completion. [N, T, V]"""
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, torch.ones_like(completion_ids)], dim=1)
    t = completion_ids.size(1)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn),
                   logits_to_keep=t + 1, use_cache=False).logits
    return grpo.completion_logits(logits, t, temperature=1.0)


def length_buckets(lengths: list[int], overhead: int | None = None, max_buckets: int = MAX_BUCKETS) -> list[int]:
    """Upper length of each bucket, minimising ``Σ rows_b · len_b + overhead · buckets``.

    Example: lengths [3]*60 + [8]*4, overhead 64 → [3, 8] (60·3 + 4·8 + 128 = 340 < 64·8 + 64 = 576).
    """
    overhead = BUCKET_OVERHEAD_TOKENS if overhead is None else overhead
    distinct = sorted(set(max(1, n) for n in lengths))
    count = {d: sum(1 for n in lengths if max(1, n) <= d) for d in distinct}

    def cost(bounds: list[int]) -> int:
        total, below = 0, 0
        for b in bounds:
            total += (count[b] - below) * b + overhead
            below = count[b]
        return total

    best = [distinct[-1]]
    for i, a in enumerate(distinct[:-1]):
        candidates = [[a, distinct[-1]]]
        if max_buckets >= 3:
            candidates += [[a, b, distinct[-1]] for b in distinct[i + 1 : -1]]
        for bounds in candidates:
            if cost(bounds) < cost(best):
                best = bounds
    return best


def _cache_layers(cache):
    layers = getattr(cache, "layers", None)
    if not layers or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        return None
    return layers


def completion_logits_shared(model, prompt_ids, prompt_mask, completion_ids, group: int,
                             lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Same logits as :func:`completion_logits_full`, with each group's prompt run once and
    rows bucketed by ``lengths`` (tokens up to and including EOS)."""
    p_ids, p_mask = prompt_ids[::group], prompt_mask[::group]
    positions = position_ids_from_mask(p_mask)
    lean = lean_decoder(model)
    padded = not bool(p_mask.all())
    if lean is not None:
        prompt_logits, cache = lean(p_ids, positions, p_mask if padded else None, keep=1)
    else:
        out = model(input_ids=p_ids, attention_mask=p_mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        prompt_logits, cache = out.logits, getattr(out, cache_argument(model))
    n, t = completion_ids.shape
    row_group = torch.arange(n, device=completion_ids.device) // group
    first = prompt_logits[:, -1:, :][row_group]  # predicts completion token 0
    if t == 1:
        return first
    layers = None if lean is not None else _cache_layers(cache)
    if lean is None and layers is None:  # a cache we cannot gather from: every row repeats its prompt
        cache.batch_repeat_interleave(group)
        base = None
    else:
        base = cache if lean is not None else [(layer.keys, layer.values) for layer in layers]
    if base is None or lengths is None:
        buckets = [(torch.arange(n, device=completion_ids.device), t)]
    else:
        lens = lengths.clamp(min=1, max=t)
        bounds = length_buckets(lens.tolist())
        buckets, low = [], 0
        for bound in bounds:
            rows = torch.nonzero((lens > low) & (lens <= bound)).squeeze(1)
            if rows.numel():
                buckets.append((rows, bound))
            low = bound

    pieces = []
    for rows, width in buckets:
        if width == 1:
            continue
        groups, inputs, inverse = row_group[rows], completion_ids[rows, : width - 1], None
        if base is not None:
            # Rows of a group that start with the same tokens have the same logits: compute once.
            key = torch.cat([groups[:, None], inputs], dim=1)
            unique, inverse = torch.unique(key, dim=0, return_inverse=True)
            if unique.size(0) < rows.numel():
                groups, inputs = unique[:, 0], unique[:, 1:]
            else:
                inverse = None
        b_mask = p_mask[groups]
        attn = torch.cat([b_mask, torch.ones((groups.numel(), width - 1), dtype=b_mask.dtype, device=b_mask.device)], dim=1)
        start = positions[groups, -1:] + 1
        step_positions = start + torch.arange(width - 1, device=start.device)
        if lean is not None:
            rest, _ = lean(inputs, step_positions, attn if padded else None, gather_cache(base, groups))
        else:
            if base is not None:
                for layer, (keys, values) in zip(layers, base):
                    layer.keys, layer.values = keys[groups], values[groups]
            rest = model(input_ids=inputs, attention_mask=attn, position_ids=step_positions,
                         use_cache=True, **{cache_argument(model): cache}).logits
        pieces.append((rows, rest if inverse is None else rest[inverse]))

    vocab = first.size(-1)
    logits = torch.cat([first, first.new_zeros((n, t - 1, vocab))], dim=1)  # rows of length 1 need only `first`
    for rows, rest in pieces:
        tail = rest.new_zeros((rows.numel(), t - 1 - rest.size(1), vocab))
        logits = logits.index_copy(0, rows, torch.cat([first[rows], rest, tail], dim=1))
    return logits


def can_share_prompt(model, rows: slice, n_rows: int, group: int) -> bool:
    """Sharing needs whole groups in the slice and a model that can use a cache while training."""
    start = rows.start or 0
    stop = n_rows if rows.stop is None else min(rows.stop, n_rows)
    whole_groups = start % group == 0 and (stop - start) % group == 0 and stop > start
    inner = getattr(model, "module", model)  # under DDP, the wrapped model knows
    checkpointing = getattr(inner, "is_activation_checkpointing", None)
    if checkpointing is None:  # older transformers
        checkpointing = getattr(inner, "is_gradient_checkpointing", False)
    return group > 1 and whole_groups and not (checkpointing and model.training)


def completion_logps(
    model, rollout: Rollout, rows: slice, group: int, temperature: float, with_entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [n, T] of the sampled completion tokens at ``temperature`` (and entropies,
    with their gradient when ``entropy_grad``: the entropy bonus trains on them)."""
    prompt_ids, prompt_mask = rollout.prompt_ids[rows], rollout.prompt_mask[rows]
    completion_ids = rollout.completion_ids[rows]
    if can_share_prompt(model, rows, rollout.completion_ids.size(0), group):
        lengths = rollout.completion_mask[rows].sum(dim=1)
        logits = completion_logits_shared(model, prompt_ids, prompt_mask, completion_ids, group, lengths)
    else:
        logits = completion_logits_full(model, prompt_ids, prompt_mask, completion_ids)
    return _logps_and_entropy(logits, completion_ids, temperature, with_entropy, entropy_grad)


def _logps_and_entropy(logits, completion_ids, temperature: float, with_entropy: bool, entropy_grad: bool):
    logits = logits.float() / temperature
    logps = grpo.selective_log_softmax(logits, completion_ids)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = grpo.entropy_from_logits(logits)
    return logps, entropy


def completion_logps_with_router_loss(model, rollout: Rollout, rows: slice, temperature: float,
                                      entropy_grad: bool = False):
    """:func:`completion_logps` with entropies, and the load-balancing loss of a
    mixture-of-experts model's router over the same forward: ``(logps, entropies, aux_loss)``.

    One plain forward over prompt+completion (the router loss is over every routed token, so
    no prompt sharing), attending to the real tokens only (prompt and completion masks), as TRL."""
    prompt_ids, prompt_mask = rollout.prompt_ids[rows], rollout.prompt_mask[rows]
    completion_ids, completion_mask = rollout.completion_ids[rows], rollout.completion_mask[rows]
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)
    t = completion_ids.size(1)
    out = model(input_ids=ids, attention_mask=attn, position_ids=position_ids_from_mask(attn),
                logits_to_keep=t + 1, use_cache=False, output_router_logits=True)
    logits = grpo.completion_logits(out.logits, t, temperature=1.0)
    logps, entropy = _logps_and_entropy(logits, completion_ids, temperature, True, entropy_grad)
    return logps, entropy, out.aux_loss
