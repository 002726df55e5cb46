"""A user's ``rollout_func`` (TRL 1.16's contract): the user generates, the engine trains.

``rollout_func(prompts, trainer) -> dict`` gets the round's prompts (this process's share,
each once, as the dataset holds them: text or chat messages) and a trainer object, and
returns ``num_generations`` completions per prompt:

- ``prompt_ids``: token ids of each prompt (one list per completion, or one per prompt);
- ``completion_ids``: token ids of each completion, prompt-major (G per prompt, in order);
- ``logprobs``: the sampling log-prob of each completion token (None entries allowed);
- optional ``env_mask``: per completion token, 1 where the model wrote it and 0 where an
  environment did (those are never trained on);
- any other key: a column handed to the reward functions (one value per completion, or one
  per prompt).

``trainer`` is the Python API's ``GRPOTrainer`` when the function was handed to it; from a
preset it is a :class:`RolloutTrainer` with the same attributes a rollout needs
(``processing_class``, ``model``, ``args``, ``num_generations``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.agents.tools import AgentError
from engine.rollout.backend import Rollout, rollout_from_lists

REQUIRED = ("prompt_ids", "completion_ids", "logprobs")


class RolloutFuncError(AgentError):
    """What a rollout_func returned cannot be trained on."""


@dataclass
class RolloutTrainer:
    """What a preset's rollout_func gets as ``trainer``."""

    processing_class: object
    model: object
    args: object
    num_generations: int

    @property
    def tokenizer(self):
        return self.processing_class


@dataclass
class MadeRound:
    rollout: Rollout
    texts: list[str]
    completions: list  # what reward functions get as completions
    columns: dict[str, list]  # the function's other fields, one value per completion


def _per_completion(values, name: str, prompts: int, g: int) -> list:
    values = list(values)
    if len(values) == prompts * g:
        return values
    if len(values) == prompts:
        return [v for v in values for _ in range(g)]
    raise RolloutFuncError(f"rollout_func: {name!r} has {len(values)} entries; expected one per completion "
                           f"({prompts} prompts × num_generations {g} = {prompts * g}) or one per prompt ({prompts})")


def _ids(value) -> list[int]:
    return value.tolist() if hasattr(value, "tolist") else [int(t) for t in value]


class CustomRollout:
    """Calls the rollout function and checks what it returns."""

    def __init__(self, fn: Callable, *, cfg, model, tokenizer, renderer, eos_ids: list[int], device) -> None:
        self.fn = fn
        self.g = cfg.num_generations
        self.tokenizer, self.eos_ids, self.device = tokenizer, set(eos_ids), device
        self.trainer = RolloutTrainer(processing_class=tokenizer, model=model, args=cfg, num_generations=self.g)

    def __call__(self, rows: list[dict]) -> MadeRound:
        prompts = [r["prompt"] for r in rows]
        out = self.fn(prompts, self.trainer)
        if not isinstance(out, dict):
            raise RolloutFuncError(f"rollout_func must return a dict with {', '.join(REQUIRED)}; "
                                   f"it returned a {type(out).__name__}")
        missing = [k for k in REQUIRED if k not in out]
        if missing:
            raise RolloutFuncError(f"rollout_func must return keys {missing} in its output dict")
        n, g = len(rows), self.g
        completion_ids = [_ids(c) for c in _per_completion(out["completion_ids"], "completion_ids", n, g)]
        prompt_ids = [_ids(p) for p in _per_completion(out["prompt_ids"], "prompt_ids", n, g)]
        logprobs = [[float("nan") if v is None else float(v) for v in row]
                    for row in _per_completion(out["logprobs"], "logprobs", n, g)]
        for i, (ids, lps) in enumerate(zip(completion_ids, logprobs)):
            if len(lps) < len(ids):
                raise RolloutFuncError(f"rollout_func: completion {i} has {len(ids)} tokens but {len(lps)} logprobs")
        env_mask = out.get("env_mask")
        if env_mask is not None:
            env_mask = [[int(bool(v)) for v in row] for row in _per_completion(env_mask, "env_mask", n, g)]
        pad = self.tokenizer.pad_token_id
        truncated = [not ids or ids[-1] not in self.eos_ids | {pad} for ids in completion_ids]
        rollout = rollout_from_lists(prompt_ids, completion_ids, truncated, pad, self.device,
                                     logprobs=[[0.0 if v != v else v for v in row] for row in logprobs],
                                     env_mask=env_mask)
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        conversational = isinstance(prompts[0], list)
        completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
        columns = {k: _per_completion(v, k, n, g) for k, v in out.items()
                   if k not in REQUIRED and k not in ("env_mask", "logprob_token_ids")}
        return MadeRound(rollout=rollout, texts=texts, completions=completions, columns=columns)
