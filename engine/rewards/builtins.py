"""The built-in reward functions (``_BUILTINS``): ``accuracy``, ``answer_accuracy``, ``format``,
``tag_count``, ``reasoning_steps``, ``len``, ``cosine``, ``repetition_penalty``,
``soft_overlong_punishment`` and ``length``. Those named like open-r1's score like open-r1's
(:mod:`engine.rewards.open_r1`).

Each is made by a factory that takes the build context (the task, ``max_completion_length``)
and its ``reward_kwargs`` options. ``accuracy`` and ``answer_accuracy`` use the task's verifier
when there is one, else math-verify, which is imported when the function is built (it is slow
to import), never at import time.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from engine.rewards import open_r1
from engine.rewards.common import completion_text

RewardFn = Callable[..., list]

# kwargs that score() adds next to the dataset columns; not part of a row's "example".
_NON_COLUMN_KWARGS = frozenset({"completion_ids", "step", "trainer_state", "log_extra", "log_metric", "environments"})

DEFAULT_FORMAT_PATTERN = open_r1.FORMAT_PATTERN

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = "\\boxed"


@dataclass
class _BuildContext:
    task: Any
    max_completion_length: int | None


def _accuracy(ctx: _BuildContext) -> RewardFn:
    """1.0 when the completion's answer is correct, else 0.0: the task's verifier, else
    open-r1's accuracy_reward (a LaTeX answer, \\boxed{} first; see engine.rewards.open_r1)."""
    verify = getattr(ctx.task, "verify", None)
    if callable(verify):
        return _task_accuracy(verify)
    return open_r1.accuracy(ctx)


def _answer_accuracy(ctx: _BuildContext) -> RewardFn:
    """1.0 when the completion's answer is correct, else 0.0: the task's verifier, else
    math-verify on the last <answer>…</answer>, else the last \\boxed{}, else the whole text
    (bare numbers count: "<answer>42</answer>" is an answer, as the bundled GSM8K presets ask)."""
    verify = getattr(ctx.task, "verify", None)
    if callable(verify):
        return _task_accuracy(verify)
    return _math_accuracy()


