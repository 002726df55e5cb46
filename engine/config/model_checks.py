"""Checks of what a preset names outside itself that need no model loaded: a local model's
folder and context length (from its config.json), whether vLLM can run here, and the LoRA block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.config.fields import _describe, _did_you_mean


def _check_local_model(path: Path, v: dict, problems: list[str], given: set | None = None) -> None:
    """A local model is a folder with a config.json (not a file, not a device)."""
    if not path.is_dir() or not (path / "config.json").is_file():
        problems.append(f"model_name_or_path: {path} is not a model folder (a folder with config.json, "
                        "or a hub id)")
        return
    context = model_context(path, v.get("model_config_overrides"))
    completion = v.get("max_completion_length") if given is None or "max_completion_length" in given else None
    # (max_prompt_length is a bound that cuts long prompts, usually far above the prompts' length:
    # the prompts themselves are measured when the run starts)
    if context is not None and isinstance(completion, int) and completion >= context:
        problems.append(f"max_completion_length: must be below the model's context of {context} tokens "
                        f"(max_position_embeddings in its config.json), got {completion}")


def model_context(path: Path, overrides: Any = None) -> int | None:
    """The context length (``max_position_embeddings``) of the model folder ``path`` as it
    will be built -- ``overrides`` (model_config_overrides) first -- read from its config.json
    without loading anything; None when it does not say."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    value = next((c.get("max_position_embeddings") for c in (overrides if isinstance(overrides, dict) else {},
                                                             config, text_config)
                  if isinstance(c.get("max_position_embeddings"), int)), None)
    return value if isinstance(value, int) and value > 0 else None


def vllm_unavailable(needs_gpu_for: str = "the colocated engine runs there") -> str | None:
    """Why vLLM cannot run in this process (not installed, no CUDA GPU), with the fix; None if it can."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed: pip install 'vllm>=0.27,<0.33' (the vllm extra; needs a CUDA GPU)"
    import torch

    if not torch.cuda.is_available():
        return f"vLLM generation needs a CUDA GPU ({needs_gpu_for}) and this machine has none (torch {torch.__version__})"
    return None


def vllm_problems(mode: str) -> list[str]:
    """``use_vllm: true`` on this machine: the reason it cannot work, as a config problem; [] when it can."""
    reason = vllm_unavailable("the colocated engine runs in the training process" if mode == "colocate"
                              else "the training process sends weights to the server by NCCL")
    return [] if reason is None else [f"use_vllm: {reason}; or set use_vllm: false to generate with transformers"]


PEFT_KEYS = {"r": int, "lora_alpha": (int, float), "lora_dropout": (int, float), "target_modules": (list, str),
             "merge_on_save": bool}


def _check_peft(peft: dict) -> list[str]:
    """The LoRA block: known keys, right types, sensible values; peft must be importable."""
    problems = []
    for key, value in peft.items():
        if key not in PEFT_KEYS:
            problems.append(f"peft.{key}: unknown key{_did_you_mean(key, PEFT_KEYS)}")
        elif isinstance(value, bool) and PEFT_KEYS[key] is not bool or not isinstance(value, PEFT_KEYS[key]):
            problems.append(f"peft.{key}: wrong type ({_describe(value)})")
    if isinstance(peft.get("r"), int) and not isinstance(peft.get("r"), bool) and peft["r"] < 1:
        problems.append(f"peft.r: must be >= 1, got {peft['r']}")
    dropout = peft.get("lora_dropout")
    if isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and not 0 <= dropout < 1:
        problems.append(f"peft.lora_dropout: must be in [0, 1), got {dropout}")
    try:
        import peft as _peft  # noqa: F401
    except ImportError:
        problems.append("peft: LoRA needs the peft package: pip install peft (the lora extra)")
    return problems
