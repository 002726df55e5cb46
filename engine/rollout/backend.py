"""Generation backends: sample G completions for each prompt.

A backend takes token ids of B prompts and returns a :class:`Rollout` of B·G completions,
grouped contiguously (rows ``b*G … b*G+G−1`` answer prompt b). The interface is small on
purpose so a vLLM backend can sit beside the transformers one:

    backend.generate(prompt_ids, num_generations, params, generator) -> Rollout
    backend.sync_weights(model)   # after every optimizer step (a no-op when the backend
                                  # samples from the training model itself)
    backend.separate_engine       # optional, True when its log-probs come from another engine
                                  # (vLLM): the trainer then corrects for the difference
    backend.reports_progress      # optional, True when generate() takes ``progress=callback``,
                                  # called as decoding goes: see :data:`GenerationProgress`
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from engine.rollout.llama_forward import lean_decoder
from engine.rollout.node_cache import NodeCache
from engine.rollout.static_cache import CHECK_EVERY, SPAN, STATIC_KINDS, StaticCache, round_up, worth_keeping


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    greedy: bool = False
    extra: dict = field(default_factory=dict)  # generation_kwargs for vLLM's SamplingParams (vLLM backends only)


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P] 1 on real prompt tokens
    completion_ids: torch.Tensor  # [N, T] right-padded with pad_id after EOS
    completion_mask: torch.Tensor  # [N, T] 1 up to and including the first EOS
    logprobs: torch.Tensor  # [N, T] log-prob of each sampled token under softmax(logits / T)
    truncated: torch.Tensor  # [N] bool: no EOS within max_new_tokens
    # [N, T] entropy of softmax(logits / T) at each sampled token, when the backend samples from
    # the training model itself (then it equals what the training forward would compute)
    entropy: torch.Tensor | None = None
    # [N, T] 1 on tokens the model wrote, 0 on tokens an episode's tools or environment added
    # (engine.agents.episodes): those are context, never trained on. None: every token is the model's.
    env_mask: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)

    @property
    def model_lengths(self) -> torch.Tensor:
        """Tokens the model wrote in each completion (an episode's tool results left out, as TRL counts)."""
        if self.env_mask is None:
            return self.lengths
        return (self.completion_mask * self.env_mask.to(self.completion_mask.device)).sum(dim=1)


class RolloutBackend(Protocol):
    def generate(
        self,
        prompt_ids: list[list[int]],
        num_generations: int,
        params: SamplingParams,
        generator: torch.Generator | None = None,
    ) -> Rollout: ...

    def sync_weights(self, model: torch.nn.Module) -> None: ...


GenerationProgress = Callable[[int, int, int, int, int], None]
"""``progress(position, max_new_tokens, tokens_sampled, finished_rows, rows)``: called as
decoding goes (after each position in the dynamic loop, every ``CHECK_EVERY`` positions in the
static one) with the tokens sampled so far over every row and the rows that have ended (EOS).
Cheap by contract — the trainer's callback only looks at the clock."""


def left_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ids [N, P] and an attention mask [N, P]."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if seq:
            ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def rollout_from_lists(prompts: list[list[int]], completions: list[list[int]], truncated: list[bool], pad_id: int,
                       device: torch.device | str = "cpu", logprobs: list[list[float]] | None = None,
                       env_mask: list[list[int]] | None = None) -> Rollout:
    """A :class:`Rollout` from token lists made elsewhere (a vLLM engine, given responses, a
    ``rollout_func``): prompts left-padded, completions right-padded with ``pad_id``, the mask
    covering each completion's tokens (its EOS included, when it has one); ``logprobs`` zeros
    when not given; ``env_mask`` (1 on the model's tokens, 0 on those a tool or environment
    added) kept when given."""
    device = torch.device(device)
    p_ids, p_mask = left_pad(prompts, pad_id, device)
    width = max(1, max(len(c) for c in completions))
    c_ids = torch.full((len(completions), width), pad_id, dtype=torch.long)
    c_mask = torch.zeros((len(completions), width), dtype=torch.long)
    c_logps = torch.zeros((len(completions), width), dtype=torch.float32)
    for i, tokens in enumerate(completions):
        c_ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        c_mask[i, : len(tokens)] = 1
        if logprobs is not None:
            c_logps[i, : len(tokens)] = torch.tensor(logprobs[i][: len(tokens)], dtype=torch.float32)
    e_mask = None
    if env_mask is not None:
        e_mask = torch.ones((len(completions), width), dtype=torch.long)
        for i, row in enumerate(env_mask):
            e_mask[i, : len(row)] = torch.tensor(row[: width], dtype=torch.long)
        e_mask = e_mask.to(device)
    return Rollout(prompt_ids=p_ids, prompt_mask=p_mask, completion_ids=c_ids.to(device),
                   completion_mask=c_mask.to(device), logprobs=c_logps.to(device),
                   truncated=torch.tensor(truncated, dtype=torch.bool, device=device), env_mask=e_mask)


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: the first real token is position 0."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def cache_argument(model: torch.nn.Module) -> str:
    """The name a model's forward takes its key/value cache under, and its output returns it under:
    ``cache`` from transformers 5.24, where ``past_key_values`` still works but prints deprecation
    warnings on the user's screen; ``past_key_values`` before (wrapped models, DDP and PEFT,
    answered for what they wrap)."""
    inner = getattr(model, "module", model)
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    return _cache_argument(type(inner))


@functools.cache
def _cache_argument(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Apply top-k, top-p (nucleus) and min-p filtering to temperature-scaled logits [N, V]."""
    if params.top_k and params.top_k > 0 and params.top_k < logits.size(-1):
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.min_p is not None and params.min_p > 0:
        probs = torch.softmax(logits, dim=-1)
        threshold = params.min_p * probs.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(probs < threshold, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= params.top_p  # keep the token crossing top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One token per row of ``logits`` [N, V]: its id, its log-prob under softmax(logits / T)
    and that distribution's entropy (None when greedy: argmax, log-prob under softmax(logits))."""
    if params.greedy:
        token = logits.argmax(dim=-1)
        return token, torch.log_softmax(logits, dim=-1).gather(1, token[:, None]).squeeze(1), None
    scaled = logits if params.temperature == 1.0 else logits / params.temperature  # (x / 1.0 is x, bit for bit)
    filtered = filter_logits(scaled, params)
    probs = torch.softmax(filtered, dim=-1)
    # torch.multinomial's own one-sample path (argmax of p / Exp(1) noise, the same draws from the
    # same generator), without its checks of the probabilities, which wait for the device twice a
    # token; a model whose logits are not finite is caught once per batch instead (Rollout checks)
    token = (probs / torch.empty_like(probs).exponential_(generator=generator)).argmax(dim=-1)
    # the log-prob and the entropy come from softmax(logits / T) itself: with no filter that is the
    # distribution just sampled, so no log_softmax and exp over the vocabulary (rows × V each)
    unfiltered = probs if filtered is scaled else torch.softmax(scaled, dim=-1)
    logp = unfiltered.gather(1, token[:, None]).squeeze(1).log()
    return token, logp, torch.special.entr(unfiltered).sum(dim=-1)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style penalty on tokens already in the sequence: positive logits ÷ p, negative × p.

    seen [N, V] bool marks the tokens present in the prompt or generated so far."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


class TransformersRollout:
    """Samples from the training model itself with a KV cache, one batch for all B·G rows.

    Each row stops at its first EOS; the loop ends when every row has stopped or the
    token budget is spent."""

    reports_progress = True

    def __init__(self, model: torch.nn.Module, pad_id: int, eos_ids: list[int],
                 cache_implementation: str | None = None) -> None:
        self.pad_id = pad_id
        self.eos_ids = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)
        self.cache_implementation = cache_implementation  # static | dynamic | None: static on CUDA
        self.static: StaticCache | None = None  # the last static batch's buffers and graphs, kept for the next
        self.sync_weights(model)

    def sync_weights(self, model: torch.nn.Module) -> None:
        if getattr(self, "model", None) is not model:
            self.static = None
        self.model = model
        self.lean = lean_decoder(model)  # None: the model's own forward

    def uses_static_cache(self, device: torch.device) -> bool:
        """Whether :mod:`engine.rollout.static_cache` decodes (it needs the lean decoder)."""
        if self.lean is None or self.cache_implementation not in (None, *STATIC_KINDS):
            return False
        return self.cache_implementation is not None or device.type == "cuda"

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[list[int]],
        num_generations: int,
        params: SamplingParams,
        generator: torch.Generator | None = None,
        progress: GenerationProgress | None = None,
    ) -> Rollout:
        model = self.model
        device = next(model.parameters()).device
        rows = [p for p in prompt_ids for _ in range(num_generations)]
        ids, mask = left_pad(rows, self.pad_id, device)
        n, g = ids.size(0), num_generations
        eos = self.eos_ids.to(device)
        was_training = model.training
        model.eval()
        padded = not bool(mask.all())  # without padding the model needs no attention mask at all

        seen = None
        if params.repetition_penalty != 1.0:
            vocab = model.get_output_embeddings().weight.size(0)
            seen = torch.zeros((n, vocab), dtype=torch.bool, device=device)
            seen.scatter_(1, ids, mask.bool())

        if self.uses_static_cache(device):
            try:
                return self._generate_static(ids, mask, num_generations, params, generator, progress, seen)
            finally:
                model.train(was_training)

        # The dynamic loop. The model's batch holds *nodes*: distinct (prompt, tokens so far)
        # prefixes. Rows of a group that have sampled the same tokens share a node — the same
        # next-token distribution, computed once — and split when their samples differ. The
        # prefill is one node per prompt; finished rows leave. Every row still samples on its own.
        positions = position_ids_from_mask(mask)
        lean = self.lean
        if lean is not None:  # then node i lives in slot i of a cache allocated once (engine.rollout.node_cache)
            logits, prompt_cache = lean(ids[::g], positions[::g], mask[::g] if padded else None, keep=1)
            cache = NodeCache(prompt_cache, n, ids.size(1) + params.max_new_tokens)
            del prompt_cache
        else:
            cache_name = cache_argument(model)  # (once: the loop below runs per token)
            out = model(input_ids=ids[::g], attention_mask=mask[::g] if padded else None,
                        position_ids=positions[::g], use_cache=True, logits_to_keep=1)
            logits, cache = out.logits, getattr(out, cache_name)
        node_logits = logits[:, -1, :].float()
        node_pos = positions[::g, -1:] + 1
        node_attn = mask[::g]
        node_of = torch.arange(n, device=device) // g  # the node of each active row
        vocab = node_logits.size(-1)

        completion = torch.full((n, params.max_new_tokens), self.pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((n, params.max_new_tokens), device=device)
        entropy = torch.zeros((n, params.max_new_tokens), device=device)
        active = torch.arange(n, device=device)  # rows still generating
        steps = sampled = 0
        for t in range(params.max_new_tokens):
            logits = node_logits[node_of]
            if seen is not None:
                logits = apply_repetition_penalty(logits, seen[active], params.repetition_penalty)
            token, logp, ent = sample(logits, params, generator)
            if ent is not None:
                entropy[active, t] = ent
            completion[active, t] = token
            logprobs[active, t] = logp
            steps = t + 1
            if seen is not None:
                seen[active, token] = True
            going = ~torch.isin(token, eos)
            sampled += active.numel()
            if t == params.max_new_tokens - 1 or not bool(going.any()):
                break
            active, token, node_of = active[going], token[going], node_of[going]
            if progress is not None:
                progress(t + 1, params.max_new_tokens, sampled, n - active.numel(), n)
            # next nodes: distinct (parent node, token) pairs among the rows still going
            keys, node_of = torch.unique(node_of * vocab + token, return_inverse=True)
            parent, node_token = keys // vocab, keys % vocab
            if lean is not None:  # nodes in the order of their slots
                order = cache.regroup(parent)
                parent, node_token = parent[order], node_token[order]
                slot_of = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=device))
                node_of = slot_of[node_of]
            node_pos = node_pos[parent]
            if padded:
                node_attn = torch.cat([node_attn[parent], torch.ones((parent.numel(), 1), dtype=mask.dtype,
                                                                       device=device)], dim=1)
            if lean is not None:
                logits, cache = lean(node_token[:, None], node_pos, node_attn if padded else None, cache)
            else:
                cache.batch_select_indices(parent)
                out = model(input_ids=node_token[:, None], attention_mask=node_attn if padded else None,
                            position_ids=node_pos, use_cache=True, **{cache_name: cache})
                logits, cache = out.logits, getattr(out, cache_name)
            node_logits = logits[:, -1, :].float()
            node_pos = node_pos + 1

        if was_training:
            model.train()
        return self._rollout(ids, mask, completion[:, :steps], logprobs[:, :steps], entropy[:, :steps],
                             params.greedy or seen is not None)

    def _generate_static(self, ids: torch.Tensor, mask: torch.Tensor, g: int, params: SamplingParams,
                         generator: torch.Generator | None, progress: GenerationProgress | None,
                         seen: torch.Tensor | None) -> Rollout:
        """Every row decodes at every step over a preallocated cache (see :mod:`engine.rollout.static_cache`)."""
        n, width = ids.shape
        device, eos, budget = ids.device, self.eos_ids.to(ids.device), params.max_new_tokens
        positions = position_ids_from_mask(mask)
        padded = not bool(mask.all())
        logits, prompt_cache = self.lean(ids[::g], positions[::g], mask[::g] if padded else None, keep=1)
        capacity = round_up(width + budget, SPAN)
        like = prompt_cache[0][0]
        if self.static is None or not self.static.fits(self.lean, n, capacity, like):
            self.static = None  # free the old buffers and graphs before taking new ones
            self.static = StaticCache(self.lean, n, capacity, like)
        state = self.static
        state.start(prompt_cache, mask, positions[:, -1:], g)
        del prompt_cache
        logits = logits[:, -1, :].float().repeat_interleave(g, dim=0)

        completion = torch.full((n, budget), self.pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((n, budget), device=device)
        entropy = torch.zeros((n, budget), device=device)
        ended = torch.zeros(n, dtype=torch.bool, device=device)
        sampled = torch.zeros((), dtype=torch.long, device=device)  # tokens up to each row's end, kept on the device
        rows = torch.arange(n, device=device)
        steps = 0
        for t in range(budget):
            if seen is not None:
                logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
            token, logp, ent = sample(logits, params, generator)
            completion[:, t], logprobs[:, t] = token, logp
            if ent is not None:
                entropy[:, t] = ent
            if seen is not None:
                seen[rows, token] = True
            sampled += (~ended).sum()
            ended |= torch.isin(token, eos)
            steps = t + 1
            if t == budget - 1:
                break
            if t % CHECK_EVERY == CHECK_EVERY - 1:  # the only host synchronisation of the loop
                finished = int(ended.sum())
                if finished == n:
                    break
                if progress is not None:
                    progress(t + 1, budget, int(sampled), finished, n)
            state.feed(token, width + t)
            logits = state.step(round_up(width + t + 1, SPAN)).float()
        if not worth_keeping(state):
            self.static = None
        return self._rollout(ids, mask, completion[:, :steps], logprobs[:, :steps], entropy[:, :steps],
                             params.greedy or seen is not None)

    def _rollout(self, ids: torch.Tensor, mask: torch.Tensor, completion: torch.Tensor, logprobs: torch.Tensor,
                 entropy: torch.Tensor, no_entropy: bool) -> Rollout:
        """The rollout of decoded rows: each completion kept up to and including its first EOS
        (what a row wrote after it becomes padding), the width that of the longest."""
        is_eos = torch.isin(completion, self.eos_ids.to(completion.device))
        after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # 0 up to and including the first EOS
        completion_mask = (~after_eos).long()
        width = int(completion_mask.sum(dim=1).max()) if completion.numel() else completion.size(1)
        completion_mask = completion_mask[:, :width]
        if not bool(torch.isfinite(logprobs[:, :width][completion_mask.bool()]).all()):
            raise FloatingPointError("the model's next-token probabilities hold NaN or infinity while sampling: "
                                     "its weights or logits are not finite (try a lower learning_rate, or bf16)")
        return Rollout(
            prompt_ids=ids,
            prompt_mask=mask,
            completion_ids=completion.masked_fill(after_eos, self.pad_id)[:, :width].clone(),
            completion_mask=completion_mask,
            logprobs=logprobs[:, :width] * completion_mask,
            truncated=~is_eos.any(dim=1),
            entropy=None if no_entropy else entropy[:, :width] * completion_mask,
        )


def select_rows(rollout: Rollout, index: torch.Tensor) -> Rollout:
    """The rollout restricted to ``index`` rows (in that order)."""
    return Rollout(*(None if getattr(rollout, f) is None else getattr(rollout, f)[index] for f in ROLLOUT_FIELDS))


def concat_rollouts(rollouts: list[Rollout], pad_id: int) -> Rollout:
    """Stack rollouts of different widths: prompts padded on the left, completions on the right."""
    if len(rollouts) == 1:
        return rollouts[0]
    p = max(r.prompt_ids.size(1) for r in rollouts)
    t = max(r.completion_ids.size(1) for r in rollouts)

    def left(x: torch.Tensor, width: int, value) -> torch.Tensor:
        return torch.nn.functional.pad(x, (width - x.size(1), 0), value=value)

    def right(x: torch.Tensor, width: int, value) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.size(1)), value=value)

    return Rollout(
        prompt_ids=torch.cat([left(r.prompt_ids, p, pad_id) for r in rollouts]),
        prompt_mask=torch.cat([left(r.prompt_mask, p, 0) for r in rollouts]),
        completion_ids=torch.cat([right(r.completion_ids, t, pad_id) for r in rollouts]),
        completion_mask=torch.cat([right(r.completion_mask, t, 0) for r in rollouts]),
        logprobs=torch.cat([right(r.logprobs, t, 0.0) for r in rollouts]),
        truncated=torch.cat([r.truncated for r in rollouts]),
        entropy=None if any(r.entropy is None for r in rollouts)
        else torch.cat([right(r.entropy, t, 0.0) for r in rollouts]),
        env_mask=None if all(r.env_mask is None for r in rollouts)
        else torch.cat([right(r.env_mask if r.env_mask is not None else torch.ones_like(r.completion_mask), t, 1)
                        for r in rollouts]),
    )


ROLLOUT_FIELDS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "logprobs", "truncated", "entropy",
                  "env_mask")
