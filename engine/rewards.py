"""Reward functions: the built-ins, loading user plugins, and scoring a batch safely.

Every reward function follows TRL's convention so TRL reward functions drop in unchanged:

    fn(prompts=..., completions=..., **kwargs) -> list[float | None]

called with keyword arguments only (as TRL does, so ``def f(completions, answer, **kwargs)``
works). ``kwargs`` carries every extra dataset column (``answer=[...]``), ``completion_ids``
(list of token-id lists) and ``step``. Completions are plain strings, or for conversational
data ``[{"role": "assistant", "content": text}]``. ``None`` means "not applicable": it is
ignored by the total, never counted as zero.

A reward function is user code running inside a long training run, so nothing it does may
stop the run: ``score`` turns an exception, a wrong-length result, a non-number or an
infinity into a NaN column for that batch plus a one-line entry in ``RewardBatch.errors``.
Likewise a plugin that fails to import is reported as one clear line
(``check_reward_spec``), never as a traceback.

A ``reward_funcs`` entry ``model:<hub id or path>`` names a sequence-classification reward
model (as TRL accepts one): :class:`RewardModel` scores each prompt+completion with the
model's first logit, and its metric name is the model's folder or repo name.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import logging
import math
import numbers
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import torch

RewardFn = Callable[..., list]

# kwargs that score() adds next to the dataset columns; not part of a row's "example".
_NON_COLUMN_KWARGS = frozenset({"completion_ids", "step", "trainer_state"})

DEFAULT_FORMAT_PATTERN = r"^<think>.*?</think>\s*<answer>.*?</answer>$"

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = "\\boxed"
_ERROR_MAX_CHARS = 200


class RewardSpecError(ValueError):
    """A reward spec that does not resolve; ``str(e)`` is the one-line message for the user."""

    def __init__(self, message: str, spec: str = "") -> None:
        super().__init__(message)
        self.spec = spec


@dataclass
class RewardFunction:
    name: str  # "accuracy", "format", or the plugin function's __name__ (made unique)
    fn: Callable
    spec: str = ""  # what the config said: a built-in name or "module:function"


@dataclass
class RewardBatch:
    per_func: torch.Tensor  # [N, F] float32, NaN where a function returned None or failed
    total: torch.Tensor  # [N] float32 = nansum(per_func * weights, dim=1), as TRL
    errors: list[tuple[str, str]]  # (function name, "ValueError: message") per failed function
    all_none_rows: int = 0  # rows where every function gave None/failed (their total is 0.0)


# --------------------------------------------------------------------------- text and results


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
    if isinstance(values, torch.Tensor):
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


# --------------------------------------------------------------------------- built-ins


@dataclass
class _BuildContext:
    task: Any
    max_completion_length: int | None


def _accuracy(ctx: _BuildContext) -> RewardFn:
    """1.0 when the completion's answer is correct, else 0.0 (task verifier or math-verify)."""
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


