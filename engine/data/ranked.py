"""Ranked groups: train on given responses whose order a judge (or a person) decided.

The data format is the NeMo RL GRPO tutorial's, one prompt per row with its group::

    {"prompt": "...", "group": [{"response": "...", "rank": 1}, {"response": "...", "rank": 2}]}

Rank 1 is the best; equal ranks are ties. Nothing is generated: the responses are the
group (:func:`ranked_rollout`), and their advantages come from the ranks
(:mod:`engine.algo.ranked`).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Iterable

import torch

from engine.rollout.backend import rollout_from_lists


class RankedDataError(ValueError):
    """A ranked-groups row that cannot be used; the message names the row and the field."""


# --------------------------------------------------------------------------- data


def normalize_ranked_rows(rows: Iterable[dict], *, min_group: int = 2) -> list[dict]:
    """Check ranked rows and flatten each group: ``{"prompt", "responses": [str], "ranks": [int], ...}``.

    Other keys of a row are kept (they reach reward-style code as columns). Raises
    RankedDataError naming the first bad row: missing prompt or group, a group smaller than
    ``min_group``, a response that is not text, a rank that is not a whole number >= 1.
    """
    out = []
    for i, row in enumerate(rows):
        where = f"row {i}"
        if not isinstance(row, dict):
            raise RankedDataError(f"{where}: expected an object with 'prompt' and 'group', got {type(row).__name__}")
        if "prompt" not in row:
            raise RankedDataError(f"{where}: no 'prompt' (keys: {', '.join(map(str, row)) or 'none'})")
        group = row.get("group")
        if not isinstance(group, list):
            raise RankedDataError(f"{where}: 'group' must be a list of {{response, rank}} objects")
        if len(group) < min_group:
            raise RankedDataError(f"{where}: a group needs at least {min_group} responses, got {len(group)}")
        responses, ranks = [], []
        for j, item in enumerate(group):
            at = f"{where}, group[{j}]"
            if not isinstance(item, dict) or "response" not in item or "rank" not in item:
                raise RankedDataError(f"{at}: expected {{\"response\": ..., \"rank\": ...}}")
            response, rank = item["response"], item["rank"]
            if not isinstance(response, str):
                raise RankedDataError(f"{at}: response must be text, got {type(response).__name__}")
            if isinstance(rank, bool) or not isinstance(rank, numbers.Real) or not math.isfinite(rank) \
                    or rank != int(rank) or rank < 1:
                raise RankedDataError(f"{at}: rank must be a whole number >= 1 (1 = best), got {rank!r}")
            responses.append(response)
            ranks.append(int(rank))
        extra = {k: v for k, v in row.items() if k not in ("prompt", "group")}
        out.append({"prompt": row["prompt"], "responses": responses, "ranks": ranks, **extra})
    if not out:
        raise RankedDataError("no rows: a ranked-groups file needs at least one {prompt, group} row")
    return out


def load_ranked_file(path: str | Path, *, min_group: int = 2) -> list[dict]:
    """Read a .jsonl (one row per line) or .json (a list of rows) file of ranked groups."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RankedDataError(f"{path}: cannot read: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise RankedDataError(f"{path}: invalid JSON: {exc}") from None
        if not isinstance(rows, list):
            raise RankedDataError(f"{path}: expected a list of rows")
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise RankedDataError(f"{path}: line {n}: invalid JSON: {exc}") from None
    return normalize_ranked_rows(rows, min_group=min_group)


# --------------------------------------------------------------------------- a rollout from given responses


def ranked_rollout(
    rows: list[dict],
    prompt_ids: list[list[int]],
    tokenizer: Any,
    eos_id: int,
    pad_id: int,
    max_completion_length: int,
    device: torch.device | str = "cpu",
):
    """A :class:`engine.rollout.backend.Rollout` holding the given responses instead of sampled ones.

    ``rows`` are normalised rows, ``prompt_ids`` each row's rendered prompt (the trainer's
    ``PromptRenderer.ids``). Each response is tokenized without special tokens and followed by
    ``eos_id``; one longer than ``max_completion_length`` is cut there and marked truncated.
    Rows are grouped contiguously, a group per prompt, with the groups' own sizes:
    returns ``(rollout, group_sizes)``. ``logprobs`` are zeros (nothing was sampled).
    """
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    truncated: list[bool] = []
    sizes: list[int] = []
    for row, ids in zip(rows, prompt_ids):
        sizes.append(len(row["responses"]))
        for response in row["responses"]:
            tokens = list(tokenizer(response, add_special_tokens=False)["input_ids"]) + [eos_id]
            cut = len(tokens) > max_completion_length
            prompts.append(list(ids))
            completions.append(tokens[:max_completion_length])
            truncated.append(cut)
    rollout = rollout_from_lists(prompts, completions, truncated, pad_id, device)
    return rollout, sizes
