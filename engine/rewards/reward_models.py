"""Reward models: ``model:<hub id or path>`` in ``reward_funcs`` (as TRL accepts one).

Checking such a spec and its ``reward_kwargs`` options (``batch_size``, ``max_length``,
``dtype``), the metric name it gets (the model's folder or repo name), :class:`RewardModel`,
which scores each prompt+completion with a sequence-classification model's first logit, and
the small cache that lets a rebuilt set of reward functions share loaded weights.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import torch

from engine.rewards.common import RewardSpecError, _format_exception, completion_text

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
        from engine.training.model_loading import resolve_dtype

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
