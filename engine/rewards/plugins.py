"""User reward plugins: ``module:function``, ``pkg.module.function`` and
``path/file.py:function`` specs, and factories (``{func: spec, kwargs: {...}}``).

Splitting a spec, importing the module or loading the file (once per file version, with
its folder on ``sys.path`` while it loads), finding the function and checking that it takes
``**kwargs``. Every failure is a :class:`RewardSpecError` with a one-line message, never a
traceback.

A module, once imported, is cached (``sys.modules``, and :data:`_FILE_MODULES` for files),
so a running process keeps calling the code it first loaded. :func:`reload_plugin` runs a
plugin's file or module afresh: how a fixed plugin takes effect in a run that paused on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from engine.rewards.common import KWARGS_CONTRACT, RewardSpecError, _format_exception

# Loaded plugin files, keyed by (path, mtime, size): validation and the build then share
# one execution of the file, and an edited file is loaded afresh.
_FILE_MODULES: dict[tuple[str, int, int], ModuleType] = {}


def is_dotted_spec(spec: object) -> bool:
    """``pkg.module.function`` (TRL and open-r1 name reward functions so): dotted identifiers,
    at least a module and a function, and not a file name."""
    if not isinstance(spec, str) or ":" in spec or spec.strip().endswith(".py"):
        return False
    parts = spec.strip().split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)


def _split_spec(spec: str) -> tuple[str, str]:
    if is_dotted_spec(spec):
        target, _, attr = spec.strip().rpartition(".")
        return target, attr
    target, sep, attr = spec.rpartition(":")
    if not sep or not target.strip() or not attr.strip():
        raise RewardSpecError(
            f"reward plugin '{spec}': expected module:function, pkg.module.function or path/file.py:function", spec
        )
    return target.strip(), attr.strip()


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _load_file(path: Path, spec: str, fresh: bool = False) -> ModuleType:
    """The module of ``path``, executed once per file version; ``fresh``: executed again even
    when the file looks unchanged (an edit within the file system's time resolution that
    kept the size)."""
    if not path.is_file():
        raise RewardSpecError(f"reward plugin '{spec}': file not found: {path}", spec)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _FILE_MODULES and not fresh:
        return _FILE_MODULES[key]
    module_name = f"_grpo_reward_plugin_{abs(hash(key[0])):x}_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise RewardSpecError(f"reward plugin '{spec}': cannot load {path.name}", spec)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    # Modules next to the plugin file should import while it loads; the folder is
    # appended (never shadows installed packages) and only for the duration of the load.
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        where = os.path.basename(exc.filename or path.name)
        raise RewardSpecError(
            f"reward plugin '{spec}': SyntaxError in {where} line {exc.lineno}: {exc.msg}", spec
        ) from None
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise RewardSpecError(
            f"reward plugin '{spec}': {path.name} could not be loaded: {_format_exception(exc)}",
            spec,
        ) from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    for old in [k for k in _FILE_MODULES if k[0] == key[0]]:  # earlier versions of this file
        del _FILE_MODULES[old]
    _FILE_MODULES[key] = module
    return module


def _import_module(target: str, spec: str, fresh: bool = False) -> ModuleType:
    try:
        if fresh and target in sys.modules:
            return importlib.reload(sys.modules[target])
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        # "my_rewards:acc" with my_rewards.py in the working directory: console scripts do
        # not put the cwd on sys.path, so look for the file there before giving up.
        local = Path.cwd() / (target.replace(".", os.sep) + ".py")
        if exc.name == target.split(".")[0] and local.is_file():
            return _load_file(local, spec, fresh)
        message = _format_exception(exc, where=False)
    except SyntaxError as exc:
        where = os.path.basename(exc.filename or target)
        raise RewardSpecError(
            f"reward plugin '{spec}': SyntaxError in {where} line {exc.lineno}: {exc.msg}", spec
        ) from None
    except (Exception, SystemExit) as exc:
        message = _format_exception(exc)
    raise RewardSpecError(
        f"reward plugin '{spec}': module '{target}' could not be imported: {message}", spec
    )


def _defined_functions(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", None) == module.__name__
    ]


def _plugin_path(target: str) -> Path:
    path = Path(target).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _resolve_plugin(spec: str, fresh: bool = False, factory: bool = False) -> Callable:
    """The callable ``spec`` names; ``fresh``: its file or module executed again first;
    ``factory``: it makes the reward function, so its own signature is not checked."""
    target, attr = _split_spec(spec)
    if _is_file_target(target):
        path = _plugin_path(target)
        module = _load_file(path, spec, fresh)
        where = path.name
    else:
        module = _import_module(target, spec, fresh)
        where = f"module '{target}'"
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = ", ".join(_defined_functions(module)[:12]) or "no functions"
            raise RewardSpecError(
                f"reward plugin '{spec}': '{attr}' is not defined in {where} (found: {found})", spec
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise RewardSpecError(
            f"reward plugin '{spec}': '{attr}' in {where} is not callable "
            f"(it is a {type(obj).__name__})",
            spec,
        )
    if not factory:
        _check_signature(obj, attr, spec)
    return obj


def _check_signature(fn: Callable, attr: str, spec: str) -> None:
    """Reject functions that cannot take the keyword arguments every call passes."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature: let the call decide
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise RewardSpecError(f"reward plugin '{spec}': '{attr}' takes no **kwargs; {KWARGS_CONTRACT}", spec)


