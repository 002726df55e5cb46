"""Built-in synthetic tasks: prompts with a known answer and a verifier.

A task is the cheapest way to get a verifiable reward: no dataset download, a fixed
held-out split, and an exact checker. Presets name one with `dataset.task` and pass
its options in `dataset.task_args`; config validation calls `get_task` with those
arguments, so a bad option is reported before a run starts.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable, Protocol, runtime_checkable

from engine.data.tasks.arithmetic import ArithmeticTask
from engine.data.tasks.countdown import CountdownTask


@runtime_checkable
class Task(Protocol):
    """What the trainer needs from a task."""

    name: str

    def train_examples(self) -> list[dict]:
        """The prompt pool; each example has at least "prompt" and "answer"."""
        ...

    def eval_examples(self) -> list[dict]:
        """Held-out examples, never among train_examples()."""
        ...

    def verify(self, completion: str, example: dict) -> float:
        """1.0 if `completion` (decoded text before EOS) answers `example`, else 0.0."""
        ...


_REGISTRY: dict[str, Callable[..., Task]] = {
    "arithmetic": ArithmeticTask,
    "countdown": CountdownTask,
}


def task_names() -> list[str]:
    """Names accepted by get_task, sorted."""
    return sorted(_REGISTRY)


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Add a task under `name` (a class or a function taking the task's keyword options)."""
    _REGISTRY[name] = factory


def _check_arg_names(name: str, factory: Callable[..., Task], task_args: dict) -> None:
    """Name unknown options (with a close-match hint) instead of Python's terse TypeError."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p, v in params.items() if v.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [k for k in task_args if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"{name}: unknown task option{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; "
        f"known options: {', '.join(known)}"
    )


def get_task(name: str, **task_args) -> Task:
    """Build the task `name` with `task_args`.

    Raises:
        KeyError: unknown task name (the message lists the known ones).
        TypeError: an unknown option or an option of the wrong type.
        ValueError: an option out of range.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}") from None
    _check_arg_names(name, factory, task_args)
    return factory(**task_args)


__all__ = ["ArithmeticTask", "CountdownTask", "Task", "get_task", "register_task", "task_names"]