def _task_accuracy(task_verify: Callable[[str, dict], float]) -> RewardFn:
    def accuracy(prompts, completions, **kwargs) -> list[float | None]:
        """1.0 when the task's verifier accepts the completion, else 0.0."""
        columns = {
            key: value
            for key, value in kwargs.items()
            if key not in _NON_COLUMN_KWARGS and isinstance(value, (list, tuple))
        }
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            example = {key: value[i] for key, value in columns.items()}
            example["prompt"] = prompts[i]
            out.append(float(task_verify(completion_text(completion), example)))
        return out

    return accuracy


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None."""
    start = text.rfind(_BOXED)
    while start != -1:
        i = start + len(_BOXED)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j]
        start = text.rfind(_BOXED, 0, start)
    return None


def _prediction_text(text: str) -> str:
    """What to grade: the last <answer>…</answer>, else the last \\boxed{…}, else everything."""
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return tags[-1].strip()
    boxed = _last_boxed(text)
    return boxed.strip() if boxed is not None else text


def _math_accuracy() -> RewardFn:
    # Imported here, once per build, so that importing this module (config validation,
    # the launcher) stays fast; never per call.
    try:
        import math_verify
    except ImportError as exc:  # pragma: no cover - math-verify is a dependency
        raise ValueError(f"accuracy: math-verify is not installed ({exc})") from exc
    open_r1.quiet_math_verify()  # timeouts are off on purpose (below)
    mv_parse, mv_verify = math_verify.parse, math_verify.verify

    # math-verify's timeouts use signal.alarm, which raises off the main thread (the engine
    # runs on a background thread) and would cancel other SIGALRM users (pytest-timeout) on
    # it. So timeouts stay off everywhere; each row is guarded by try/except instead.
    def parse(text: str) -> list:
        parsed = mv_parse(text, parsing_timeout=None)
        if not parsed and any(ch in text for ch in "\\^_{"):
            # bare LaTeX such as "\sqrt{2}" is only found inside math delimiters
            parsed = mv_parse(f"${text}$", parsing_timeout=None)
        return parsed

    def answer_accuracy(prompts, completions, **kwargs) -> list[float | None]:
        """1.0 when the answer (<answer>, \\boxed{} or the text) equals the gold (math-verify);
        None when the gold does not parse."""
        golds = kwargs.get("answer", kwargs.get("solution"))
        if golds is None:
            found = ", ".join(k for k in kwargs if k not in _NON_COLUMN_KWARGS) or "none"
            raise ValueError(f"needs an 'answer' or 'solution' column (columns: {found})")
        gold_cache: dict[str, list] = {}
        out: list[float | None] = []
        for completion, gold in zip(completions, golds):
            gold_text = "" if gold is None else str(gold)
            if "####" in gold_text:  # GSM8K: worked solution, then "#### <final answer>"
                gold_text = gold_text.rsplit("####", 1)[1].strip()
            if gold_text not in gold_cache:
                try:
                    gold_cache[gold_text] = parse(gold_text) if gold_text.strip() else []
                except Exception:
                    gold_cache[gold_text] = []
            gold_parsed = gold_cache[gold_text]
            if not gold_parsed:
                out.append(None)
                continue
            try:
                predicted = parse(_prediction_text(completion_text(completion)))
                ok = bool(predicted) and mv_verify(gold_parsed, predicted, timeout_seconds=None)
            except Exception:
                ok = False
            out.append(1.0 if ok else 0.0)
        return out

    return answer_accuracy


_TAGS = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")


def _tag_count(ctx: _BuildContext) -> RewardFn:
    """0.25 for each reasoning tag that appears exactly once (open-r1's tag_count_reward)."""

    def tag_count(prompts, completions, **kwargs) -> list[float | None]:
        """0.25 for each of the four <think>/<answer> tag lines that appears exactly once."""
        out: list[float | None] = []
        for completion in completions:
            text = completion_text(completion)
            out.append(sum(0.25 for tag in _TAGS if text.count(tag) == 1))
        return out

    return tag_count


def _soft_overlong_punishment(ctx: _BuildContext, max_completion_len: int | None = None,
                              soft_punish_cache: int | None = None) -> RewardFn:
    """DAPO's soft overlong punishment under open-r1's name and option names (the same function
    as ``length``): 0 up to max_completion_len − soft_punish_cache tokens, then linear down to
    −1 at max_completion_len. Defaults: max_completion_length, and a quarter of it."""
    fn = _length(ctx, max_length=max_completion_len, cache_length=soft_punish_cache, option_names=(
        "soft_overlong_punishment", "max_completion_len", "soft_punish_cache"))
    fn.__name__ = "soft_overlong_punishment"
    return fn


def _length(
    ctx: _BuildContext, max_length: int | None = None, cache_length: int | None = None,
    option_names: tuple[str, str, str] = ("length", "max_length", "cache_length"),
) -> RewardFn:
    """DAPO soft overlong punishment: 0 up to max_length - cache_length, then linear down to -1."""
    name, max_key, cache_key = option_names
    if max_length is None:
        max_length = ctx.max_completion_length
    if max_length is None:
        raise ValueError(
            f"reward_kwargs.{name}.{max_key}: required when max_completion_length is unknown"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(
            f"reward_kwargs.{name}.{max_key}: expected a positive integer, got {max_length!r}"
        )
    if cache_length is None:
        cache_length = max_length // 4
    if (
        isinstance(cache_length, bool)
        or not isinstance(cache_length, int)
        or not 0 <= cache_length <= max_length
    ):
        raise ValueError(
            f"reward_kwargs.{name}.{cache_key}: expected an integer in [0, {max_length}], "
            f"got {cache_length!r}"
        )
    soft_start = max_length - cache_length

    def length(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        """DAPO overlong penalty: 0 up to max_length - cache_length tokens, then linear to -1."""
        if completion_ids is None:
            raise ValueError("needs completion_ids")
        out: list[float | None] = []
        for ids in completion_ids:
            n = len(ids)
            if n <= soft_start:
                out.append(0.0)
            elif n <= max_length:
                out.append((soft_start - n) / cache_length)
            else:
                out.append(-1.0)
        return out

    return length


_BUILTINS: dict[str, Callable[..., RewardFn]] = {
    "accuracy": _accuracy,
    "answer_accuracy": _answer_accuracy,
    "format": open_r1.format_reward,
    "tag_count": _tag_count,
    "reasoning_steps": open_r1.reasoning_steps,
    "len": open_r1.len_reward,
    "cosine": open_r1.cosine,
    "repetition_penalty": open_r1.repetition_penalty,
    "soft_overlong_punishment": _soft_overlong_punishment,
    "length": _length,
}
"""Named as open-r1 names them score as open-r1's do (engine.rewards.open_r1); ``answer_accuracy``
and ``length`` are ours (``length`` is ``soft_overlong_punishment`` under its older name)."""


def builtin_reward_names() -> list[str]:
    """Names usable directly in ``reward_funcs``."""
    return list(_BUILTINS)


def _builtin_options(name: str) -> list[str]:
    params = inspect.signature(_BUILTINS[name]).parameters
    return [p for p in params if p not in ("ctx", "option_names")]


def _check_options(name: str, options: Any) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"reward_kwargs.{name}: expected a mapping of options, got {options!r}")
    known = _builtin_options(name)
    for key in options:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
            listed = ", ".join(known) if known else "none"
            raise ValueError(
                f"reward_kwargs.{name}: unknown option '{key}' ({did_you_mean}options: {listed})"
            )
