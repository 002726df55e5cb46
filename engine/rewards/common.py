"""Helpers every reward module shares: completion text, one-line errors, checked results.

:func:`completion_text` takes the text out of a completion (a string or a message list),
``_format_exception`` turns an exception into one short line (``"Type: message (file.py:line)"``),
``_to_column`` checks what a reward function returned and makes it a float column, and
:class:`RewardSpecError` is the one-line error for a reward spec that does not resolve.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import traceback
from typing import Any

_ERROR_MAX_CHARS = 200

KWARGS_CONTRACT = ("every call passes prompts, completions, completion_ids, trainer_state, log_extra, "
                   "log_metric and the dataset's columns as keywords: end the parameters with **kwargs")
"""What a reward function without ``**kwargs`` is told (TRL's contract, in one line)."""


class RewardSpecError(ValueError):
    """A reward spec that does not resolve; ``str(e)`` is the one-line message for the user."""

    def __init__(self, message: str, spec: str = "") -> None:
        super().__init__(message)
        self.spec = spec


def completion_text(completion: Any) -> str:
    """The text of one completion: a plain string, or the content of a message list/dict."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return completion.get("content") or ""
    if isinstance(completion, (list, tuple)):
        if not completion:
            return ""
        return completion_text(completion[-1])
    return "" if completion is None else str(completion)


def _one_line(text: str) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    if len(line) > _ERROR_MAX_CHARS:
        line = line[: _ERROR_MAX_CHARS - 1] + "…"
    return line


def _format_exception(exc: BaseException, *, where: bool = True) -> str:
    """``"ExceptionType: first line of the message (file.py:line)"``, short and on one line."""
    try:
        message = _one_line(str(exc))
    except Exception:  # an exception whose __str__ itself fails
        message = "<message could not be shown>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if where and exc.__traceback__ is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
    return text


class _ResultError(Exception):
    """A reward function returned something unusable (wrong length, non-number, inf)."""


def _to_column(values: Any, n: int) -> list[float]:
    """Validate one function's output and convert it to n floats, NaN for None/NaN."""
    torch = sys.modules.get("torch")  # not imported here: reward worker processes stay light
    if torch is not None and isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    elif isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise _ResultError(
            f"TypeError: returned {type(values).__name__}, expected a list of {n} floats"
        )
    if len(values) != n:
        raise _ResultError(f"ValueError: returned {len(values)} values for {n} completions")
    column: list[float] = []
    for i, value in enumerate(values):
        if value is None:
            column.append(math.nan)
            continue
        if not isinstance(value, numbers.Real):
            raise _ResultError(
                f"TypeError: returned {type(value).__name__} at index {i}, expected float or None"
            )
        value = float(value)
        if math.isinf(value):
            raise _ResultError(f"ValueError: returned {value} at index {i}")
        column.append(value)  # NaN stays NaN: treated as None
    return column