class _DropTimeoutNotice(logging.Filter):
    """math-verify warns once that its timeout is off; that is deliberate here (see below)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


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
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTimeoutNotice) for f in logger.filters):
            logger.addFilter(_DropTimeoutNotice())
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

    def accuracy(prompts, completions, **kwargs) -> list[float | None]:
        """1.0 when the answer equals the gold (math-verify); None when the gold does not parse."""
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

    return accuracy


def _format(ctx: _BuildContext, pattern: str = DEFAULT_FORMAT_PATTERN) -> RewardFn:
    """1.0 when the whole completion matches the format regex (DOTALL), else 0.0."""
    if not isinstance(pattern, str):
        raise ValueError(f"reward_kwargs.format.pattern: expected a string, got {pattern!r}")
    try:
        regex = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise ValueError(f"reward_kwargs.format.pattern: invalid regex: {exc}") from exc

    def format(prompts, completions, **kwargs) -> list[float | None]:  # noqa: A001
        """1.0 when the whole completion matches the format regex (default <think>…<answer>…)."""
        return [
            1.0 if regex.fullmatch(completion_text(c).strip()) else 0.0 for c in completions
        ]

    return format


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


def _length(
    ctx: _BuildContext, max_length: int | None = None, cache_length: int | None = None
) -> RewardFn:
    """DAPO soft overlong punishment: 0 up to max_length - cache_length, then linear down to -1."""
    if max_length is None:
        max_length = ctx.max_completion_length
    if max_length is None:
        raise ValueError(
            "reward_kwargs.length.max_length: required when max_completion_length is unknown"
        )
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(
            f"reward_kwargs.length.max_length: expected a positive integer, got {max_length!r}"
        )
    if cache_length is None:
        cache_length = max_length // 4
    if (
        isinstance(cache_length, bool)
        or not isinstance(cache_length, int)
        or not 0 <= cache_length <= max_length
    ):
        raise ValueError(
            f"reward_kwargs.length.cache_length: expected an integer in [0, {max_length}], "
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
    "format": _format,
    "tag_count": _tag_count,
    "length": _length,
}


def builtin_reward_names() -> list[str]:
    """Names usable directly in ``reward_funcs``."""
    return list(_BUILTINS)


def _builtin_options(name: str) -> list[str]:
    params = inspect.signature(_BUILTINS[name]).parameters
    return [p for p in params if p != "ctx"]


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


# --------------------------------------------------------------------------- reward models


REWARD_MODEL_PREFIX = "model:"
"""``model:<hub id or path>`` in reward_funcs names a sequence-classification reward model."""

_REWARD_MODEL_OPTIONS = ("batch_size", "max_length", "dtype")
_REWARD_MODEL_DTYPES = ("auto", "float32", "bfloat16", "float16")
_REWARD_MODEL_CACHE_SIZE = 2

# Loaded reward models keyed by (target, device, dtype): building the reward functions twice
# (a second run in the same process, a rebuilt trainer) loads the weights once.
_LOADED_REWARD_MODELS: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def is_reward_model_spec(spec: Any) -> bool:
    return isinstance(spec, str) and spec.strip().startswith(REWARD_MODEL_PREFIX)


def _reward_model_target(spec: str) -> str:
    return spec.strip()[len(REWARD_MODEL_PREFIX) :].strip()


def reward_model_name(spec: str) -> str:
    """The metric name of a reward model: its folder or repo name.

    ``model:OpenAssistant/reward-model-deberta-v3-large-v2`` -> ``reward-model-deberta-v3-large-v2``,
    ``model:./my-rm/`` -> ``my-rm``. Accepts the spec or the bare target.
    """
    target = _reward_model_target(spec) if is_reward_model_spec(spec) else spec.strip()
    return target.replace("\\", "/").rstrip("/").rpartition("/")[2] or target


def _looks_like_path(target: str) -> bool:
    """A filesystem path rather than a hub id such as 'gpt2' or 'Org/Name'."""
    if target.startswith((".", "/", "~", "\\")) or os.path.isabs(target) or "\\" in target:
        return True
    return target.count("/") > 1 or Path(target).exists()


def _check_reward_model(spec: str) -> None:
    target = _reward_model_target(spec)
    if not target:
        raise RewardSpecError(
            f"reward model '{spec}': name a model after 'model:' (a hub id or a folder)", spec
        )
    if not _looks_like_path(target):
        return  # a hub id: checked when it is loaded (offline there is nothing to ask)
    path = Path(target).expanduser()
    if not path.exists():
        raise RewardSpecError(f"reward model '{spec}': folder not found: {path}", spec)
    if not (path / "config.json").is_file():
        raise RewardSpecError(
            f"reward model '{spec}': {path} is not a saved model (no config.json)", spec
        )


def _check_reward_model_options(name: str, options: Any) -> None:
    if not isinstance(options, dict):
        raise ValueError(f"reward_kwargs.{name}: expected a mapping of options, got {options!r}")
    for key, value in options.items():
        if key not in _REWARD_MODEL_OPTIONS:
            hint = difflib.get_close_matches(str(key), _REWARD_MODEL_OPTIONS, n=1)
            did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
            raise ValueError(
                f"reward_kwargs.{name}: unknown option '{key}' ({did_you_mean}"
                f"reward model options: {', '.join(_REWARD_MODEL_OPTIONS)})"
            )
        if value is None and key == "max_length":
            continue  # no truncation
        positive_int = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if key in ("batch_size", "max_length") and not positive_int:
            raise ValueError(
                f"reward_kwargs.{name}.{key}: expected a positive integer, got {value!r}"
            )
        if key == "dtype" and value not in _REWARD_MODEL_DTYPES:
            raise ValueError(
                f"reward_kwargs.{name}.dtype: {value!r} is not one of {' | '.join(_REWARD_MODEL_DTYPES)}"
            )


def _is_chat(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(isinstance(m, dict) and "content" in m for m in prompt)


class RewardModel:
    """Scores completions with a sequence-classification model's first logit (TRL's reward models).

    Conversational prompts (message lists) are rendered with the reward model's chat template
    as ``prompt messages + the assistant's completion`` and tokenized without adding special
    tokens (the template has them); plain prompts are scored as the text ``prompt + completion``
    with the tokenizer's own special tokens. Rows go through the model ``batch_size`` at a
    time, right-padded, under ``torch.inference_mode``. Weights load on the first call to
    :meth:`load` (``build_reward_funcs`` calls it), on ``device``, and are shared by later builds.
    """

    def __init__(
        self,
        target: str,
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        dtype: str = "auto",
        device: str | torch.device = "cpu",
    ) -> None:
        self.target = target
        self.batch_size = batch_size
        self.max_length = max_length
        self.dtype = dtype
        self.device = torch.device(device)
        self.__name__ = reward_model_name(target)
        self.model: Any = None
        self.tokenizer: Any = None

    def __repr__(self) -> str:
        return f"RewardModel({self.target!r}, device={str(self.device)!r})"

    def load(self) -> "RewardModel":
        if self.model is not None:
            return self
        from engine.modeling import resolve_dtype

        dtype = resolve_dtype(self.dtype, self.device)
        key = (self.target, str(self.device), str(dtype))
        if key not in _LOADED_REWARD_MODELS:
            _LOADED_REWARD_MODELS[key] = self._from_pretrained(dtype)
            while len(_LOADED_REWARD_MODELS) > _REWARD_MODEL_CACHE_SIZE:
                _LOADED_REWARD_MODELS.pop(next(iter(_LOADED_REWARD_MODELS)))
        self.model, self.tokenizer = _LOADED_REWARD_MODELS[key]
        return self

    def _from_pretrained(self, dtype: torch.dtype) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        spec = f"{REWARD_MODEL_PREFIX}{self.target}"
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.target)
            model = AutoModelForSequenceClassification.from_pretrained(self.target, dtype=dtype)
        except Exception as exc:  # one line for the user, not a loader traceback
            raise RewardSpecError(
                f"reward model '{spec}' could not be loaded: {_format_exception(exc, where=False)}",
                spec,
            ) from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None:  # needed to find each row's last token when batched
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(self.device).eval()
        model.requires_grad_(False)
        return model, tokenizer

    def texts(self, prompts: list, completions: list) -> tuple[list[str], bool]:
        """The text each row is scored on, and whether it came from the chat template."""
        chat = bool(prompts) and _is_chat(prompts[0])
        out = []
        for prompt, completion in zip(prompts, completions):
            if chat:
                if isinstance(completion, list):
                    reply = list(completion)
                else:
                    reply = [{"role": "assistant", "content": completion_text(completion)}]
                out.append(self.tokenizer.apply_chat_template(list(prompt) + reply, tokenize=False))
            else:
                out.append(str(prompt) + completion_text(completion))
        return out, chat

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        """The reward model's first logit for each prompt + completion."""
        self.load()
        texts, chat = self.texts(prompts, completions)
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                padding_side="right",
                truncation=self.max_length is not None,
                max_length=self.max_length,
                add_special_tokens=not chat,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits
            scores.extend(logits[:, 0].float().cpu().tolist())
        return scores


