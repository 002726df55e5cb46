"""``GRPOConfig``: TRL's configuration class, as a dataclass that ``HfArgumentParser`` and
``TrlParser`` parse, carrying every field of TRL 1.16's ``GRPOConfig`` and of transformers'
``TrainingArguments`` beside this engine's own settings.

Its fields are built from two tables rather than written out twice: our
:class:`~engine.config.schema.RunConfig` fields (our defaults and docs; ``model_name_or_path``
is left to ``GRPOTrainer(model=...)`` and TRL's ``ModelConfig``) and
:data:`engine.config.trl_names.TRL_NAMES` (TRL's defaults; the help says how each is handled).
A field set to other than its default is translated exactly as a preset key is
(:func:`engine.config.trl_mapping.translate`), so Python and YAML take the same names, and the
result is validated at construction: :meth:`GRPOConfig.to_run_config` gives the RunConfig.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import inspect
import typing
import warnings
from typing import Any, Union, get_args, get_origin, get_type_hints

from engine.config.checks import config_from_dict
from engine.config.docs import doc_for
from engine.config.fields import _did_you_mean
from engine.config.schema import ConfigError, DatasetConfig, RunConfig
from engine.config.trl_mapping import TrlNamesIgnored, translate
from engine.config.trl_names import TRL_NAMES

_LEFT_TO_MODEL_CONFIG = ("model_name_or_path",)
"""Ours, but TRL's ModelConfig has it: a parser given both would see the name twice."""

_DICT = Union[dict, str, None]
"""How a mapping field is typed for the parser: a JSON string on a command line, as TRL does."""


class GRPOConfigError(ConfigError, TypeError):
    """Unknown or unusable ``GRPOConfig`` / ``GRPOTrainer`` arguments, every one listed.

    A TypeError (as Python raises for an unexpected keyword) and a ConfigError (``problems``
    holds one line per argument)."""


def _parser_type(tp: Any) -> Any:
    """Our annotation as HfArgumentParser can read it: mappings (and the dataset block) become
    ``dict | str | None``; everything else it reads as is (Literal, X | None, list[X])."""
    args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, typing.Union) or \
        type(tp).__name__ == "UnionType" else [tp]
    if any(a is dict or get_origin(a) is dict or a is DatasetConfig for a in args):
        return _DICT
    if get_origin(tp) is list and len(get_args(tp)) == 1 and str in get_args(get_args(tp)[0]):
        return list[str]  # reward_funcs: names on a command line (a factory's mapping is for Python and YAML)
    return tp


def _trl_type(default: Any, given: Any) -> Any:
    if given is dict:
        return _DICT
    tp = given or (type(default) if default is not None else str)
    return tp if default is not None else Union[tp, None]


def _our_fields() -> list[tuple]:
    hints = get_type_hints(RunConfig)
    out = []
    for f in dataclasses.fields(RunConfig):
        if f.name in _LEFT_TO_MODEL_CONFIG:
            continue
        doc = doc_for(f.name)
        meta = {"help": doc.doc.replace("%", "%%") if doc else f.name}
        if f.name == "dataset":
            default = dataclasses.field(default=None, metadata={
                "help": "how prompts render (system_prompt, chat_template, shuffle, prompt_column): a mapping "
                        "or DatasetConfig; the prompts come from GRPOTrainer's train_dataset"})
        elif f.default_factory is not dataclasses.MISSING:
            default = dataclasses.field(default_factory=f.default_factory, metadata=meta)
        else:
            default = dataclasses.field(default=f.default, metadata=meta)
        out.append((f.name, _parser_type(hints[f.name]), default))
    return out


def _trl_fields(ours: set[str]) -> list[tuple]:
    out = []
    for name, h in TRL_NAMES.items():
        if name in ours:
            continue  # became ours: ours wins
        meta = {"help": f"TRL's {name} ({h.kind.replace('_', ' ')}): {h.note}".replace("%", "%%")}
        default = h.default
        if isinstance(default, (list, dict)):
            field = dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
        else:
            field = dataclasses.field(default=default, metadata=meta)
        out.append((name, _trl_type(default, h.type), field))
    return out


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls)}


