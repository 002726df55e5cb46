"""Run config fields: each field's type, choices and range, and turning YAML values into
them (numbers written as strings, TRL's spellings, lists and mappings item by item) with
every problem collected, each prefixed by its field path, rather than stopping at the first.
The checks that need several fields or the outside world are :mod:`engine.config.checks`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Union, get_args, get_origin, get_type_hints

from engine.config.schema import DatasetConfig, RunConfig


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


def _reporting_api(name: str) -> Callable | None:
    """A function from engine.run.reporting, imported lazily; None if absent."""
    try:
        import engine.run.reporting as reporting
    except Exception:
        return None
    return getattr(reporting, name, None)


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
