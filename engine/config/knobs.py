"""Checks of TRL's pass-through knobs: the options handed on to transformers, torch or an
optional package (``optim``, ``lr_scheduler_kwargs``, ``model_init_kwargs``,
``gradient_checkpointing_kwargs``, ``use_liger_kernel``). Each mistake is one line when the
config is read, rather than a traceback from deep inside a library minutes into a run.

No torch or transformers here (engine.config stays light): the options each schedule takes are
written out in :data:`SCHEDULE_OPTIONS`, and a test holds them to transformers' signatures.
"""

from __future__ import annotations

import importlib.util
from typing import get_args

from engine.config.schema import TorchDtype

SCHEDULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "constant_with_warmup": (),
    "linear": (),
    "cosine": ("num_cycles",),
    "cosine_with_restarts": ("num_cycles",),
    "polynomial": ("lr_end", "power"),
    "inverse_sqrt": ("timescale",),
    "cosine_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate"),
    "cosine_warmup_with_min_lr": ("num_cycles", "min_lr", "min_lr_rate"),
    "warmup_stable_decay": ("num_stable_steps", "num_decay_steps", "warmup_type", "decay_type", "min_lr_ratio",
                            "num_cycles"),
}
"""lr_scheduler_kwargs each lr_scheduler_type takes (transformers' schedule functions' options)"""

MODEL_INIT_KEYS = ("revision", "trust_remote_code", "attn_implementation", "subfolder", "cache_dir",
                   "local_files_only", "low_cpu_mem_usage")
"""model_init_kwargs handed to from_pretrained (dtype / torch_dtype set torch_dtype instead)"""

CHECKPOINTING_KEYS = ("use_reentrant", "preserve_rng_state", "determinism_check", "debug")
"""gradient_checkpointing_kwargs torch.utils.checkpoint takes"""

ENGINE_SAMPLING_KEYS = ("n", "max_tokens", "stop_token_ids", "logprobs", "seed", "temperature", "top_p", "top_k",
                        "min_p", "repetition_penalty")
"""vLLM SamplingParams the engine sets itself (the sampling ones from their fields)"""

BITSANDBYTES_OPTIMIZERS = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit")


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def check_knobs(v: dict, bad: set, problems: list[str], check_installed: bool = True) -> None:
    """Check (and settle) the pass-through knobs of the values ``v`` that passed alone;
    ``check_installed``: also that the packages they need are installed (not when a preset is
    only read, e.g. for a run on another machine)."""
    _model_init_kwargs(v, problems)
    kind, options = v.get("lr_scheduler_type"), v.get("lr_scheduler_kwargs") or {}
    if kind in SCHEDULE_OPTIONS and "lr_scheduler_kwargs" not in bad:
        allowed = SCHEDULE_OPTIONS[kind]
        for key in options:
            if key not in allowed:
                takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
                problems.append(f"lr_scheduler_kwargs.{key}: not an option of the {kind} schedule; {takes}")
        if kind.endswith("_min_lr") and ("min_lr" in options) == ("min_lr_rate" in options):
            problems.append(f"lr_scheduler_kwargs: the {kind} schedule needs exactly one of min_lr (a learning "
                            f"rate) or min_lr_rate (a share of learning_rate), e.g. {{min_lr_rate: 0.1}}")
    for key in v.get("gradient_checkpointing_kwargs") or {}:
        if key not in CHECKPOINTING_KEYS:
            problems.append(f"gradient_checkpointing_kwargs.{key}: not an option of torch's checkpointing; it takes "
                            f"{', '.join(CHECKPOINTING_KEYS)}")
    extra = v.get("generation_kwargs") or {}
    for key in extra:
        if key in ENGINE_SAMPLING_KEYS:
            problems.append(f"generation_kwargs.{key}: set by the engine; remove it")
        elif not v.get("use_vllm"):
            problems.append(f"generation_kwargs.{key}: taken by vLLM's SamplingParams, so only with use_vllm; "
                            f"the engine's own sampler takes temperature, top_p, top_k, min_p, repetition_penalty "
                            f"and max_new_tokens")
    optim = v.get("optim")
    if check_installed and optim in BITSANDBYTES_OPTIMIZERS and not installed("bitsandbytes"):
        problems.append(f"optim: {optim} needs the bitsandbytes package (pip install bitsandbytes); or use "
                        f"adamw_torch_fused")
    if check_installed and v.get("use_liger_kernel") and not installed("liger_kernel"):
        problems.append("use_liger_kernel: needs the liger-kernel package (pip install liger-kernel, CUDA only); "
                        "or set use_liger_kernel: false")


def _model_init_kwargs(v: dict, problems: list[str]) -> None:
    """Check model_init_kwargs' keys; its dtype (TRL's way to set it) moves to torch_dtype, the
    one field the rest of the engine reads."""
    kwargs = v.get("model_init_kwargs")
    if not kwargs:
        return
    kwargs = dict(kwargs)
    for key in ("dtype", "torch_dtype"):
        if key in kwargs:
            value = kwargs.pop(key)
            name = "auto" if value is None else str(value).replace("torch.", "")
            if name not in get_args(TorchDtype):
                problems.append(f"model_init_kwargs.{key}: {name!r} is not one of {' | '.join(get_args(TorchDtype))}")
            else:
                v["torch_dtype"] = name
    for key, value in kwargs.items():
        if key not in MODEL_INIT_KEYS:
            problems.append(f"model_init_kwargs.{key}: not taken here; the keys passed to from_pretrained are "
                            f"{', '.join(MODEL_INIT_KEYS)} (and dtype)")
        elif key in ("trust_remote_code", "local_files_only", "low_cpu_mem_usage") and not isinstance(value, bool):
            problems.append(f"model_init_kwargs.{key}: expected true or false, got {value!r}")
        elif key not in ("trust_remote_code", "local_files_only", "low_cpu_mem_usage") and not isinstance(value, str):
            problems.append(f"model_init_kwargs.{key}: expected a string, got {value!r}")
    v["model_init_kwargs"] = kwargs or None
