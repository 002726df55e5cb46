"""Decoding over a preallocated key/value cache and, on CUDA, one captured graph per step shape.

The default decoding loop (:meth:`TransformersRollout.generate`) decodes only the rows still
going, shares work between the rows of a group that have sampled the same tokens, and looks at
the host every token (:mod:`engine.rollout.node_cache`): right on a CPU, where arithmetic is
the cost. On a GPU a decoding step costs reading the weights and the cache once and launching
some twenty kernels per layer, and there growing tensors, per-token host synchronisation and
launches dominate (measured on an H200: a 0.5B model, 256 rows, 54 ms per token where the
memory roofline is 0.43 ms). Here, as in gpt-fast:

* the cache is allocated once, ``[rows, kv_heads, capacity, head_dim]`` per layer; the prompts'
  keys and values come from one prefill per prompt (copied to its G rows), and each new token's
  are written in place at its slot;
* a step attends over the first ``span`` slots (``span`` rounded up to :data:`SPAN`, so few
  shapes occur), blind to padding and to slots not yet written, with grouped-query heads folded
  into the query axis (no copy of keys and values per head);
* on CUDA each span's step (embedding to logits) is captured once as a CUDA graph and replayed:
  one launch per token instead of hundreds; the graphs and the cache are kept for the next
  round while its shape is the same and the cache is small beside the GPU's memory;
* sampling runs on the logits exactly as the default loop samples (same filters, same
  generator), over every row; rows that ended keep decoding until the check every
  :data:`CHECK_EVERY` tokens (no host synchronisation per token), and what they wrote after
  their end token is discarded.

Greedy decoding gives the default loop's tokens in float32 (in bfloat16 the two loops' different
kernels can round a near-tie either way); sampled rows follow the same distribution but not
draw for draw (rows that ended still draw). ``cache_implementation`` chooses: ``static`` (or
transformers' ``offloaded_static``) here, ``dynamic`` and transformers' other kinds the default
loop, None this one on CUDA for the architectures
:func:`~engine.rollout.llama_forward.lean_decoder` supports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.rollout.llama_forward import KVCache, LeanDecoder, rotary

SPAN = 128
"""Attention spans are multiples of this many slots: at most ⌈capacity / SPAN⌉ step shapes."""

STATIC_KINDS = ("static", "offloaded_static")
"""The ``cache_implementation`` values (transformers' names) that choose this loop."""

CHECK_EVERY = 16
"""Tokens between two looks (a host synchronisation) at whether every row has ended."""


def round_up(n: int, multiple: int) -> int:
    """The least multiple of ``multiple`` that is ≥ n.

    >>> round_up(519, 128), round_up(512, 128), round_up(1, 128)
    (640, 512, 128)
    """
    return -(-n // multiple) * multiple


class StaticCache:
    """The static buffers of one decoding batch and the step that runs over them.

    ``tok`` [n, 1] and ``pos`` [n, 1] hold the token fed at this step and its position, ``slot``
    [1] the cache slot it is written to; ``key_mask`` [n, capacity] marks the slots a row may
    attend to (its real prompt tokens and the tokens written so far)."""

    def __init__(self, lean: LeanDecoder, rows: int, capacity: int, like: torch.Tensor) -> None:
        self.lean, self.rows, self.capacity = lean, rows, capacity
        kv_heads, head_dim = like.size(1), like.size(3)
        self.cache: KVCache = [
            (like.new_zeros((rows, kv_heads, capacity, head_dim)), like.new_zeros((rows, kv_heads, capacity, head_dim)))
            for _ in lean.layers
        ]
        device = like.device
        self.tok = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.pos = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.key_mask = torch.zeros((rows, capacity), dtype=torch.bool, device=device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None
        self.graph_error: str | None = None  # why the steps run uncaptured, when a capture failed
        self.weights = weight_pointers(lean)

    def fits(self, lean: LeanDecoder, rows: int, capacity: int, like: torch.Tensor) -> bool:
        """Whether these buffers (and graphs) serve a batch of this shape on these weights."""
        k = self.cache[0][0]
        # the decoder is rebuilt after every optimizer step (sync_weights): the model it reads is what counts;
        # a larger capacity serves too (a step reads only the first ``span`` slots)
        return (self.lean.lm is lean.lm and self.rows == rows and self.capacity >= capacity and k.dtype == like.dtype
                and k.device == like.device and k.size(1) == like.size(1) and k.size(3) == like.size(3)
                and self.weights == weight_pointers(lean))

    def start(self, prompt_cache: KVCache, prompt_mask: torch.Tensor, last_pos: torch.Tensor, g: int) -> None:
        """Write the prompts' keys and values (one row of ``prompt_cache`` per prompt) to their G rows."""
        width = prompt_mask.size(1)
        for (k_all, v_all), (k, v) in zip(self.cache, prompt_cache, strict=True):
            k_all[:, :, :width].copy_(k.repeat_interleave(g, dim=0))
            v_all[:, :, :width].copy_(v.repeat_interleave(g, dim=0))
        self.key_mask.zero_()
        self.key_mask[:, :width].copy_(prompt_mask.bool())
        self.pos.copy_(last_pos)

    def feed(self, token: torch.Tensor, slot: int) -> None:
        """The next step's input: ``token`` [n] at the next position, written to cache slot ``slot``."""
        self.tok.copy_(token[:, None])
        self.pos.add_(1)
        self.slot.fill_(slot)

    def step(self, span: int) -> torch.Tensor:
        """Logits [n, V] of the fed tokens, attending over the first ``span`` slots: the captured
        graph on CUDA, else the step run as it is."""
        device = self.tok.device
        if device.type != "cuda" or self.graph_error is not None or torch.is_autocast_enabled("cuda"):
            return self.forward(span)  # (under autocast a graph would keep reading autocast's cached weight copies)
        if span not in self.graphs:
            stream = torch.cuda.current_stream(device)
            try:
                self.graphs[span] = self.capture(span)
            except RuntimeError as e:  # a layer that cannot be captured (host syncs in it): run the steps as they are
                torch.cuda.set_stream(stream)  # a failed capture leaves its stream current
                self.graph_error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                self.graphs.clear()
                torch.cuda.synchronize(device)
                return self.forward(span)
        graph, logits = self.graphs[span]
        graph.replay()
        return logits

    def capture(self, span: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        # A step is idempotent (it writes the same keys at the same slot): the warm-up run on a
        # side stream, which CUDA graphs need, leaves the state as the replay will.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.forward(span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):  # other threads run on
            logits = self.forward(span)
        self.pool = graph.pool()
        return graph, logits

    def forward(self, span: int) -> torch.Tensor:
        """The step itself: the lean decoder's arithmetic for one new token per row, its key and
        value written at ``slot``; query heads grouped by the key/value head they share
        (``[n, kv_heads, heads/kv_heads, head_dim]``), so attention reads each cached key once."""
        lean, inner, n = self.lean, self.lean.inner, self.rows
        hidden = inner.embed_tokens(self.tok)
        cos, sin = inner.rotary_emb(hidden, self.pos)
        rotate = rotary(cos.unsqueeze(1), sin.unsqueeze(1))
        self.key_mask.index_fill_(1, self.slot, True)
        mask = self.key_mask[:, None, None, :span]
        for layer, (keys, values) in zip(lean.layers, self.cache, strict=True):
            attn = layer.self_attn
            x = layer.input_layernorm(hidden)
            shape = (n, 1, -1, attn.head_dim)
            q = attn.q_proj(x).view(shape)
            k = attn.k_proj(x).view(shape)
            if hasattr(attn, "q_norm"):  # Qwen3: per-head RMSNorm before the rotation
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = rotate(q.transpose(1, 2)), rotate(k.transpose(1, 2))
            v = attn.v_proj(x).view(shape).transpose(1, 2)
            keys.index_copy_(2, self.slot, k.to(keys.dtype))
            values.index_copy_(2, self.slot, v.to(values.dtype))
            kv_heads = keys.size(1)
            grouped = q.reshape(n, kv_heads, q.size(1) // kv_heads, attn.head_dim)  # head h reads kv head h // groups
            out = F.scaled_dot_product_attention(grouped.to(keys.dtype), keys[:, :, :span], values[:, :, :span],
                                                 attn_mask=mask, scale=attn.scaling)
            hidden = hidden + attn.o_proj(out.reshape(n, 1, -1).to(hidden.dtype))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return lean.lm.lm_head(inner.norm(hidden))[:, -1]


def worth_keeping(cache: StaticCache) -> bool:
    """Whether to keep this batch's buffers and graphs for the next round (:func:`keep_cache`), the
    cache and each graph's logits counted."""
    device = cache.tok.device
    if device.type != "cuda":
        return True
    held = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in cache.cache)
    held += sum(out.numel() * out.element_size() for _, out in cache.graphs.values())  # each graph's logits
    return keep_cache(held, torch.cuda.get_device_properties(device).total_memory)


def keep_cache(held: int, device_memory: int) -> bool:
    """Keep the cache between rounds while it takes at most 1/16 of the GPU's memory: the update
    that follows must not lose what it needs to a cache it does not use, and recapturing the
    graphs costs only a few eager steps a round.

    A 0.5B model, 256 rows of up to 640 slots (2.0 GiB) on a 140 GiB H200 keeps it; a 7B one
    (28 layers, 4 key/value heads of 128), 256 rows of 1152 slots (16 GiB) on an 80 GiB H100 does not:

    >>> keep_cache(24 * 2 * 2 * 64 * 640 * 256 * 2, 140 * 2**30)
    True
    >>> keep_cache(28 * 2 * 4 * 128 * 1152 * 256 * 2, 80 * 2**30)
    False
    """
    return held * 16 <= device_memory


def weight_pointers(lean: LeanDecoder) -> tuple[int, ...]:
    """Where the model's weights live: a captured graph reads them there, so it serves only
    while they stay (an optimizer updates them in place; loading new weights moves them)."""
    return tuple(p.data_ptr() for p in lean.lm.parameters())
