"""Prompt sources: built-in tasks, local files, 🤗 datasets; chat rendering; the batch order.

Every source ends as two lists of rows (train, eval). A row is a dict with a ``prompt``
(a string, or a list of chat messages) and any other columns, which reach the reward
functions as keyword arguments (TRL's convention), e.g. ``answer``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.file_check import data_file_problem
from engine.data.tasks import Task, get_task

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    """A dataset that cannot be used (missing column, empty split, unreadable file)."""


@dataclass
class PromptData:
    """The train and eval rows of a run, and what their first row says about all of them."""

    train: list[dict]
    eval: list[dict]
    task: Task | None = None
    conversational: bool = False  # prompts are chat message lists
    columns: list[str] = field(default_factory=list)

    @classmethod
    def from_rows(cls, train: list[dict], eval: list[dict]) -> "PromptData":
        """Rows that already carry a ``prompt`` (from files, the hub or the Python API): the
        prompt kind and the columns are read from the first training row."""
        return cls(train=train, eval=eval, conversational=is_conversational(train[0]["prompt"]), columns=list(train[0]))


def is_conversational(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(isinstance(m, dict) and "content" in m for m in prompt)


def _rows_from_dataset(ds) -> list[dict]:
    return [dict(row) for row in ds]


def _load_local(path: str, column: str | None) -> list[dict]:
    """The rows of a local file, checked first (see engine.data.file_check) so a bad file is
    named with its line and cause, not by the loader's generic error."""
    from datasets import load_dataset

    suffix = Path(path).suffix.lower()
    if suffix not in LOCAL_FORMATS:
        raise DataError(f"dataset.path: unsupported file type {suffix!r} (use .jsonl, .json, .csv or .parquet)")
    problem = data_file_problem(path, column)
    if problem:
        raise DataError(f"dataset.path: {problem}")
    try:
        ds = load_dataset(LOCAL_FORMATS[suffix], data_files={"train": path}, split="train")
    except Exception as err:  # datasets wraps the cause in DatasetGenerationError; name the cause
        cause = err.__cause__ or err
        raise DataError(f"dataset.path: {path}: cannot be read ({type(cause).__name__}: {cause})") from err
    return _rows_from_dataset(ds)


def _load_hub(name: str, config: str | None, split: str) -> list[dict]:
    from datasets import load_dataset

    ds = load_dataset(name, config, split=split)
    return _rows_from_dataset(ds)


def load_prompt_data(dc, seed: int = 0) -> PromptData:
    """Build the train and eval rows from a ``DatasetConfig``."""
    if dc.task:
        task = get_task(dc.task, **(dc.task_args or {}))
        return PromptData(train=task.train_examples(), eval=task.eval_examples(), task=task, columns=["prompt", "answer"])

    eval_rows: list[dict] | None = None  # None: hold eval rows out of the training split
    if dc.format == "ranked":
        from engine.data.ranked import load_ranked_file

        rows = load_ranked_file(dc.path)
    elif dc.path:
        rows = _load_local(dc.path, dc.prompt_column)
    else:
        rows = _load_hub(dc.name, dc.config, dc.split)
        eval_rows = _load_hub(dc.name, dc.config, dc.eval_split) if dc.eval_split else None

    if not rows:
        raise DataError("dataset: the training split is empty")
    column = "prompt" if dc.format == "ranked" else dc.prompt_column
    if column not in rows[0]:
        raise DataError(f"dataset.prompt_column: no column {column!r} (columns: {', '.join(rows[0])})")
    rows = [_with_prompt(r, column) for r in rows]
    if eval_rows is None:
        # hold out eval_size rows (deterministically) when the source has no eval split
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        n_eval = min(dc.eval_size, len(rows) // 5)
        held = set(order[:n_eval])
        eval_rows = [rows[i] for i in order[:n_eval]]
        rows = [r for i, r in enumerate(rows) if i not in held]
    else:
        eval_rows = [_with_prompt(r, column) for r in eval_rows][: dc.eval_size]
    return PromptData.from_rows(rows, eval_rows)


def _with_prompt(row: dict, column: str) -> dict:
    if column == "prompt":
        return row
    out = dict(row)
    out["prompt"] = out.pop(column)
    return out


class PromptRenderer:
    """Turns a row's prompt into token ids the way the tokenizer expects.

    Conversational prompts (message lists), and string prompts when a system prompt is set
    or ``chat_template`` is on, go through the tokenizer's chat template with a generation
    prompt; plain strings are tokenized as text (with the tokenizer's own special tokens).
    ``chat_template_kwargs`` are the template's extra variables (Qwen3's ``enable_thinking``)."""

    def __init__(self, tokenizer, system_prompt: str | None = None, chat_template: bool | None = None,
                 max_prompt_length: int | None = None, chat_template_kwargs: dict | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.max_prompt_length = max_prompt_length
        self.cut: list[int] = []  # the lengths of the prompts cut since take_cut() was last asked

    def take_cut(self) -> list[int]:
        """The full lengths of the prompts max_prompt_length cut since the last call."""
        cut, self.cut = self.cut, []
        return cut

    def uses_chat(self, prompt: Any) -> bool:
        if is_conversational(prompt):
            return True
        if self.chat_template is not None:
            return self.chat_template
        return self.system_prompt is not None

    def messages(self, prompt: Any) -> list[dict]:
        msgs = list(prompt) if is_conversational(prompt) else [{"role": "user", "content": str(prompt)}]
        if self.system_prompt and not any(m.get("role") == "system" for m in msgs):
            msgs = [{"role": "system", "content": self.system_prompt}] + msgs
        return msgs

    def text(self, prompt: Any) -> str:
        if self.uses_chat(prompt):
            return self.tokenizer.apply_chat_template(self.messages(prompt), tokenize=False, add_generation_prompt=True,
                                                  **self.chat_template_kwargs)
        return str(prompt)

    def ids(self, prompt: Any) -> list[int]:
        if self.uses_chat(prompt):
            ids = self.tokenizer(self.text(prompt), add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(str(prompt))["input_ids"]
        if self.max_prompt_length is not None and len(ids) > self.max_prompt_length:
            self.cut.append(len(ids))
            ids = ids[-self.max_prompt_length :]  # keep the end, where the question is (as TRL)
        return ids


class BatchOrder:
    """Seeded epoch-by-epoch shuffle of the training rows; its position is part of a checkpoint."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        if size <= 0:
            raise DataError("dataset: no training rows")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.index = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        return order

    def next(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self.index >= self.size:
                self.epoch += 1
                self.index = 0
                self._order = self._make_order()
            take = min(count - len(out), self.size - self.index)
            out.extend(self._order[self.index : self.index + take])
            self.index += take
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._make_order()


def reward_columns(rows: list[dict]) -> dict[str, list]:
    """The extra columns of a batch, as TRL passes them to reward functions (prompt excluded)."""
    keys = [k for k in rows[0] if k != "prompt"]
    return {k: [r.get(k) for r in rows] for k in keys}
