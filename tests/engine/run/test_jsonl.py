"""Reading run-directory JSON lines while a writer may be mid-line: whole, tail, follow."""

from __future__ import annotations

import json
import math

from engine.run.jsonl import JsonlTail, dumps, read_jsonl, tail_jsonl


def _write(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def test_lines_are_compact_objects_with_null_for_non_finite_floats():
    line = dumps({"step": 1, "reward": math.nan, "g": [math.inf, 0.5], "w": "é"})
    assert line == '{"step":1,"reward":null,"g":[null,0.5],"w":"é"}' and json.loads(line)["reward"] is None


def test_whole_file_skips_corrupt_lines_and_the_unfinished_last_one(tmp_path):
    path = tmp_path / "m.jsonl"
    assert read_jsonl(path) == []  # not written yet
    _write(path, '{"step": 1}\nnot json\n[1, 2]\n{"step": 2}\n{"step": 3, "rew')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    _write(path, 'ard": 0.5}\n')
    assert read_jsonl(path)[-1] == {"step": 3, "reward": 0.5}


def test_tail_reads_only_the_last_bytes_and_drops_the_cut_first_line(tmp_path):
    path = tmp_path / "m.jsonl"
    _write(path, "".join(dumps({"step": i, "pad": "x" * 20}) + "\n" for i in range(100)))
    _write(path, '{"step": 100')  # being written
    tail = tail_jsonl(path, 200)
    assert tail and tail[-1]["step"] == 99 and all(r["step"] > 90 for r in tail)
    assert [r["step"] for r in tail_jsonl(path, 10**6)] == list(range(100))  # the whole file fits
    assert tail_jsonl(tmp_path / "missing.jsonl", 200) == []


def test_follow_returns_each_line_once_when_complete(tmp_path):
    path = tmp_path / "e.jsonl"
    follow = JsonlTail(path)
    assert follow.read_new() == []  # no file yet
    _write(path, '{"step": 1}\n{"step": 2')
    assert follow.read_new() == [{"step": 1}]
    assert follow.read_new() == []
    _write(path, '}\nbroken\n{"step": 3}\n')
    assert follow.read_new() == [{"step": 2}, {"step": 3}]


def test_follow_gives_the_offset_each_line_starts_at(tmp_path):
    path = tmp_path / "s.jsonl"
    _write(path, '{"step": 1}\n{"step": 22}\n')
    follow = JsonlTail(path)
    lines = follow.read_lines()
    assert lines == [(0, b'{"step": 1}'), (12, b'{"step": 22}')]
    _write(path, '{"step": 3}\n')
    assert follow.read_lines() == [(25, b'{"step": 3}')]
    with open(path, "rb") as f:
        f.seek(25)
        assert f.readline() == b'{"step": 3}\n'