def clear_reward_model_cache() -> None:
    """Forget loaded reward models (their memory is freed once no run holds them)."""
    _LOADED_REWARD_MODELS.clear()


# --------------------------------------------------------------------------- plugins


# Loaded plugin files, keyed by (path, mtime, size): validation and the build then share
# one execution of the file, and an edited file is loaded afresh.
_FILE_MODULES: dict[tuple[str, int, int], ModuleType] = {}


def _split_spec(spec: str) -> tuple[str, str]:
    target, sep, attr = spec.rpartition(":")
    if not sep or not target.strip() or not attr.strip():
        raise RewardSpecError(
            f"reward plugin '{spec}': expected module:function or path/file.py:function", spec
        )
    return target.strip(), attr.strip()


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _load_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        raise RewardSpecError(f"reward plugin '{spec}': file not found: {path}", spec)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _FILE_MODULES:
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
    _FILE_MODULES[key] = module
    return module


def _import_module(target: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        # "my_rewards:acc" with my_rewards.py in the working directory: console scripts do
        # not put the cwd on sys.path, so look for the file there before giving up.
        local = Path.cwd() / (target.replace(".", os.sep) + ".py")
        if exc.name == target.split(".")[0] and local.is_file():
            return _load_file(local, spec)
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


def _resolve_plugin(spec: str) -> Callable:
    target, attr = _split_spec(spec)
    if _is_file_target(target):
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        module = _load_file(path, spec)
        where = path.name
    else:
        module = _import_module(target, spec)
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
    _check_signature(obj, attr, spec)
    return obj


def _check_signature(fn: Callable, attr: str, spec: str) -> None:
    """Reject functions that cannot take the keyword arguments every call passes."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature: let the call decide
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise RewardSpecError(
            f"reward plugin '{spec}': '{attr}' must accept **kwargs "
            "(dataset columns, completion_ids and step are passed as keywords)",
            spec,
        )


def _unknown_name_message(spec: str) -> str:
    hint = difflib.get_close_matches(spec, builtin_reward_names(), n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return (
        f"unknown reward function '{spec}'{did_you_mean}: use a built-in "
        f"({', '.join(builtin_reward_names())}), module:function or path/file.py:function"
    )


def check_reward_spec(spec: str) -> str | None:
    """None when ``spec`` is a built-in name or resolves to a callable; else a one-line error."""
    try:
        _resolve_spec(spec)
    except RewardSpecError as exc:
        return str(exc)
    return None


def _resolve_spec(spec: str) -> Callable | None:
    """The plugin callable for ``spec``, or None for a built-in name or a reward model."""
    if not isinstance(spec, str) or not spec.strip():
        raise RewardSpecError(f"reward function spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in _BUILTINS:
        return None
    if is_reward_model_spec(spec):
        _check_reward_model(spec)
        return None
    if ":" not in spec:
        raise RewardSpecError(_unknown_name_message(spec), spec)
    return _resolve_plugin(spec)


# --------------------------------------------------------------------------- build & score


def build_reward_funcs(
    specs: Sequence[str | Callable],
    *,
    task: Any = None,
    reward_kwargs: dict[str, dict] | None = None,
    max_completion_length: int | None = None,
    device: str | torch.device = "cpu",
) -> list[RewardFunction]:
    """Resolve ``reward_funcs`` into callables, once, before training starts.

    ``specs`` are built-in names, "module:function", "path/file.py:function",
    "model:<hub id or path>" (a reward model, loaded here onto ``device``), or callables.
    ``task``: a built-in task object (has ``verify``); ``accuracy`` then uses its verifier.
    ``reward_kwargs``: options by function name, e.g. {"format": {"pattern": "..."}} or
    {"my-rm": {"batch_size": 8}}.
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
    for spec in specs:
        if callable(spec):
            fn, label = spec, getattr(spec, "__name__", type(spec).__name__)
            spec_text = label
        else:
            spec_text = spec.strip() if isinstance(spec, str) else spec
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
                label = getattr(plugin, "__name__", None) or spec_text.rpartition(":")[2]
        name, k = label, 2
        while name in taken:  # metric names (rewards/<name>/mean) must not collide
            name, k = f"{label}_{k}", k + 1
        taken.add(name)
        funcs.append(RewardFunction(name=name, fn=fn, spec=spec_text))
    return funcs


def score(
    funcs: Sequence[RewardFunction],
    weights: Sequence[float] | torch.Tensor | None,
    prompts: list,
    completions: list,
    columns: dict[str, list],
    completion_ids: list[list[int]] | None,
    step: int,
) -> RewardBatch:
    """Run every reward function on one batch; failures become NaN columns, never exceptions.

    ``columns`` holds the dataset's extra columns, one value per completion (already
    repeated G times per prompt). ``total = nansum(per_func * weights, dim=1)`` as in TRL,
    so None/NaN is ignored and a row where every function gave None scores 0.0.
    """
    n, f = len(completions), len(funcs)
    if weights is None:
        w = torch.ones(f, dtype=torch.float32)
    else:
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        if w.numel() != f:
            raise ValueError(f"reward_weights has {w.numel()} values for {f} reward functions")

    kwargs = dict(columns)
    kwargs["completion_ids"] = completion_ids
    kwargs["step"] = step
    nan_column = [math.nan] * n
    cols: list[list[float]] = []
    errors: list[tuple[str, str]] = []
    for func in funcs:
        try:
            cols.append(_to_column(func.fn(prompts=prompts, completions=completions, **kwargs), n))
        except _ResultError as exc:
            cols.append(nan_column)
            errors.append((func.name, str(exc)))
        except (Exception, SystemExit) as exc:
            cols.append(nan_column)
            errors.append((func.name, _format_exception(exc)))

    if f:
        per_func = torch.tensor(cols, dtype=torch.float32).T.contiguous()
    else:
        per_func = torch.empty((n, 0), dtype=torch.float32)
    total = (per_func * w.unsqueeze(0)).nansum(dim=1)
    all_none_rows = int(torch.isnan(per_func).all(dim=1).sum()) if f else n
    return RewardBatch(per_func=per_func, total=total, errors=errors, all_none_rows=all_none_rows)


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
