"""A lean forward pass for Llama-family decoders, for the many short calls of a GRPO step.

Generation calls the model once per new token and the loss forward once per length bucket;
on small models each call costs more in per-call machinery (mask builders, cache objects,
output classes, attention-interface dispatch) than in arithmetic. :class:`LeanDecoder` runs
the same arithmetic layer by layer with the model's own modules (embeddings, norms, MLPs,
rotary embedding, every projection: LoRA and quantised layers work unchanged) and plain
tensors for the KV cache (or a :class:`~engine.rollout.node_cache.NodeCache`, written in place):

    h = embed(ids)
    for each layer:  h = h + o(attn(rope(q(norm₁ h)), rope(k(norm₁ h)), v(norm₁ h)))
                     h = h + mlp(norm₂ h)
    logits = lm_head(norm(h)[last ``keep`` positions])

with ``attn`` scaled dot-product attention over the cached keys and the new ones, causal
within the new tokens and blind to padding. The tests check logits and gradients against the
model's own forward. Architectures outside :data:`SUPPORTED`, sliding-window attention and
compiled layers keep the model's forward (:func:`lean_decoder` returns None), and so does a
model under DDP (its forward must run for gradients to be averaged) or with gradient
checkpointing (the callers check).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.parallel.sharding import is_sharded

SUPPORTED = frozenset({"llama", "qwen2", "qwen3", "mistral"})

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [n, kv_heads, length, head_dim]


def _unwrap(model):
    """The ``*ForCausalLM`` module under a PEFT wrapper (not under DDP: its forward must run)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def lean_decoder(model) -> LeanDecoder | None:
    """A :class:`LeanDecoder` for ``model`` when its architecture allows, else None."""
    if is_sharded(model):  # FSDP's hooks gather and release the weights around each layer: they must run
        return None
    causal = _unwrap(model)
    config = getattr(causal, "config", None)
    inner = getattr(causal, "model", None)
    if config is None or inner is None or getattr(config, "model_type", None) not in SUPPORTED:
        return None
    if getattr(config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return None
    if getattr(config, "use_sliding_window", True) and getattr(config, "sliding_window", None) is not None:
        return None
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or ())):
        return None
    layers = getattr(inner, "layers", None)
    parts = ("embed_tokens", "norm", "rotary_emb")
    if layers is None or not all(hasattr(inner, p) for p in parts) or not hasattr(causal, "lm_head"):
        return None
    for layer in layers:
        if getattr(layer, "_compiled_call_impl", None) is not None:  # torch_compile: the compiled layers run
            return None
        attn = getattr(layer, "self_attn", None)
        if attn is None or not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")):
            return None
        if not all(hasattr(layer, p) for p in ("input_layernorm", "post_attention_layernorm", "mlp")):
            return None
    return LeanDecoder(causal)


def rotary(cos: torch.Tensor, sin: torch.Tensor):
    """The rotary embedding as a function of q or k: ``x·cos + rotate_half(x)·sin`` with
    ``rotate_half([x₁, x₂]) = [−x₂, x₁]``, computed as ``x·cos + roll(x, d/2)·[−sin₁, sin₂]``
    (the same products, bit for bit, in four operations instead of seven)."""
    half = sin.shape[-1] // 2
    signed = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)

    def rotate(x: torch.Tensor) -> torch.Tensor:
        return x * cos + x.roll(half, dims=-1) * signed

    return rotate


def attention_mask(key_mask: torch.Tensor | None, past: int, new: int,
                   device: torch.device | None = None) -> torch.Tensor | None:
    """Boolean [n, 1, new, past+new]: query i (at position past+i) may see key j when j is a
    real token and j ≤ past+i; every query sees itself, so padding rows stay finite.

    None without padding when one new token sees everything or, with no past, the plain
    causal mask does (the caller passes ``is_causal``)."""
    total = past + new
    if key_mask is None and (new == 1 or past == 0):  # see all, or plain causal (is_causal)
        return None
    q_pos = torch.arange(past, total, device=device)[:, None]
    k_pos = torch.arange(total, device=device)[None, :]
    allowed = (k_pos <= q_pos)[None, None]
    if key_mask is not None:
        allowed = (allowed & key_mask.bool()[:, None, None, :]) | (k_pos == q_pos)[None, None]
    return allowed


class LeanDecoder:
    """Calls a Llama-family ``*ForCausalLM`` layer by layer (see the module docstring)."""

    def __init__(self, causal_lm) -> None:
        self.lm = causal_lm
        self.inner = causal_lm.model
        self.layers = list(self.inner.layers)

    def __call__(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        keep: int | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits [n, keep, V] of the last ``keep`` new positions (all when None) and the cache
        extended by the new tokens.

        ``key_mask`` [n, past+new]: 1 on real tokens (None: no padding anywhere); ``cache`` the
        keys and values of the ``past`` earlier tokens of each row."""
        inner = self.inner
        n, new = input_ids.shape
        slotted = hasattr(cache, "write")  # a NodeCache: written in place (engine.rollout.node_cache)
        past = cache.length if slotted else cache[0][0].size(2) if cache else 0
        mask = attention_mask(key_mask, past, new, input_ids.device)
        hidden = inner.embed_tokens(input_ids)
        cos, sin = inner.rotary_emb(hidden, position_ids)
        rotate = rotary(cos.unsqueeze(1), sin.unsqueeze(1))
        out_cache: KVCache = []
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(hidden)
            shape = (n, new, -1, attn.head_dim)
            q = attn.q_proj(x).view(shape)
            k = attn.k_proj(x).view(shape)
            if hasattr(attn, "q_norm"):  # Qwen3: per-head RMSNorm before the rotation
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            v = attn.v_proj(x).view(shape).transpose(1, 2)
            q, k = rotate(q), rotate(k)
            if slotted:
                k, v = cache.write(i, k, v)
            elif cache:
                k = torch.cat([cache[i][0], k], dim=2)
                v = torch.cat([cache[i][1], v], dim=2)
            if not slotted:
                out_cache.append((k, v))
            heads, kv_heads = q.size(1), k.size(1)
            grouped = kv_heads != heads and new == 1  # one query a row: heads sharing a kv head are its queries
            if grouped:
                q = q.reshape(n, kv_heads, heads // kv_heads, attn.head_dim)
            elif kv_heads != heads:
                k = k.repeat_interleave(heads // kv_heads, dim=1)
                v = v.repeat_interleave(heads // kv_heads, dim=1)
            dropout = getattr(attn, "attention_dropout", 0.0) if attn.training else 0.0
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, scale=attn.scaling,
                is_causal=mask is None and past == 0 and new > 1,
            )
            if grouped:
                out = out.reshape(n, heads, 1, attn.head_dim)
            hidden = hidden + attn.o_proj(out.transpose(1, 2).reshape(n, new, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        if slotted:
            cache.grow(new)
        if keep is not None:
            hidden = hidden[:, -keep:]
        return self.lm.lm_head(inner.norm(hidden)), cache if slotted else out_cache


def gather_cache(cache: KVCache, index: torch.Tensor) -> KVCache:
    """The cache of rows ``index`` (gathered: gradients flow back to the rows they came from)."""
    return [(k[index], v[index]) for k, v in cache]
