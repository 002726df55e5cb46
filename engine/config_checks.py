"""Run config validation: each field's type, choices and range, then the checks that need
several fields or the outside world (paths, reward plugins, tasks, LoRA, vLLM). Validation
never stops at the first mistake: every problem is collected and reported at once, each
prefixed by its field path, because fixing a preset one error per launch is the slowest loop
there is. Whatever a mapping holds, :func:`config_from_dict` returns a
:class:`~engine.config.RunConfig` or raises a :class:`~engine.config.ConfigError` -- never
another exception; :func:`validate_adjustment` does the same for changes to a running job.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union, get_args, get_origin, get_type_hints

from engine.config import (
    ADJUSTABLE_FIELDS,
    BUILTIN_REWARDS,
    DATASET_SUFFIXES,
    REPO_ROOT,
    REWARD_MODEL_PREFIX,
    ConfigError,
    DatasetConfig,
    RunConfig,
    config_to_dict,
)


# --------------------------------------------------------------------------- field schema


@dataclass(frozen=True)
class _Spec:
    kind: str  # str | int | float | bool | list | dict | dataset
    optional: bool
    item: str | None = None  # element kind of a list, value kind of a dict


def _spec_of(tp: Any) -> _Spec:
    optional = False
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        optional = type(None) in args
        tp = next(a for a in args if a is not type(None))
    if tp is DatasetConfig:
        return _Spec("dataset", optional)
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if origin is list:
        return _Spec("list", optional, args[0].__name__)
    if origin is dict:
        return _Spec("dict", optional, args[1].__name__ if args else None)
    return _Spec(tp.__name__, optional)


_SCHEMA: dict[type, dict[str, _Spec]] = {
    cls: {name: _spec_of(tp) for name, tp in get_type_hints(cls).items()}
    for cls in (DatasetConfig, RunConfig)
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "torch_dtype": ("auto", "float32", "bfloat16", "float16"),
    "loss_type": ("grpo", "bnpo", "dr_grpo", "dapo"),
    "scale_rewards": ("group", "batch", "none"),
    "importance_sampling_level": ("token", "sequence"),
    "lr_scheduler_type": ("constant", "linear", "cosine", "constant_with_warmup"),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "dataset.format": ("prompts", "ranked"),
    "vllm_mode": ("colocate", "server"),
    "vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
}


def _range(lo: float | None = None, hi: float | None = None, *, lo_open=False, hi_open=False):
    """A check that a number lies in [lo, hi] (open ends where asked); None = unbounded."""
    if hi is None:
        text = f"must be {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(v: float) -> str | None:
        low_ok = v > lo if lo_open else v >= lo
        high_ok = hi is None or (v < hi if hi_open else v <= hi)
        return None if low_ok and high_ok else f"{text}, got {v!r}"

    return check


def _not_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


_RULES: dict[str, Callable[[Any], str | None]] = {
    "model_name_or_path": _not_empty,
    "num_generations": _range(2),
    "max_prompt_length": _range(1),
    "max_completion_length": _range(1),
    "temperature": _range(0, lo_open=True),
    "top_p": _range(0, 1, lo_open=True),
    "top_k": _range(0),
    "min_p": _range(0, 1),
    "repetition_penalty": _range(0, lo_open=True),
    "beta": _range(0),
    "epsilon": _range(0, lo_open=True),
    "epsilon_high": _range(0, lo_open=True),
    "delta": _range(0, lo_open=True),
    "num_iterations": _range(1),
    "learning_rate": _range(0),
    "adam_beta1": _range(0, 1, hi_open=True),
    "adam_beta2": _range(0, 1, hi_open=True),
    "adam_epsilon": _range(0),
    "weight_decay": _range(0),
    "warmup_steps": _range(0),
    "warmup_ratio": _range(0, 1, hi_open=True),
    "max_grad_norm": _range(0),
    "per_device_train_batch_size": _range(1),
    "gradient_accumulation_steps": _range(1),
    "max_steps": _range(1),
    "seed": _range(0),
    "logging_steps": _range(1),
    "save_steps": _range(0),
    "save_total_limit": _range(1),
    "eval_steps": _range(0),
    "eval_max_samples": _range(1),
    "log_completions_groups": _range(0),
    "dynamic_sampling_max_tries": _range(0),
    "top_entropy_quantile": _range(0, 1, lo_open=True),
    "ref_model_mixup_alpha": _range(0, 1),
    "ref_model_sync_steps": _range(1),
    "steps_per_generation": _range(1),
    "generation_batch_size": _range(1),
    "num_generations_eval": _range(0),
    "vllm_gpu_memory_utilization": _range(0, 1, lo_open=True),
    "vllm_tensor_parallel_size": _range(1),
    "vllm_max_model_length": _range(1),
    "vllm_server_port": _range(1, 65535),
    "vllm_server_timeout": _range(0, lo_open=True),
    "vllm_group_port": _range(1, 65535),
    "vllm_importance_sampling_clip_min": _range(0),
    "vllm_importance_sampling_clip_max": _range(0, lo_open=True),
    "dataset.path": _not_empty,
    "dataset.name": _not_empty,
    "dataset.split": _not_empty,
    "dataset.eval_size": _range(0),
    "dataset.prompt_column": _not_empty,
}


def _tolerate_trl(name: str, value: Any) -> Any:
    """Spellings TRL accepts that map onto ours."""
    if name == "scale_rewards" and isinstance(value, bool):
        return "group" if value else "none"
    if name == "top_k" and value is None:
        return 0
    if name == "report_to":  # TRL: None / "none" / "all" / one name / a list
        if value is None or value == "none":
            return []
        if value == "all":
            installed = _reporting_api("installed_integrations")
            return installed() if installed else []
        if isinstance(value, str):
            return [value]
    return value


# --------------------------------------------------------------------------- coercion


class _Bad(Exception):
    """A value of the wrong type; the message says what was expected."""


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, str):
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "...'"
    if isinstance(v, (int, float)):
        text = repr(v)
        return text if len(text) <= 30 else text[:27] + "..."
    return f"a {type(v).__name__}"


def _as_float(v: Any) -> float:
    # Numeric strings are accepted because YAML 1.1 reads "5e-5" (no dot) as a string.
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _Bad(f"expected a number, got {_describe(v)}")
    try:
        f = float(v.strip()) if isinstance(v, str) else float(v)
    except ValueError:
        raise _Bad(f"expected a number, got {_describe(v)}") from None
    except OverflowError:
        raise _Bad(f"number out of range: {_describe(v)}") from None
    if not math.isfinite(f):
        raise _Bad(f"expected a finite number, got {_describe(v)}")
    return f


def _as_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    try:
        f = _as_float(v)
    except _Bad:
        raise _Bad(f"expected a whole number, got {_describe(v)}") from None
    if not f.is_integer():
        raise _Bad(f"expected a whole number, got {_describe(v)}")
    return int(f)


def _as_scalar(kind: str, v: Any) -> Any:
    if kind == "float":
        return _as_float(v)
    if kind == "int":
        return _as_int(v)
    if kind == "bool":
        if not isinstance(v, bool):
            raise _Bad(f"expected true or false, got {_describe(v)}")
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise _Bad(f"expected a string, got {_describe(v)}")
        return v
    raise AssertionError(kind)


_BAD = object()


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _copy(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy(v) for v in x]
    return x


def _as_list(spec: _Spec, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _Bad(f"expected a list (e.g. [a, b]), got {_describe(value)}")
    out, ok = [], True
    for i, item in enumerate(value):
        try:
            out.append(_as_scalar(spec.item, item))
        except _Bad as e:
            problems.append(f"{path}[{i}]: {e}")
            ok = False
    return out if ok else _BAD


def _as_dict(spec: _Spec, value: Any, path: str, problems: list[str]) -> Any:
    """A mapping with string keys (passed to functions as **kwargs); for
    dict[str, dict] each value must itself be such a mapping."""
    if not isinstance(value, Mapping):
        raise _Bad(f"expected a mapping (key: value), got {_describe(value)}")
    before = len(problems)
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{path}: keys must be strings, got {_describe(key)}")
            continue
        if spec.item == "dict":
            if item is not None and not isinstance(item, Mapping):
                problems.append(f"{path}.{key}: expected a mapping of options, got {_describe(item)}")
                continue
            item = item or {}
            for sub in item:
                if not isinstance(sub, str):
                    problems.append(f"{path}.{key}: keys must be strings, got {_describe(sub)}")
        out[key] = _copy(item)
    return out if len(problems) == before else _BAD


def _check_value(spec: _Spec, path: str, value: Any, problems: list[str]) -> Any:
    """Coerce one field's value and check its choices and range; _BAD on any problem."""
    value = _tolerate_trl(path, value)
    if value is None:
        if spec.optional:
            return None
        if spec.kind == "dict":
            return {}
        problems.append(f"{path}: must be set, got null")
        return _BAD
    try:
        if spec.kind == "list":
            return _as_list(spec, value, path, problems)
        if spec.kind == "dict":
            return _as_dict(spec, value, path, problems)
        value = _as_scalar(spec.kind, value)
    except _Bad as e:
        problems.append(f"{path}: {e}")
        return _BAD
    choices = _CHOICES.get(path)
    if choices is not None and value not in choices:
        problems.append(f"{path}: {value!r} is not one of {' | '.join(choices)}{_did_you_mean(value, choices)}")
        return _BAD
    rule = _RULES.get(path)
    message = rule(value) if rule else None
    if message:
        problems.append(f"{path}: {message}")
        return _BAD
    return value