def build_factory(spec: str, kwargs: dict, fresh: bool = False) -> Callable:
    """The reward function ``spec``'s factory makes from ``kwargs``
    (``get_cosine_scaled_reward(max_len=...)``). Raises :class:`RewardSpecError` (one line)
    when the factory does not load, fails, or makes something that is not a reward function."""
    factory = _resolve_plugin(spec, fresh=fresh, factory=True)
    attr = _split_spec(spec)[1]
    try:
        fn = factory(**kwargs)
    except (Exception, SystemExit) as exc:
        raise RewardSpecError(f"reward factory '{spec}' with kwargs {kwargs!r} failed: {_format_exception(exc)}",
                              spec) from None
    if not callable(fn):
        raise RewardSpecError(f"reward factory '{spec}' made a {type(fn).__name__}, not a reward function", spec)
    _check_signature(fn, f"{attr}(...)", spec)
    return fn



def check_plugin(spec: str, factory: bool = False) -> None:
    """What validation asks of a plugin spec, running none of its code: the file or module
    exists and its source defines the function with ``**kwargs`` (a ``factory`` need not take
    them) (:mod:`engine.rewards.plugin_check`). Raises :class:`RewardSpecError`."""
    from engine.rewards.plugin_check import check_plugin_statically

    target, attr = _split_spec(spec)
    if _is_file_target(target):
        check_plugin_statically(spec, target, attr, True, _plugin_path(target), needs_kwargs=not factory)
    else:
        check_plugin_statically(spec, target, attr, False, needs_kwargs=not factory)


def is_plugin_spec(spec: object) -> bool:
    """A ``module:function``, ``pkg.module.function`` or ``path/file.py:function`` spec (what
    :func:`reload_plugin` can reload), as opposed to a built-in name, a ``model:`` spec or a
    callable's label."""
    return isinstance(spec, str) and (
        (":" in spec and not spec.strip().startswith("model:")) or is_dotted_spec(spec))


def plugin_source(spec: str) -> str:
    """Where a plugin's code comes from, as a user names it: the file, or the module's file."""
    target, _ = _split_spec(spec)
    if _is_file_target(target):
        return str(_plugin_path(target))
    module = sys.modules.get(target)
    return getattr(module, "__file__", None) or target


def reload_plugin(spec: str, done: set[str] | None = None, kwargs: dict | None = None) -> Callable:
    """The callable ``spec`` names, with its file or module executed afresh (once per target
    across calls sharing ``done``, so two functions of one file see one execution). Raises
    :class:`RewardSpecError` when the new code does not load or lacks the function.
    ``kwargs``: ``spec`` is a factory, called with them."""
    target, _ = _split_spec(spec)
    fresh = done is None or target not in done
    if done is not None:
        done.add(target)
    if kwargs is not None:
        return build_factory(spec, kwargs, fresh=fresh)
    return _resolve_plugin(spec, fresh=fresh)
