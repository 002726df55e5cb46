"""Reward functions: the built-ins, loading user plugins, and scoring a batch safely.

Every reward function follows TRL 1.16's contract so TRL reward functions drop in unchanged:

    fn(prompts, completions, completion_ids, trainer_state, log_extra, log_metric, **columns)
        -> list[float | None]

called with keyword arguments only (as TRL does, so ``def f(completions, answer, **kwargs)``
works); :mod:`engine.rewards.contract` says what each is. ``columns`` are the dataset's extra
columns (``answer=[...]``); ``step`` is passed too. Completions are plain strings, or for
conversational data ``[{"role": "assistant", "content": text}]``. ``None`` means "not
applicable": it is ignored by the total, never counted as zero. ``async def`` functions are
awaited, concurrently.

A reward function is user code running inside a long training run, so nothing it does may
stop the run: ``score`` turns an exception, a wrong-length result, a non-number or an
infinity into a NaN column for that batch plus a one-line entry in ``RewardBatch.errors``.
Likewise a plugin that fails to import is reported as one clear line
(``check_reward_spec``), never as a traceback.

A ``reward_funcs`` entry ``model:<hub id or path>`` names a sequence-classification reward
model (as TRL accepts one): :class:`RewardModel` scores each prompt+completion with the
model's first logit, and its metric name is the model's folder or repo name.

The pieces live in their own modules and the public names are importable from here:
``engine.rewards.common`` (completion text, one-line errors, checking results),
``engine.rewards.builtins`` (the built-ins), ``engine.rewards.reward_models`` (``model:`` specs) and
``engine.rewards.plugins`` (loading ``module:function`` and ``path/file.py:function``). This
module resolves specs, checks options, builds the reward functions and scores a batch.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from engine.rewards.builtins import (
    _BUILTINS,
    DEFAULT_FORMAT_PATTERN,
    RewardFn,
    _BuildContext,
    _builtin_options,
    _check_options,
    builtin_reward_names,
)
from engine.rewards.common import (
    RewardSpecError,
    _format_exception,
    _one_line,
    _ResultError,
    _to_column,
    completion_text,
)
from engine.rewards.contract import RewardLog, RewardTrainerState, call_kwargs, run_coroutines
from engine.rewards.isolation import RewardWorker, WorkerFailed, worker_target
from engine.rewards.reward_models import (
    REWARD_MODEL_PREFIX,
    RewardModel,
    _check_reward_model,
    _check_reward_model_options,
    _reward_model_target,
    clear_reward_model_cache,
    is_reward_model_spec,
    reward_model_name,
)
from engine.rewards.plugins import (
    _resolve_plugin,
    build_factory,
    check_plugin,
    is_plugin_spec,
    plugin_source,
    reload_plugin,
)

__all__ = [
    "DEFAULT_FORMAT_PATTERN",
    "REWARD_MODEL_PREFIX",
    "RewardBatch",
    "RewardFn",
    "RewardFunction",
    "RewardModel",
    "RewardSpecError",
    "build_reward_funcs",
    "builtin_reward_names",
    "check_reward_kwargs",
    "check_reward_spec",
    "clear_reward_model_cache",
    "completion_text",
    "describe",
    "is_reward_model_spec",
    "reload_reward_funcs",
    "reward_model_name",
    "score",
]


@dataclass
class RewardFunction:
    name: str  # "accuracy", "format", or the plugin function's __name__ (made unique)
    fn: Callable
    spec: str = ""  # what the config said: a built-in name, "module:function", a factory's spec
    kwargs: dict | None = None  # a factory's arguments ({func: spec, kwargs: {...}}); None otherwise
    worker: RewardWorker | None = None  # the process it runs in (engine.rewards.isolation); None: in-process


@dataclass
class RewardBatch:
    per_func: torch.Tensor  # [N, F] float32, NaN where a function returned None or failed
    total: torch.Tensor  # [N] float32 = nansum(per_func * weights, dim=1), as TRL
    errors: list[tuple[str, str]]  # (function name, "ValueError: message") per failed function
    all_none_rows: int = 0  # rows where every function gave None/failed (their total is 0.0)
    extra: dict[str, list] = field(default_factory=dict)  # log_extra columns, one value per completion
    metrics: dict[str, list[float]] = field(default_factory=dict)  # log_metric values by name
    output: list[tuple[str, str]] = field(default_factory=list)  # (function name, what it printed)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (function name, where it runs now and why)


# --------------------------------------------------------------------------- checks


def check_reward_kwargs(
    reward_kwargs: dict[str, dict] | None,
    *,
    max_completion_length: int | None = None,
    reward_funcs: Sequence[Any] | None = None,
) -> list[str]:
    """Every problem with reward options, one "reward_kwargs.name...: message" each.

    Options are for built-ins and, when ``reward_funcs`` is given, for the reward models it
    names (``batch_size``, ``max_length``, ``dtype`` under the model's name).
    For config validation, which reports all problems at once; cheap (imports nothing).
    """
    problems: list[str] = []
    ctx = _BuildContext(task=None, max_completion_length=max_completion_length)
    model_names = {reward_model_name(s) for s in reward_funcs or () if is_reward_model_spec(s)}
    for name, options in (reward_kwargs or {}).items():
        try:
            if name in model_names:
                _check_reward_model_options(name, options)
                continue
            if name not in _BUILTINS:
                raise ValueError(
                    f"reward_kwargs.{name}: options are only for built-in rewards "
                    f"({', '.join(builtin_reward_names())})"
                )
            _check_options(name, options)
            if _builtin_options(name):  # factories with options check their values
                _BUILTINS[name](ctx, **options)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _unknown_name_message(spec: str) -> str:
    hint = difflib.get_close_matches(spec, builtin_reward_names(), n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return (
        f"unknown reward function '{spec}'{did_you_mean}: use a built-in "
        f"({', '.join(builtin_reward_names())}), module:function, pkg.module.function or path/file.py:function"
    )


def factory_spec(spec: Any) -> tuple[str, dict] | None:
    """``(func, kwargs)`` of a factory entry ``{func: "file.py:make_reward", kwargs: {...}}``;
    None for anything else. Raises :class:`RewardSpecError` for a malformed entry."""
    if not isinstance(spec, Mapping):
        return None
    unknown = sorted(str(k) for k in spec if k not in ("func", "kwargs"))
    func, kwargs = spec.get("func"), spec.get("kwargs") or {}
    if unknown:
        raise RewardSpecError(f"reward factory entry: unknown key {', '.join(unknown)} (expected func: and kwargs:)")
    if not isinstance(func, str) or not is_plugin_spec(func.strip()):
        raise RewardSpecError(f"reward factory entry: func must be module:function, pkg.module.function or "
                              f"path/file.py:function, got {func!r}")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise RewardSpecError(f"reward factory '{func}': kwargs must be a mapping of argument names to values")
    return func.strip(), dict(kwargs)


def check_reward_spec(spec: str | Mapping) -> str | None:
    """None when ``spec`` is a built-in name, a reward model, a plugin whose source defines
    the function, or a factory entry whose source defines the factory; else a one-line error.
    A plugin's code is not run here (validating a preset someone sent you must not run it,
    nor call the factories it names): its source is parsed, and it runs when a run starts."""
    try:
        factory = factory_spec(spec)
        if factory is not None:
            check_plugin(factory[0], factory=True)
        elif is_plugin_spec(spec) and spec.strip() not in _BUILTINS:
            check_plugin(spec.strip())
        else:
            _resolve_spec(spec)
    except RewardSpecError as exc:
        return str(exc)
    return None


def _resolve_spec(spec: str, fresh: bool = False) -> Callable | None:
    """The plugin callable for ``spec``, or None for a built-in name or a reward model;
    ``fresh``: a plugin's file or module executed again (see :func:`reload_plugin`)."""
    if not isinstance(spec, str) or not spec.strip():
        raise RewardSpecError(f"reward function spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in _BUILTINS:
        return None
    if is_reward_model_spec(spec):
        _check_reward_model(spec)
        return None
    if not is_plugin_spec(spec):
        raise RewardSpecError(_unknown_name_message(spec), spec)
    return _resolve_plugin(spec, fresh)


# --------------------------------------------------------------------------- build & score


def build_reward_funcs(
    specs: Sequence[str | Callable],
    *,
    task: Any = None,
    reward_kwargs: dict[str, dict] | None = None,
    max_completion_length: int | None = None,
    device: str | torch.device = "cpu",
    reload: bool = False,
) -> list[RewardFunction]:
    """Resolve ``reward_funcs`` into callables, once, before training starts.

    ``specs`` are built-in names, "module:function", "pkg.module.function",
    "path/file.py:function", "model:<hub id or path>" (a reward model, loaded here onto
    ``device``), factory entries ``{"func": spec, "kwargs": {...}}`` (the factory is called
    here, with those arguments, and makes the function), or callables.
    ``task``: a built-in task object (has ``verify``); ``accuracy`` then uses its verifier.
    ``reward_kwargs``: options by function name, e.g. {"format": {"pattern": "..."}} or
    {"my-rm": {"batch_size": 8}}.
    ``reload``: plugins are executed from their files again rather than taken from this
    process's module cache (a run resumed in the process that ran it, after a fix).
    Raises RewardSpecError for a spec that does not resolve, ValueError for bad options.
    """
    if not specs:
        raise ValueError("reward_funcs: at least one reward function is needed")
    reward_kwargs = dict(reward_kwargs or {})
    problems = check_reward_kwargs(
        reward_kwargs, max_completion_length=max_completion_length, reward_funcs=specs
    )
    if problems:
        raise ValueError("; ".join(problems))
    ctx = _BuildContext(task=task, max_completion_length=max_completion_length)

    funcs: list[RewardFunction] = []
    taken: set[str] = set()
    reloaded: set[str] = set()
    for spec in specs:
        factory = factory_spec(spec)
        factory_kwargs = None
        if factory is not None:
            spec_text, factory_kwargs = factory
            fn = reload_plugin(spec_text, reloaded, kwargs=factory_kwargs) if reload \
                else build_factory(spec_text, factory_kwargs)
            label = callable_name(fn)
        elif callable(spec):
            fn, label = spec, callable_name(spec)
            spec_text = label
        else:
            spec_text = spec.strip() if isinstance(spec, str) else spec
            if reload and is_plugin_spec(spec_text):
                reload_plugin(spec_text, reloaded)
            plugin = _resolve_spec(spec_text)
            if is_reward_model_spec(spec_text):
                label = reward_model_name(spec_text)
                options = reward_kwargs.get(label, {})
                fn = RewardModel(_reward_model_target(spec_text), device=device, **options).load()
            elif plugin is None:
                fn = _BUILTINS[spec_text](ctx, **reward_kwargs.get(spec_text, {}))
                label = spec_text
            else:
                fn = plugin
                label = callable_name(plugin)
        name, k = label, 2
        while name in taken:  # metric names (rewards/<name>/mean) must not collide
            name, k = f"{label}_{k}", k + 1
        taken.add(name)
        funcs.append(RewardFunction(name=name, fn=fn, spec=spec_text, kwargs=factory_kwargs))
    return funcs


def callable_name(fn: Callable) -> str:
    """A reward function's name as TRL gives it: ``__name__``, through ``functools.partial``,
    else the class name of a callable object."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def reload_reward_funcs(funcs: Sequence[RewardFunction]) -> tuple[list[RewardFunction], list[str]]:
    """The same reward functions with every plugin (``module:function``,
    ``path/file.py:function``) executed afresh from its file, and the files reloaded.

    Built-ins, reward models and callables handed in are kept as they are. All or nothing:
    a plugin that no longer loads raises :class:`RewardSpecError` and nothing is replaced,
    so a half-fixed file never leaves a run with a mix of old and new code."""
    reloaded: set[str] = set()
    new: list[RewardFunction] = []
    sources: list[str] = []
    for func in funcs:
        if not is_plugin_spec(func.spec):
            new.append(func)
            continue
        new.append(RewardFunction(name=func.name, fn=reload_plugin(func.spec, reloaded, kwargs=func.kwargs),
                                  spec=func.spec, kwargs=func.kwargs))
        source = plugin_source(func.spec)
        if source not in sources:
            sources.append(source)
    for old, func in zip(funcs, new):  # a fresh worker process loads the new code
        if func is not old and old.worker is not None:
            old.worker.close()
            func.worker = RewardWorker(func.name, worker_target(func)[0], old.worker.timeout)
            func.worker.start()
    return new, sources


def score(
    funcs: Sequence[RewardFunction],
    weights: Sequence[float] | torch.Tensor | None,
    prompts: list,
    completions: list,
    columns: dict[str, list],
    completion_ids: list[list[int]] | None,
    step: int,
    before_each: Callable[[int, str], None] | None = None,
    trainer_state: RewardTrainerState | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> RewardBatch:
    """Run every reward function on one batch; failures become NaN columns, never exceptions.

    Each function is called with TRL's keyword arguments (:mod:`engine.rewards.contract`):
    ``prompts``, ``completions``, ``completion_ids``, ``trainer_state`` (``trainer_state``, or
    one at ``step`` when none is given), ``log_extra``, ``log_metric`` and the dataset's extra
    ``columns``, one value per completion (already repeated G times per prompt). Functions that
    return awaitables (``async def``) are awaited together once the others have run.
    ``total = nansum(per_func * weights, dim=1)`` as in TRL, so None/NaN is ignored and a row
    where every function gave None scores 0.0.
    ``before_each(i, name)`` hears of each function before it runs (progress for a viewer);
    ``cancelled()`` true (a stop was asked for) ends the wait for worker processes.
    """
    n, f = len(completions), len(funcs)
    if weights is None:
        w = torch.ones(f, dtype=torch.float32)
    else:
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        if w.numel() != f:
            raise ValueError(f"reward_weights has {w.numel()} values for {f} reward functions")

    if trainer_state is None:
        trainer_state = RewardTrainerState(global_step=max(step - 1, 0))
    kwargs = call_kwargs(prompts, completions, completion_ids, columns, trainer_state, step)
    nan_column = [math.nan] * n
    cols: list[list[float]] = [nan_column] * f
    errors: list[tuple[str, str]] = []
    output: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    logs = [RewardLog() for _ in funcs]
    pending: list[tuple[int, Any]] = []  # (function index, awaitable)

    def take(i: int, values: Any) -> None:
        try:
            cols[i] = _to_column(values, n)
        except _ResultError as exc:
            errors.append((funcs[i].name, str(exc)))

    # Worker processes first, so they compute while the in-process functions run.
    in_process = [i for i, func in enumerate(funcs) if func.worker is None]
    submitted: list[int] = []
    isolated = [i for i, func in enumerate(funcs) if func.worker is not None]
    if isolated:
        try:
            # an episode's environments live in this process (and rarely pickle): functions in workers go without
            sent = {k: v for k, v in kwargs.items() if k != "environments"}
            payload = pickle.dumps(dict(sent, trainer_state=dataclasses.replace(trainer_state, log_history=[])))
        except Exception as exc:  # noqa: BLE001 - a dataset column holding objects that do not pickle
            payload = None
            for i in isolated:
                errors.append((funcs[i].name, f"the batch could not be sent to its worker process: "
                                              f"{_format_exception(exc, where=False)}"))
        for i in isolated if payload is not None else ():
            try:
                funcs[i].worker.submit(payload, trainer_state.log_history)
                submitted.append(i)
            except WorkerFailed as exc:
                if not _fall_back(funcs[i], exc, notes, output, in_process, i):
                    errors.append((funcs[i].name, str(exc)))

    def run_in_process(i: int) -> None:
        func = funcs[i]
        if before_each is not None:
            before_each(i, func.name)
        try:
            values = func.fn(**kwargs, log_extra=logs[i].log_extra, log_metric=logs[i].log_metric)
        except (Exception, SystemExit) as exc:
            errors.append((func.name, _format_exception(exc)))
            return
        if inspect.isawaitable(values):
            pending.append((i, values))
        else:
            take(i, values)

    for i in list(in_process):
        run_in_process(i)
    for i in submitted:
        func = funcs[i]
        if before_each is not None:
            before_each(i, func.name)
        try:
            values, extra, metrics = func.worker.collect(cancelled)
            logs[i].extra.update(extra)
            logs[i].metrics.update(metrics)
            take(i, values)
        except WorkerFailed as exc:
            if _fall_back(func, exc, notes, output, in_process, i):
                run_in_process(i)
            else:
                errors.append((func.name, str(exc)))
        printed = func.worker.output() if func.worker is not None else ""
        if printed:
            output.append((func.name, printed))
    if pending:
        for (i, _), result in zip(pending, run_coroutines([a for _, a in pending])):
            if isinstance(result, BaseException):
                errors.append((funcs[i].name, _format_exception(result)))
            else:
                take(i, result)

    if f:
        per_func = torch.tensor(cols, dtype=torch.float32).T.contiguous()
    else:
        per_func = torch.empty((n, 0), dtype=torch.float32)
    total = (per_func * w.unsqueeze(0)).nansum(dim=1)
    all_none_rows = int(torch.isnan(per_func).all(dim=1).sum()) if f else n
    log = RewardLog()
    for one in logs:
        log.merge(one)
    return RewardBatch(per_func=per_func, total=total, errors=errors, all_none_rows=all_none_rows,
                       extra=log.extra, metrics=log.metrics, output=output, notes=notes)


def _fall_back(func: RewardFunction, exc: WorkerFailed, notes: list, output: list, in_process: list[int],
               i: int) -> bool:
    """A worker that cannot load its function (an import that works only in this process):
    the function runs in-process from now on, said once. False for any other failure."""
    if not exc.load_failed:
        return False
    printed = func.worker.output()
    if printed:
        output.append((func.name, printed))
    func.worker.close()
    func.worker = None
    notes.append((func.name, f"could not be loaded in a worker process ({exc}): it runs in-process from now on"))
    in_process.append(i)
    return True


def describe(fn: RewardFunction | Callable | str) -> str:
    """One line about a reward function (its docstring's first line), for the test bench."""
    if isinstance(fn, str):
        if fn in _BUILTINS:
            return _one_line(_BUILTINS[fn].__doc__ or "")
        return fn
    target = fn.fn if isinstance(fn, RewardFunction) else fn
    doc = inspect.getdoc(target) or ""
    line = _one_line(doc)
    if line:
        return line
    return getattr(target, "__name__", type(target).__name__)