def _check_block(cls: type, data: Mapping, prefix: str, problems: list[str]) -> tuple[dict, set]:
    """Check one mapping against a dataclass's fields: (values that passed, keys that did not)."""
    schema = _SCHEMA[cls]
    good: dict[str, Any] = {}
    bad: set[Any] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        spec = schema.get(key) if isinstance(key, str) else None
        if spec is None:
            problems.append(f"{path}: unknown key{_did_you_mean(key, schema)}")
        elif spec.kind == "dataset":
            if not isinstance(value, Mapping):
                problems.append(f"{path}: expected a mapping (task:, path: or name: ...), got {_describe(value)}")
                bad.add(key)
                continue
            ds_good, ds_bad = _check_block(DatasetConfig, value, f"{path}.", problems)
            # A given dataset block starts from DatasetConfig's defaults, not RunConfig's default task.
            good[key] = {**dataclasses.asdict(DatasetConfig()), **ds_good}
            bad.update(f"{key}.{k}" for k in ds_bad)
        else:
            v = _check_value(spec, path, value, problems)
            if v is _BAD:
                bad.add(key)
            else:
                good[key] = v
    return good, bad


# --------------------------------------------------------------------------- paths


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _search_dirs(base_dir: str | os.PathLike | None) -> list[Path]:
    """Where a relative path is looked for: the preset's folder, the current folder, the repo."""
    dirs: list[Path] = []
    candidates: list[Any] = [base_dir]
    try:
        candidates.append(Path.cwd())
    except OSError:
        pass
    candidates.append(REPO_ROOT)
    for d in candidates:
        if d is None:
            continue
        try:
            d = Path(os.path.abspath(Path(d).expanduser()))
        except (OSError, ValueError, RuntimeError):
            continue
        if d not in dirs:
            dirs.append(d)
    return dirs


