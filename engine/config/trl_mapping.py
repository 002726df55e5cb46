"""Turn a mapping that uses TRL's names (a ``GRPOConfig``'s settings, an open-r1 recipe) into
our preset shape, following :data:`engine.config.trl_names.TRL_NAMES`: mapped names become our
fields, names with no effect are collected for one warning, refused names set otherwise than
TRL's default become one problem line each saying what to do instead. Our own fields pass
through untouched, so validation afterwards reads one shape.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Mapping

from engine.config.schema import RunConfig
from engine.config.trl_names import SCRIPT_NAMES, TRL_NAMES, handling

_GENERATION_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
_LORA = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout", "lora_target_modules": "target_modules"}


class TrlNamesIgnored(UserWarning):
    """TRL settings accepted with no effect on the run (each named with the reason)."""


def is_trl_name(name: str, *, presets: bool = True) -> bool:
    return name in TRL_NAMES or (presets and name in SCRIPT_NAMES)


def _dtype(value: Any) -> str:
    return "auto" if value is None else str(value).replace("torch.", "")


def _dataset(out: dict) -> dict:
    block = out.get("dataset")
    block = dict(block) if isinstance(block, Mapping) else {}  # a copy: the caller's mapping stays as given
    out["dataset"] = block
    return block


def translate(data: Mapping, problems: list[str], ours: set[str], source: str = "config") -> dict:
    """``data`` with every TRL name replaced by what it means here (see the module doc).

    ``ours`` are the RunConfig field names (they win over the table: a name that becomes ours
    is ours). Problems are appended; names with no effect are warned about once, together.
    """
    out: dict = {}
    trl: dict[str, Any] = {}
    # ours too, but generation_kwargs' sampling keys set the sampling fields
    ours = ours - {"generation_kwargs"}
    for key, value in data.items():
        if isinstance(key, str) and key not in ours and handling(key) is not None:
            trl[key] = value
        else:
            out[key] = value
    if not trl:
        return out
    ignored: list[str] = []
    for key, value in trl.items():
        h = handling(key)
        assert h is not None
        if h.kind == "no_effect":
            if value != h.default:
                ignored.append(f"{key} ({h.note})")
        elif h.kind == "trainer":  # GRPOTrainer reads these from its args; a preset has no GRPOTrainer
            if source != "GRPOConfig" and value != h.default and value not in (None, False):
                if h.default is False:  # a switch that would act (push, overwrite): refused
                    problems.append(f"{key}={value!r}: not supported in a preset; {h.note}")
                else:  # a setting such a switch reads: nothing to act on
                    ignored.append(f"{key} ({h.note})")
        elif h.kind == "refused":
            if value != h.default and not (value in (None, False, [], {}, "") and h.default in (None, False, [], "")):
                problems.append(f"{key}={value!r}: not supported here; {h.note}")
        else:
            note = _MAPPERS[key](key, value, out, trl, problems)
            if note:
                ignored.append(f"{key} ({note})")
    block = out.get("dataset")
    if "dataset" not in data and isinstance(block, dict) and not any(k in block for k in ("task", "path", "name")):
        out["dataset"] = {**dataclasses.asdict(RunConfig().dataset), **block}  # rendering options on the default source
    if ignored:
        warnings.warn(f"{source}: TRL settings with no effect here: {'; '.join(ignored)}", TrlNamesIgnored,
                      stacklevel=3)
    return out


# --------------------------------------------------------------------------- mapped names


def _shuffle(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if key == "train_sampling_strategy":
        if value not in ("random", "sequential"):
            problems.append(f"train_sampling_strategy={value!r}: not supported here; use random or sequential")
            return
        value = value == "random"
    _dataset(out)["shuffle"] = value


def _to_dataset(field: str):
    def apply(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
        if value is not None:
            _dataset(out)[field] = value
    return apply


def _dtype_name(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if value is not None:
        out["torch_dtype"] = _dtype(value)


def _generation_kwargs(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append(f"generation_kwargs: expected a mapping, got {value!r}")
        return
    rest = {}
    for k, v in value.items():
        if k in _GENERATION_KEYS:
            out[k] = v  # as in TRL, they override the fields
        elif k == "max_new_tokens":
            out["max_completion_length"] = v
        else:
            rest[k] = v  # the field: vLLM's SamplingParams takes them (engine.config.knobs checks that)
    out["generation_kwargs"] = rest or None


def _save_strategy(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if value == "no":
        out["save_steps"] = 0
    elif value != "steps":
        problems.append(f"save_strategy={value!r}: not supported here; use steps (with save_steps) or no")


def _eval_strategy(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if value == "steps" and out.get("eval_steps") in (None, 0):
        out["eval_steps"] = out.get("logging_steps", 10)
    elif value not in ("no", "steps"):
        problems.append(f"eval_strategy={value!r}: not supported here; use steps (with eval_steps) or no")


def _trust_remote_code(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    kwargs = out.get("model_init_kwargs")
    if value and (kwargs is None or isinstance(kwargs, Mapping)):
        out["model_init_kwargs"] = {"trust_remote_code": value, **(kwargs or {})}  # model_init_kwargs' own wins


def _cap(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> None:
    if value is not None:
        out["vllm_importance_sampling_clip_max"] = value


def _peft(key: str, value: Any, out: dict, trl: dict, problems: list[str]) -> str | None:
    if key != "use_peft":  # read by use_peft; as in TRL they wait for it
        return None if trl.get("use_peft") else "LoRA settings take effect with use_peft: true"
    if value:
        peft = {_LORA[k]: trl.get(k, SCRIPT_NAMES[k].default) for k in _LORA}
        if peft["target_modules"] is None:
            peft.pop("target_modules")
        out["peft"] = {**peft, **(out.get("peft") or {})}
    return None


_MAPPERS = {
    "shuffle_dataset": _shuffle,
    "train_sampling_strategy": _shuffle,
    "generation_kwargs": _generation_kwargs,
    "system_prompt": _to_dataset("system_prompt"),
    "save_strategy": _save_strategy,
    "eval_strategy": _eval_strategy,
    "vllm_importance_sampling_cap": _cap,
    "trust_remote_code": _trust_remote_code,
    "dataset_name": _to_dataset("name"),
    "dataset_config": _to_dataset("config"),
    "dataset_train_split": _to_dataset("split"),
    "dataset_test_split": _to_dataset("eval_split"),
    "dataset_prompt_column": _to_dataset("prompt_column"),
    "dtype": _dtype_name,
    "use_peft": _peft,
    **{k: _peft for k in _LORA},
}
assert {k for k, h in {**TRL_NAMES, **SCRIPT_NAMES}.items() if h.kind == "mapped"} == set(_MAPPERS)


def steps_for_epochs(epochs: float, n_prompts: int, per_device_train_batch_size: int,
                     gradient_accumulation_steps: int, num_generations: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_prompts`` prompts (each step takes
    batch × accumulation completions, i.e. that over num_generations prompts)."""
    prompts_per_step = max(1, per_device_train_batch_size * gradient_accumulation_steps // num_generations)
    return max(1, math.ceil(epochs * n_prompts / prompts_per_step))


def resolved_max_steps(cfg: RunConfig, n_prompts: int) -> int:
    """The optimizer steps a run of ``cfg`` over ``n_prompts`` training prompts takes, by TRL's rule:
    a positive ``max_steps`` wins; -1 (or 0) leaves it to ``num_train_epochs`` passes over the prompts.

        >>> resolved_max_steps(RunConfig(max_steps=-1, num_train_epochs=2.0, per_device_train_batch_size=8,
        ...                               num_generations=4), n_prompts=10)  # 2 prompts per step
        10
        >>> resolved_max_steps(RunConfig(max_steps=7, num_train_epochs=2.0), n_prompts=10)
        7
    """
    if cfg.max_steps > 0 or cfg.num_train_epochs is None:  # validation refuses -1 without epochs
        return cfg.max_steps
    return steps_for_epochs(cfg.num_train_epochs, n_prompts, cfg.per_device_train_batch_size,
                            cfg.gradient_accumulation_steps, cfg.num_generations)
