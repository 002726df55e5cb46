"""A bad local dataset file is named -- file, line and cause -- before any model loads:
`grpo-tui train` exits 2 with one line, and a run started another way fails with the same
line before its model loads (no traceback kept)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, cli, tiny_config, train
from engine.data.file_check import data_file_problem
from engine.run.events import RunFailed

GOOD = '{"prompt": "1+1=", "answer": "2"}\n'


def make(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, expected", [
    ("empty.jsonl", b"", "is empty"),
    ("blank.jsonl", b"\n\n", "has no rows"),
    ("broken.jsonl", (GOOD * 2 + '{"prompt": "3+3=", "answer": 6\n').encode(), "line 3: malformed JSON"),
    ("array.jsonl", b'[1, 2]\n', "line 1: expected a JSON object"),
    ("nocol.jsonl", b'{"question": "1+1="}\n', "no column 'prompt' (columns: question)"),
    ("latin1.csv", "prompt,answer\n\"café?\",1\n".encode("latin-1"), "is not UTF-8 (byte 0xe9 on line 2; it looks like latin-1"),
    ("utf16.csv", "prompt,answer\n1+1=,2\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
    ("ragged.csv", b"prompt,answer\n1+1=,2\n\"2+2=,4\n", "line 3: 1 fields, the header has 2"),
    ("headonly.csv", b"prompt,answer\n", "a header but no rows"),
    ("broken.json", b'[{"prompt": "1+1="},]', "malformed JSON at line 1"),
    ("empty.json", b"[]", "no rows"),
    ("junk.parquet", b"not parquet at all", "is not a readable parquet file"),
])
def test_each_bad_file_is_named_with_its_cause(tmp_path: Path, name: str, data: bytes, expected: str) -> None:
    path = make(tmp_path, name, data)
    problem = data_file_problem(path)
    assert problem is not None and problem.startswith(f"{path}: ") and expected in problem, problem


def test_good_files_pass(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["1+1="], "answer": ["2"]}), tmp_path / "ok.parquet")
    files = [make(tmp_path, "ok.jsonl", (GOOD * 3).encode()),
             make(tmp_path, "ok.csv", "\ufeffprompt,answer\n\"a, b\",2\n".encode()),
             make(tmp_path, "ok.json", json.dumps({"data": [{"prompt": "x"}]}).encode()),
             make(tmp_path, "lines.json", (GOOD * 2).encode()),
             tmp_path / "ok.parquet"]
    assert [data_file_problem(f) for f in files] == [None] * len(files)
    assert "no column 'question'" in data_file_problem(tmp_path / "ok.parquet", "question")


def test_train_refuses_a_bad_file_before_the_model_loads(tmp_path: Path) -> None:
    bad = make(tmp_path, "bad.jsonl", (GOOD + "{oops\n").encode())
    out = subprocess.run(cli("train", "tiny-arithmetic", "--headless", "--output", str(tmp_path / "run"),
                             "--set", "dataset.task=null", "--set", f"dataset.path={bad}"),
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"grpo-tui: dataset.path: {bad}: line 2: malformed JSON " \
                                 "(Expecting property name enclosed in double quotes at column 2)"
    assert not (tmp_path / "run").exists()


def test_a_run_fails_on_a_bad_file_with_the_same_line_and_no_traceback(tmp_path: Path) -> None:
    bad = make(tmp_path, "bad.csv", "prompt,answer\n\"é\",1\n".encode("latin-1"))
    cfg = tiny_config(tmp_path, "dataset.task=null", f"dataset.path={bad}")
    trainer, events = train(cfg)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.traceback_path is None
    assert failed.error.startswith(f"dataset.path: {bad}: is not UTF-8 (byte 0xe9 on line 2")
    assert trainer.summary["steps"] == 0


def test_prompts_cut_by_max_prompt_length_are_told_once(tmp_path: Path) -> None:
    """max_prompt_length 3 cuts the tiny task's 7-token prompts: one warning says so (how many, the
    longest), not one per step."""
    from engine.run.events import LogEvent, RunFinished

    cfg = tiny_config(tmp_path, "max_steps=2", "max_prompt_length=3", "log_completions_groups=0")
    _, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished)
    told = [e for e in events if isinstance(e, LogEvent) and e.category == "data"]
    assert len(told) == 1 and "max_prompt_length 3 cut" in told[0].message and told[0].data["longest"] > 3

    cfg = tiny_config(tmp_path / "whole", "max_steps=1", "log_completions_groups=0")
    _, events = train(cfg, evaluate=False)
    assert not [e for e in events if isinstance(e, LogEvent) and e.category == "data"]