def _resolve(text: str, dirs: list[Path]) -> Path | None:
    """The absolute path of an existing file or folder, or None."""
    try:
        p = Path(text).expanduser()
        if p.is_absolute():
            return Path(os.path.abspath(p)) if _exists(p) else None
        for d in dirs:
            if _exists(d / p):
                return Path(os.path.abspath(d / p))
    except (OSError, ValueError, RuntimeError):
        return None
    return None


def _looks_local(model: str, dirs: list[Path]) -> bool:
    """True when a model reference is clearly a path rather than a hub id like 'Org/Name'."""
    if model.startswith((".", "/", "~", "\\")) or os.path.isabs(model) or "\\" in model:
        return True
    if model.count("/") > 1:
        return True
    if "/" in model:
        head = model.split("/", 1)[0]
        return any(_exists(d / head) for d in dirs)
    return False


def _where(dirs: list[Path]) -> str:
    return ", ".join(str(d) for d in dirs)


# --------------------------------------------------------------------------- cross-field checks


_TASKS_BUILT: set[tuple[str, str]] = set()
"""(task, options) pairs already built once: tasks are deterministic, so once is enough."""


def _task_registry() -> tuple[list[str], Callable[..., Any] | None]:
    """(known task names, get_task) -- lazily, so a broken or absent registry degrades to
    the one task every install has rather than breaking config loading."""
    try:
        from engine.tasks import get_task, task_names

        names = list(task_names())
    except Exception:
        return ["arithmetic"], None
    return names or ["arithmetic"], get_task