def _parse_json(name: str, value: Any, problems: list[str]) -> Any:
    """A mapping given as JSON text (how TRL's parsers pass dict fields from a command line)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            problems.append(f"{name}: not valid JSON ({err.msg})")
    return value


def _post_init(self) -> None:
    """Check the settings where the config is made, every problem at once."""
    _to_run_config(self)


def _to_run_config(self) -> RunConfig:
    """The validated run configuration, from the fields as they are now (a script may set some
    after construction, as TRL's examples do): those set to other than their defaults are
    translated as a preset's keys are."""
    problems: list[str] = []
    defaults = _defaults(type(self))
    given: dict[str, Any] = {}
    for f in dataclasses.fields(self):
        value = getattr(self, f.name)
        if f.name in _DICT_FIELDS:
            value = _parse_json(f.name, value, problems)
            setattr(self, f.name, value)
        if value != defaults[f.name] or (value is not None and type(value) is not type(defaults[f.name])):
            given[f.name] = value
    with warnings.catch_warnings():
        if given == getattr(self, "_checked", None):  # said at construction: once is enough
            warnings.simplefilter("ignore", TrlNamesIgnored)
        cfg = _run_config(given, problems)
    object.__setattr__(self, "_checked", copy.deepcopy(given))
    return cfg


def _run_config(given: dict[str, Any], problems: list[str]) -> RunConfig:
    dataset = given.get("dataset")
    if isinstance(dataset, DatasetConfig):
        given["dataset"] = dataclasses.asdict(dataset)
    elif isinstance(dataset, dict):
        given["dataset"] = dict(dataset)  # system_prompt / shuffle_dataset land in it: not in the caller's
    data = translate(given, problems, {f.name for f in dataclasses.fields(RunConfig)}, source="GRPOConfig")
    if "dataset" in data:
        data["dataset"] = _dataset_block(data["dataset"])
    # The reward functions arrive with the trainer: until then weights and options cannot be
    # matched to names, so here weights are checked as numbers and options as mappings only;
    # GRPOTrainer matches both to the functions.
    weights = data.get("reward_weights")
    reward_kwargs = data.pop("reward_kwargs", None)
    if weights is not None and "reward_funcs" not in data and isinstance(weights, (list, tuple)):
        data["reward_funcs"] = ["accuracy"] * max(len(weights), 1)  # stand-ins of the right count
    cfg = None
    try:
        # no paths: the model and the prompts come with GRPOTrainer, which checks them
        cfg = config_from_dict(data, source="GRPOConfig", check_paths=False)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if reward_kwargs is not None and not _is_options(reward_kwargs):
        problems.append(f"reward_kwargs: expected a mapping of reward name -> options mapping, got {reward_kwargs!r}")
    if problems:
        raise ConfigError(problems, source="GRPOConfig")
    assert cfg is not None
    if "reward_funcs" not in given:
        cfg.reward_funcs = list(RunConfig().reward_funcs)
    cfg.reward_weights = None if weights is None else [float(w) for w in weights]
    cfg.reward_kwargs = copy.deepcopy(dict(reward_kwargs or {}))
    return cfg


def _dataset_block(dataset: Any) -> Any:
    """The ``dataset:`` block to validate. Rendering options alone are fine here: the prompts
    come from ``train_dataset``, so the block keeps the default source to stay valid."""
    if isinstance(dataset, dict) and not any(dataset.get(k) for k in ("task", "path", "name")):
        return {**dataclasses.asdict(RunConfig().dataset), **dataset}
    return dataset  # validation says what is wrong with anything else


def _is_options(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())


_ours = _our_fields()
GRPOConfig = dataclasses.make_dataclass(
    "GRPOConfig",
    [*_ours, *_trl_fields({name for name, _, _ in _ours} | set(_LEFT_TO_MODEL_CONFIG))],
    namespace={"__post_init__": _post_init, "to_run_config": _to_run_config},

)
GRPOConfig.__module__ = __name__
_DICT_FIELDS = frozenset(f.name for f in dataclasses.fields(GRPOConfig) if f.type is _DICT)
"""Read once: HfArgumentParser rewrites a field's type in place (``dict | str | None`` to ``str``)."""
GRPOConfig.__doc__ = """TRL's ``GRPOConfig``: every field of TRL 1.16's GRPOConfig and transformers'
TrainingArguments, and this engine's own settings (``dataset``, ``dynamic_sampling``, ``peft``…).

Each TRL field is honoured under its own name (the RunConfig fields, at TRL's defaults: ``max_steps=-1``
trains ``num_train_epochs`` passes over train_dataset), mapped onto ours (``shuffle_dataset`` → ``dataset.shuffle``,
``model_init_kwargs={"dtype": ...}`` → ``torch_dtype``, ``save_strategy="no"`` → ``save_steps=0``…),
accepted with no effect on the results (a warning names each with the reason), or refused
unless at TRL's default, with what to do instead; ``grpo-tui fields --trl`` lists them all.
Problems raise :class:`GRPOConfigError` (unknown names, a TypeError) or ``ConfigError`` (values),
every one at once. ``HfArgumentParser((GRPOConfig,))`` parses a TRL command line into it.
"""
_dataclass_init = GRPOConfig.__init__


def _init(self, *args: Any, **kwargs: Any) -> None:
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = [k for k in kwargs if k not in known]
    if unknown or args:
        problems = [f"{k}: unknown argument{_did_you_mean(k, known)}" for k in unknown]
        if args:
            problems.append("GRPOConfig takes keyword arguments only")
        try:
            _dataclass_init(self, **{k: v for k, v in kwargs.items() if k in known})
        except ConfigError as exc:
            problems.extend(exc.problems)
        raise GRPOConfigError(problems, source="GRPOConfig")
    _dataclass_init(self, **kwargs)


_init.__signature__ = inspect.signature(_dataclass_init)  # what help() and IDEs show
GRPOConfig.__init__ = _init

__all__ = ["GRPOConfig", "GRPOConfigError"]
