"""Arithmetic a GRPO step does, counted from the model's shapes, and the machine's matmul
peak measured on the spot: what ``grpo-tui bench`` reports as GFLOP/s and % of peak per phase.

The count is the matrix products of a decoder-only transformer (Llama family): per token
and layer, the q/k/v/o projections and the gated MLP; the attention scores and their
weighted sum over the context; and the vocabulary projection where logits are needed.
Multiply–adds count 2 FLOPs. Element-wise work (norms, softmax, rotary) is left out: it is
small at these widths, and it is not what a matmul peak measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    intermediate: int
    kv_dim: int  # key/value heads × head size
    vocab: int

    @classmethod
    def of(cls, config) -> "Shape":
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(config.hidden_size, config.num_hidden_layers, config.intermediate_size, kv_heads * head_dim,
                   config.vocab_size)


def token_flops(shape: Shape, context: float, logits: bool = True) -> float:
    """Forward FLOPs for one token attending over ``context`` positions.

    2·L·(H·(H + 2·kv) + H·H + 3·H·I) for the projections and MLP, 4·L·context·H for the
    attention, 2·H·V for the logits. Example: hidden 512, 8 layers, MLP 1376, vocab 100,
    context 100 → 2·8·(512·1536 + 512·512 + 3·512·1376) + 4·8·100·512 + 2·512·100 = 52.33 MFLOP:

    >>> round(token_flops(Shape(512, 8, 1376, 512, 100), 100) / 1e6, 2)
    52.33
    """
    h = shape.hidden
    dense = 2 * shape.layers * (h * (h + 2 * shape.kv_dim) + h * h + 3 * h * shape.intermediate)
    attention = 4 * shape.layers * context * h
    return dense + attention + (2 * h * shape.vocab if logits else 0)


def generation_flops(shape: Shape, prompts: int, prompt_len: float, rows: int, new_tokens: float) -> float:
    """Sampling ``rows`` completions of ``new_tokens`` each from ``prompts`` prompts of
    ``prompt_len`` tokens: each prompt's prefill once (its group shares it), then one token per
    row and position, each attending over the prompt and what came before it.

    >>> s = Shape(512, 8, 1376, 512, 100)
    >>> round(generation_flops(s, 1, 10, 2, 3) / 1e6, 1)
    812.1
    """
    prefill = prompts * prompt_len * token_flops(shape, prompt_len / 2, logits=False)
    prefill += prompts * 2 * shape.hidden * shape.vocab  # the last prompt position's logits
    decode = rows * sum(token_flops(shape, prompt_len + t) for t in range(int(round(new_tokens))))
    return prefill + decode


def update_flops(shape: Shape, rows: int, prompt_len: float, new_tokens: float, passes: float) -> float:
    """The loss's forward and backward (3× a forward) over prompt and completion, ``passes``
    times (μ), logits on completion positions only.

    >>> s = Shape(512, 8, 1376, 512, 100)
    >>> round(update_flops(s, 2, 10, 3, 1) / 1e9, 3)
    3.956
    """
    length = prompt_len + new_tokens
    forward = rows * (length * token_flops(shape, length / 2, logits=False)
                      + new_tokens * 2 * shape.hidden * shape.vocab)
    return 3 * forward * passes


def reference_flops(shape: Shape, rows: int, prompt_len: float, new_tokens: float, forwards: int) -> float:
    """``forwards`` extra forward passes (the reference's for β > 0, the sampling policy's when a round is reused)."""
    return update_flops(shape, rows, prompt_len, new_tokens, forwards) / 3


def matmul_peak(device, dtype, seconds: float = 1.0, size: int = 1024) -> float:
    """FLOP/s of square ``size`` matrix products on ``device``, best of a few timed bursts."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t, n = time.perf_counter(), 8
        for _ in range(n):
            a @ b
        sync()
        best = max(best, n * 2 * size**3 / (time.perf_counter() - t))
    return best


def decode_product_rate(model, rows: int, seconds: float = 1.0) -> float:
    """FLOP/s of ``model``'s own matrix products (every ``nn.Linear``, in order, on its weights
    as they lie in memory) for a batch of ``rows`` single tokens: what one decoding step's
    arithmetic can reach at that width, best of a few passes. A CPU's matmul peak is measured on
    large square products; decoding multiplies a few rows by weights read from memory each step,
    and reaches far less (on 2 shared cores, 64 rows of a 25M Llama: 46–67% of the peak)."""
    import torch
    import torch.nn.functional as F

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not layers or rows < 1:
        return float("nan")
    weight = layers[0].weight
    inputs = {m.in_features: torch.randn(rows, m.in_features, device=weight.device, dtype=weight.dtype)
              for m in layers}
    work = sum(2 * rows * m.in_features * m.out_features for m in layers)
    sync = torch.cuda.synchronize if weight.device.type == "cuda" else (lambda: None)

    def one_pass() -> None:
        for m in layers:
            F.linear(inputs[m.in_features], m.weight)

    with torch.no_grad():
        one_pass()
        sync()
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            one_pass()
            sync()
            best = max(best, work / (time.perf_counter() - t))
    return best


def copy_bandwidth(device, seconds: float = 1.0, mib: int = 1024) -> float:
    """Bytes/s a device-to-device copy of ``mib`` MiB moves (read plus write), best of a few."""
    import torch

    x = torch.empty(mib * 2**18, device=device, dtype=torch.float32)
    y = torch.empty_like(x)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    y.copy_(x)
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        for _ in range(4):
            y.copy_(x)
        sync()
        best = max(best, 4 * 2 * x.numel() * 4 / (time.perf_counter() - t))
    return best


def decode_bytes(weight_bytes: float, shape: Shape, rows: int, context: float, cache_bytes_per_value: int = 2) -> float:
    """What one decoding step must read at least: every weight once, and each row's key/value
    cache over its ``context`` (2 · layers · kv · context values a row).

    >>> decode_bytes(1e9, Shape(896, 24, 4864, 128, 151936), rows=256, context=256) / 1e9
    1.805...
    """
    return weight_bytes + rows * 2 * shape.layers * shape.kv_dim * context * cache_bytes_per_value