def _rewards_api(name: str) -> Callable | None:
    """A function from engine.rewards, imported lazily (it pulls in math-verify); None if absent."""
    try:
        import engine.rewards as rewards
    except Exception:
        return None
    return getattr(rewards, name, None)


def _reporting_api(name: str) -> Callable | None:
    """A function from engine.reporting, imported lazily; None if absent."""
    try:
        import engine.reporting as reporting
    except Exception:
        return None
    return getattr(reporting, name, None)


def _ask(checker: Callable[[str], str | None], spec: str) -> str | None:
    try:
        return checker(spec)
    except Exception as e:  # a checker that breaks must not break loading the preset
        return f"could not check {spec!r}: {type(e).__name__}: {e}"


def _ask_all(checker: Callable[..., list[str]], names: list[str], check_installed: bool) -> list[str]:
    try:
        return list(checker(names, check_installed=check_installed))
    except Exception as e:  # a checker that breaks must not break loading the preset
        return [f"report_to: could not check {names!r}: {type(e).__name__}: {e}"]


def _is_file_spec(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _check_rewards(funcs: list[str], dirs: list[Path], check_paths: bool, problems: list[str]) -> list[str]:
    """Check each reward spec; returns them with plugin file paths made absolute."""
    checker = _rewards_api("check_reward_spec")
    resolved = []
    for i, spec in enumerate(funcs):
        path = f"reward_funcs[{i}]"
        resolved.append(spec)
        if spec.startswith(REWARD_MODEL_PREFIX):  # a sequence-classification reward model
            target = spec[len(REWARD_MODEL_PREFIX):].strip()
            found = _resolve(target, dirs) if target else None
            if found is not None:
                spec = resolved[-1] = f"{REWARD_MODEL_PREFIX}{found}"
            elif check_paths and target and _looks_local(target, dirs):
                problems.append(f"{path}: reward model not found: {target} (looked in {_where(dirs)})")
                continue
            message = _ask(checker, spec) if checker else None
            if message:
                problems.append(f"{path}: {message}")
            continue
        if ":" not in spec:
            if spec in BUILTIN_REWARDS:
                continue
            message = _ask(checker, spec) if checker else (
                f"unknown reward function {spec!r}{_did_you_mean(spec, BUILTIN_REWARDS)}: use a built-in "
                f"({', '.join(BUILTIN_REWARDS)}), module:function or path/file.py:function"
            )
            if message:
                problems.append(f"{path}: {message}")
            continue
        target, _, fn = spec.rpartition(":")
        if not target.strip() or not fn.strip() or not fn.isidentifier():
            problems.append(f"{path}: {spec!r} is not 'module:function' or 'path/file.py:function'")
            continue
        if _is_file_spec(target):
            found = _resolve(target, dirs)
            if found is not None and found.is_file():
                spec = resolved[-1] = f"{found}:{fn}"
            elif check_paths:
                problems.append(f"{path}: file not found: {target} (looked in {_where(dirs)})")
                continue
        if check_paths and checker:
            message = _ask(checker, spec)
            if message:
                problems.append(f"{path}: {message}")
    return resolved


def _weights_mismatch(n_weights: int, n_funcs: int) -> str:
    weights = f"{n_weights} weight{'' if n_weights == 1 else 's'}"
    funcs = f"{n_funcs} function{'' if n_funcs == 1 else 's'}"
    return f"reward_weights: has {weights} but reward_funcs has {funcs}"


def _reward_name(spec: str) -> str:
    if spec.startswith(REWARD_MODEL_PREFIX):  # the model's folder or repo name, as engine.rewards names it
        return spec[len(REWARD_MODEL_PREFIX):].strip().replace("\\", "/").rstrip("/").rpartition("/")[2]
    return spec.rpartition(":")[2] if ":" in spec else spec


def _cross_check(v: dict, bad: set, dirs: list[Path], check_paths: bool, problems: list[str]) -> None:
    """Checks that need several fields or the outside world; only on fields that passed alone."""
    batch, accum, gens = (v.get(k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations"))
    if None not in (batch, accum, gens) and (batch * accum) % gens:
        problems.append(
            f"per_device_train_batch_size: per_device_train_batch_size * gradient_accumulation_steps "
            f"= {batch} * {accum} = {batch * accum} completions per step is not a multiple of "
            f"num_generations ({gens})"
        )

    funcs = v.get("reward_funcs")
    if funcs is not None:
        if not funcs:
            problems.append("reward_funcs: name at least one reward function")
        v["reward_funcs"] = funcs = _check_rewards(funcs, dirs, check_paths, problems)
        weights = v.get("reward_weights")
        if weights is not None and len(weights) != len(funcs):
            problems.append(_weights_mismatch(len(weights), len(funcs)))
        names = [_reward_name(f) for f in funcs]
        kwargs = dict(v.get("reward_kwargs") or {})
        for key in list(kwargs):
            if key not in names:
                problems.append(
                    f"reward_kwargs.{key}: no reward function named {key!r} in reward_funcs"
                    f"{_did_you_mean(key, names)}"
                )
                del kwargs[key]
        check_kwargs = _rewards_api("check_reward_kwargs")
        if kwargs and check_kwargs is not None and "max_completion_length" not in bad:
            try:
                problems.extend(check_kwargs(kwargs, max_completion_length=v.get("max_completion_length"), reward_funcs=funcs))
            except Exception as e:
                problems.append(f"reward_kwargs: could not check options: {type(e).__name__}: {e}")

    spg, gbs = v.get("steps_per_generation"), v.get("generation_batch_size")
    if spg is not None and gbs is not None:
        problems.append("generation_batch_size: set either steps_per_generation or generation_batch_size, not both")
    elif None not in (batch, accum, gens) and (spg is not None or gbs is not None):
        per_round = gbs if gbs is not None else batch * (spg or accum)
        if per_round % (batch * accum):
            problems.append(f"{'generation_batch_size' if gbs is not None else 'steps_per_generation'}: a generation "
                            f"round of {per_round} completions must feed whole optimizer steps of {batch * accum}")
        elif per_round % gens:
            problems.append(f"generation_batch_size: {per_round} completions per round is not a multiple of "
                            f"num_generations ({gens})")
    if v.get("sync_ref_model") and not v.get("beta"):
        problems.append("sync_ref_model: needs beta > 0 (without a KL term there is no reference model)")
    peft = v.get("peft")
    if peft is not None:
        problems.extend(_check_peft(peft))

    if v.get("use_vllm") and check_paths:
        problems.extend(vllm_problems(v.get("vllm_mode") or "colocate"))
    lo, hi = v.get("vllm_importance_sampling_clip_min"), v.get("vllm_importance_sampling_clip_max")
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"vllm_importance_sampling_clip_min: {lo:g} is above vllm_importance_sampling_clip_max ({hi:g})")

    if v.get("log_completions") and v.get("log_completions_groups") == 0:
        problems.append("log_completions: the completion logs hold the groups each step logs; set log_completions_groups > 0")

    report_to = v.get("report_to")
    check_report_to = _reporting_api("check_report_to")
    if report_to and check_report_to is not None:
        problems.extend(_ask_all(check_report_to, report_to, check_paths))

    model = v.get("model_name_or_path")
    if model is not None:
        found = _resolve(model, dirs)
        if found is not None:
            v["model_name_or_path"] = str(found)
        elif check_paths and _looks_local(model, dirs):
            problems.append(f"model_name_or_path: not found: {model} (looked in {_where(dirs)})")

    ds = v.get("dataset")
    if ds is not None:
        _check_dataset(ds, {k.partition(".")[2] for k in bad if str(k).startswith("dataset.")}, dirs, check_paths, problems)


def vllm_unavailable(needs_gpu_for: str = "the colocated engine runs there") -> str | None:
    """Why vLLM cannot run in this process (not installed, no CUDA GPU), with the fix; None if it can."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed: pip install 'grpo-tui[vllm]' (needs a CUDA GPU)"
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
        problems.append("peft: LoRA needs the peft package: pip install 'grpo-tui[lora]'")
    return problems


def _check_dataset(ds: dict, bad: set, dirs: list[Path], check_paths: bool, problems: list[str]) -> None:
    if ds.get("format") == "ranked" and ds.get("path") is None:
        problems.append("dataset.format: ranked groups are read from a local file: set dataset.path")
    sources = [k for k in ("task", "path", "name") if ds.get(k) is not None]
    if not bad & {"task", "path", "name"} and len(sources) != 1:
        got = "none is set" if not sources else f"got {' and '.join(sources)}"
        problems.append(
            f"dataset: set exactly one of dataset.task, dataset.path, dataset.name ({got}; "
            "clear one with --set dataset.<key>=null)"
        )
    task = ds.get("task")
    if task is not None:
        known, get_task = _task_registry()
        if task not in known:
            problems.append(f"dataset.task: unknown task {task!r}; known tasks: {', '.join(known)}{_did_you_mean(task, known)}")
        elif get_task is not None and "task_args" not in bad:
            key = (task, repr(sorted(ds["task_args"].items())))
            try:  # building the task is how its options get checked (tasks are cheap to build)
                if key not in _TASKS_BUILT:
                    get_task(task, **ds["task_args"])
                    _TASKS_BUILT.add(key)
            except (TypeError, ValueError) as e:
                problems.append(f"dataset.task_args: {e}")
            except Exception as e:
                problems.append(f"dataset.task_args: could not build task {task!r}: {type(e).__name__}: {e}")
    path = ds.get("path")
    if path is not None:
        suffix = Path(path).suffix.lower()
        if suffix not in DATASET_SUFFIXES:
            problems.append(f"dataset.path: unsupported file type {suffix or '(none)'!r}; use {', '.join(DATASET_SUFFIXES)}")
        found = _resolve(path, dirs)
        if found is not None and found.is_file():
            ds["path"] = str(found)
        elif check_paths:
            problems.append(f"dataset.path: file not found: {path} (looked in {_where(dirs)})")


# --------------------------------------------------------------------------- building


def _validate(
    d: Any,
    *,
    base_dir: str | os.PathLike | None,
    check_paths: bool,
    problems: list[str],
) -> RunConfig | None:
    if not isinstance(d, Mapping):
        problems.append(f"top level: expected a mapping of settings (key: value), got {_describe(d)}")
        return None
    good, bad = _check_block(RunConfig, d, "", problems)
    values = {**config_to_dict(RunConfig()), **good}
    for key in bad:
        if "." not in key:
            values.pop(key, None)
    # Cross-field checks run on whatever passed alone, so all mistakes show at once.
    _cross_check(values, bad, _search_dirs(base_dir), check_paths, problems)
    if problems:
        return None
    ds = values.pop("dataset")
    return RunConfig(**values, dataset=DatasetConfig(**ds))


def config_from_dict(
    d: Mapping,
    *,
    base_dir: str | os.PathLike | None = None,
    check_paths: bool = True,
    source: str = "config",
) -> RunConfig:
    """Validate a preset-shaped mapping and build the RunConfig; ConfigError lists every problem.

    Relative paths resolve against ``base_dir`` (the preset's folder), the current folder,
    then the repository root; found paths are stored absolute. ``check_paths=False`` skips
    the checks that need the filesystem (model and dataset paths, reward plugins).
    """
    problems: list[str] = []
    cfg = _validate(d, base_dir=base_dir, check_paths=check_paths, problems=problems)
    if cfg is None:
        raise ConfigError(problems, source=source)
    return cfg

# --------------------------------------------------------------------------- live adjustment


def validate_adjustment(cfg: RunConfig, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check changes to a running job; returns them coerced, or raises ConfigError.

    Only ADJUSTABLE_FIELDS may change while a run is going: the rest shape the model,
    data or buffers the run was built with.
    """
    if not isinstance(changes, Mapping):
        raise ConfigError([f"changes: expected a mapping, got {_describe(changes)}"], source="adjustment")
    problems: list[str] = []
    out: dict[str, Any] = {}
    schema = _SCHEMA[RunConfig]
    for key, value in changes.items():
        if key not in ADJUSTABLE_FIELDS:
            what = "not adjustable while running" if key in schema else "unknown key, not adjustable while running"
            hint = _did_you_mean(key, ADJUSTABLE_FIELDS) if key not in schema else ""
            problems.append(f"{key}: {what}{hint} (adjustable: {', '.join(ADJUSTABLE_FIELDS)})")
            continue
        v = _check_value(schema[key], key, value, problems)
        if v is not _BAD:
            out[key] = v
    weights = out.get("reward_weights")
    if weights is not None and len(weights) != len(cfg.reward_funcs):
        problems.append(_weights_mismatch(len(weights), len(cfg.reward_funcs)))
    if problems:
        raise ConfigError(problems, source="adjustment")
    return out
