"""Run config fields: each field's type, choices and range -- read off the dataclass
annotations in :mod:`engine.config.schema`, the one place they are written -- and turning
YAML values into them (numbers written as strings, TRL's spellings, lists and mappings item
by item) with every problem collected, each prefixed by its field path, rather than stopping
at the first.
The checks that need several fields or the outside world are :mod:`engine.config.checks`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterable, Literal, Mapping, Union, get_args, get_origin, get_type_hints

from engine.config.constraints import NotEmpty, Range
from engine.config.schema import DatasetConfig, RunConfig
from engine.config.trl_names import SCRIPT_NAMES, TRL_NAMES


# --------------------------------------------------------------------------- field schema


@dataclass(frozen=True)
class _Spec:
    """One field's rules, read off its annotation in :mod:`engine.config.schema`."""

    kind: str  # str | int | float | bool | list | dict | dataset
    optional: bool
    item: str | None = None  # element kind of a list, value kind of a dict
    choices: tuple[str, ...] | None = None  # a Literal's values
    checks: tuple[Any, ...] = ()  # Range / NotEmpty markers from Annotated[...]


def _spec_of(tp: Any) -> _Spec:
    """``int | None``, ``Annotated[float, Range(gt=0)]``, ``LossType`` (a Literal),
    ``list[str]``, ``dict[str, dict]``, ``DatasetConfig`` ... as a :class:`_Spec`."""
    optional = False
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        optional = type(None) in args
        tp = next(a for a in args if a is not type(None))
    checks: tuple[Any, ...] = ()
    if get_origin(tp) is Annotated:
        tp, *metadata = get_args(tp)
        checks = tuple(m for m in metadata if isinstance(m, (Range, NotEmpty)))
    if tp is DatasetConfig:
        return _Spec("dataset", optional)
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        return _Spec(type(choices[0]).__name__, optional, choices=choices, checks=checks)
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if origin is list:  # list[str | dict]: items of either kind ("str_or_dict")
        item = args[0]
        union = get_origin(item) in (Union, types.UnionType)
        return _Spec("list", optional, "_or_".join(a.__name__ for a in get_args(item)) if union else item.__name__)
    if origin is dict:
        return _Spec("dict", optional, args[1].__name__ if args else None)
    return _Spec(tp.__name__, optional, checks=checks)


_SCHEMA: dict[type, dict[str, _Spec]] = {
    cls: {name: _spec_of(tp) for name, tp in get_type_hints(cls, include_extras=True).items()}
    for cls in (DatasetConfig, RunConfig)
}
"""Each config class's fields by name, in declaration order: the tables validation runs on."""


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
    if name in ("top_k", "eval_steps", "num_generations_eval") and value is None:
        return 0  # TRL's None: off / follow another setting
    if name == "report_to":  # TRL: None / "none" / "all" / one name / a list
        if value is None or value == "none" or value == ["none"]:
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
        if spec.item == "str_or_dict" and isinstance(item, Mapping):
            out.append(_copy(dict(item)))  # its keys are checked with the other fields (engine.config.checks)
            continue
        try:
            out.append(_as_scalar("str" if spec.item == "str_or_dict" else spec.item, item))
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
    choices = spec.choices
    if choices is not None and value not in choices:
        problems.append(f"{path}: {value!r} is not one of {' | '.join(choices)}{_did_you_mean(value, choices)}")
        return _BAD
    for check in spec.checks:
        message = check.problem(value)
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
            known = [*schema, *TRL_NAMES, *SCRIPT_NAMES] if cls is RunConfig else schema
            problems.append(f"{path}: unknown key{_did_you_mean(key, known)}")
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
