"""The optimizer (``optim``, by transformers' names) and the learning-rate schedule
(``lr_scheduler_type`` with ``lr_scheduler_kwargs``, built by ``transformers.get_scheduler``), so
a TRL recipe's choice means here what it means there.

Every choice is a plain ``torch.optim.Optimizer`` and every schedule a ``LambdaLR``: a
checkpoint saves their ``state_dict`` whichever they are, and a resumed run continues exactly.
"""

from __future__ import annotations

import re

import torch

from engine.algo.schedules import warmup_steps
from engine.config.schema import ConfigError


NO_DECAY = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")
"""Parameter names (lower-cased) that weight decay leaves alone, as transformers' Trainer does."""


def decays(name: str, in_layer_norm: bool = False) -> bool:
    """Whether weight decay applies to the parameter ``name``: not to biases, not to norms'
    weights (RMSNorm, LayerNorm, Qwen3's q_norm/k_norm, a final ``norm``), nor to anything inside
    an ``nn.LayerNorm`` whatever its name: the rule of transformers' Trainer, so of TRL.

    >>> [decays(n) for n in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
    ...                      "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_norm.weight",
    ...                      "model.norm.weight", "lm_head.weight")]
    [True, False, False, False, False, True]
    >>> decays("transformer.h.0.ln_1.weight", in_layer_norm=True)
    False
    """
    return not in_layer_norm and NO_DECAY.search(name.lower()) is None


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters, in one group when ``weight_decay`` is 0 (nothing to tell apart),
    else two: those :func:`decays` names at ``weight_decay``, the rest at 0."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": [p for _, p in params]}]
    in_norm = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    decay = [p for name, p in params if decays(name, id(p) in in_norm)]
    chosen = {id(p) for p in decay}
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": [p for _, p in params if id(p) not in chosen], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # (LoRA's adapters: every one decays)


def make_optimizer(model, cfg, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optim`` names, over the trainable parameters, with ``weight_decay`` on
    the weights :func:`decays` names (not on biases and norms).

    As in transformers: adamw_torch_fused is AdamW with one fused kernel for all parameters
    (CPU and CUDA; about 5× faster than the loop on a 1M model), falling back to the loop where
    the device has none; adafactor has a fixed learning rate (no relative step, no parameter
    scaling); the 8-bit and paged AdamWs are bitsandbytes'."""
    params = parameter_groups(model, cfg.weight_decay)
    name, lr, decay = cfg.optim, cfg.learning_rate, cfg.weight_decay
    adam = dict(lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon, weight_decay=decay)
    if name == "adamw_torch_fused":
        if device.type in ("cpu", "cuda") and all(p.is_floating_point() for g in params for p in g["params"]):
            try:
                return torch.optim.AdamW(params, fused=True, **adam)
            except (RuntimeError, TypeError):
                pass
        return torch.optim.AdamW(params, **adam)
    if name == "adamw_torch":
        return torch.optim.AdamW(params, **adam)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=lr, weight_decay=decay, scale_parameter=False, relative_step=False)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=decay)
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError(f"optim: {name} needs the bitsandbytes package (pip install bitsandbytes); or use "
                          f"adamw_torch_fused", source="optim") from None
    bits = 32 if name.endswith("32bit") else 8
    return bitsandbytes.optim.AdamW(params, optim_bits=bits, is_paged=name.startswith("paged_"), **adam)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """``transformers.get_scheduler(lr_scheduler_type)`` over ``max_steps`` optimizer steps, warming up
    for ``warmup_steps`` (or ``ceil(warmup_ratio · max_steps)``), with ``lr_scheduler_kwargs``."""
    from transformers import get_scheduler

    return get_scheduler(cfg.lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps(cfg),
                         num_training_steps=max(1, cfg.max_steps),
                         scheduler_specific_kwargs=dict(cfg.lr_scheduler_kwargs or {}))


def per_group(scheduler_state: dict, groups: int) -> dict:
    """A schedule's saved state for an optimizer of ``groups`` parameter groups: one written for a
    single group (before weight decay spared biases and norms) repeats its per-group values.

    >>> per_group({"base_lrs": [1e-06], "_last_lr": [5e-07], "lr_lambdas": [None], "last_epoch": 3}, 2)
    {'base_lrs': [1e-06, 1e-06], '_last_lr': [5e-07, 5e-07], 'lr_lambdas': [None, None], 'last_epoch': 3}
    """
    state = dict(scheduler_state)
    for key in ("base_lrs", "_last_lr", "lr_lambdas"):
        values = state.get(key)
        if isinstance(values, list) and len(values) == 1 and groups > 1:
            state[key] = values * groups
    return state
