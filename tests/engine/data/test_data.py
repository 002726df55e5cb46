"""Prompt sources: local files in every format, chat messages, extra columns, batch order."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from conftest import TINY_MODEL, tiny_config, train
from engine.config.schema import DatasetConfig
from engine.run.events import LogEvent, RunFinished, StepMetrics
from engine.data.prompts import BatchOrder, DataError, PromptData, PromptRenderer, load_prompt_data, reward_columns

ROWS = [{"question": f"{a}+{b}=", "answer": str(a + b)} for a in range(10, 40) for b in range(10, 20)]


def write(tmp_path, fmt: str):
    import pandas as pd

    path = tmp_path / f"data.{fmt}"
    df = pd.DataFrame(ROWS)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_local_files(tmp_path, fmt):
    path = write(tmp_path, fmt)
    data = load_prompt_data(DatasetConfig(path=str(path), prompt_column="question", eval_size=20))
    assert len(data.eval) == 20 and len(data.train) == len(ROWS) - 20
    assert {r["prompt"] for r in data.eval}.isdisjoint({r["prompt"] for r in data.train})
    assert str(data.train[0]["answer"]) == str(eval(data.train[0]["prompt"][:-1]))  # noqa: S307
    assert set(reward_columns(data.train[:2])) == {"answer"}


def test_prompt_data_reads_the_prompt_kind_and_columns_from_the_first_row(tmp_path):
    chat = [{"prompt": [{"role": "user", "content": "1+1="}], "answer": "2"}]
    data = PromptData.from_rows(chat, [])
    assert data.conversational and data.columns == ["prompt", "answer"] and data.train is chat
    path = write(tmp_path, "jsonl")
    loaded = load_prompt_data(DatasetConfig(path=str(path), prompt_column="question", eval_size=20))
    assert not loaded.conversational and set(loaded.columns) == {"prompt", "answer"}


def test_missing_prompt_column(tmp_path):
    path = write(tmp_path, "jsonl")
    with pytest.raises(DataError, match="question"):
        load_prompt_data(DatasetConfig(path=str(path), prompt_column="prompt"))


def test_chat_messages_rendered_with_template(tmp_path):
    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    messages = [{"role": "user", "content": "12+34="}]
    renderer = PromptRenderer(tok)
    assert renderer.text(messages) == "<bos>12+34="
    assert renderer.ids(messages) == tok("12+34=")["input_ids"]  # one <bos>, not two
    assert renderer.ids("12+34=") == tok("12+34=")["input_ids"]
    long = PromptRenderer(tok, max_prompt_length=3)
    assert len(long.ids("12+34=")) == 3


def test_batch_order_is_seeded_and_resumable():
    a, b = BatchOrder(10, seed=3), BatchOrder(10, seed=3)
    first = a.next(7) + a.next(7)
    assert first == b.next(14)
    assert sorted(first[:10]) == list(range(10))  # one full epoch before repeating
    state = a.state_dict()
    rest = a.next(5)
    c = BatchOrder(10, seed=3)
    c.load_state_dict(state)
    assert c.next(5) == rest


@pytest.mark.slow
def test_train_from_local_chat_file_with_math_verify(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": r["question"]}], "answer": r["answer"]}) + "\n" for r in ROWS
    ))
    cfg = tiny_config(tmp_path, "max_steps=2", "log_completions_groups=1", "dataset.task=null",
                      f"dataset.path={path}", "dataset.prompt_column=messages", "dataset.eval_size=16")
    trainer, events = train(cfg)
    assert isinstance(events[-1], RunFinished), events[-1]
    steps = [e.metrics for e in events if isinstance(e, StepMetrics)]
    assert len(steps) == 2 and 0.0 <= steps[-1]["accuracy"] <= 1.0  # math-verify graded the digits
    assert trainer.summary["eval_accuracy_before"] is not None


@pytest.mark.slow
def test_reward_plugin_that_raises_does_not_stop_the_run(tmp_path):
    plugin = tmp_path / "flaky.py"
    plugin.write_text(
        "def flaky(prompts, completions, step, **kwargs):\n"
        "    if step == 1:\n"
        "        raise RuntimeError('reward server unreachable')\n"
        "    return [0.5] * len(completions)\n"
    )
    cfg = tiny_config(tmp_path, "max_steps=3", "log_completions_groups=0",
                      f"reward_funcs=[accuracy, '{plugin}:flaky']", "reward_weights=[1.0, 1.0]")
    _, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished)
    errors = [e for e in events if isinstance(e, LogEvent) and e.category == "reward_error"]
    assert len(errors) == 1 and "flaky" in errors[0].message and "reward server unreachable" in errors[0].message
    steps = [e.metrics for e in events if isinstance(e, StepMetrics)]
    assert steps[0]["rewards/flaky/mean"] != steps[0]["rewards/flaky/mean"]  # NaN: no value that batch
    assert steps[1]["rewards/flaky/mean"] == 0.5
