"""The sample search's query language and its streaming scan of samples.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo_tui.model.sample_search import Hit, QueryError, match_completion, parse_query, scan, snippet


def comp(text: str, reward=1.0, advantage=0.5, length=10, **extra) -> dict:
    return {"text": text, "reward": reward, "advantage": advantage, "length": length, **extra}


def write_samples(path: Path, steps: dict[int, list[list[dict]]], torn_tail: str = "") -> Path:
    lines = [json.dumps({"step": s, "groups": [{"prompt": f"p{s}", "completions": g} for g in groups]},
                        ensure_ascii=False) for s, groups in steps.items()]
    path.write_text("\n".join(lines) + "\n" + torn_tail, encoding="utf-8")
    return path


def test_filters_and_text_are_split_out_of_one_line() -> None:
    q = parse_query("reward>0.5 adv<0 len>=100 the answer  is")
    assert [str(c) for c in q.conditions] == ["reward>0.5", "advantage<0", "length>=100"]
    assert q.text == "the answer  is"
    q = parse_query("REWARD=1 Step!=3")
    assert [str(c) for c in q.conditions] == ["reward=1", "step!=3"] and q.pattern is None


def test_a_bad_query_says_why_in_one_line() -> None:
    for line, words in (("", "reward>0.5"), ("reward>abc", "expected a number"), ("/([/", "not a valid regex"),
                        ("  ", "reward>0.5")):
        with pytest.raises(QueryError) as err:
            parse_query(line)
        assert words in str(err.value) and "\n" not in str(err.value)


def test_filters_compare_reward_advantage_length() -> None:
    q = parse_query("reward>0.5 adv<0")
    assert match_completion(q, comp("x", reward=1.0, advantage=-0.2), 1) == ()
    assert match_completion(q, comp("x", reward=0.5, advantage=-0.2), 1) is None  # not strictly above
    assert match_completion(q, comp("x", reward=1.0, advantage=0.0), 1) is None
    # a range is two bounds on one field; a missing value matches no bound
    q = parse_query("len>=5 len<=8")
    assert [match_completion(q, comp("x", length=n), 1) for n in (4, 5, 8, 9)] == [None, (), (), None]
    assert match_completion(q, {"text": "x", "tokens": ["a"] * 6}, 1) == ()  # length from the tokens
    assert match_completion(parse_query("reward>=0"), comp("x", reward=None), 1) is None
    unscored = comp("x", reward=0.0, rewards={"accuracy": None})  # no reward function scored it
    assert match_completion(parse_query("reward<=0"), unscored, 1) is None


def test_text_is_smartcase_and_regex_goes_between_slashes() -> None:
    text = "So the Answer is 42.\nThe answer is 42."
    assert match_completion(parse_query("answer is"), comp(text), 1) == ((7, 16), (25, 34))
    assert match_completion(parse_query("Answer"), comp(text), 1) == ((7, 13),)  # a capital: case matters
    assert match_completion(parse_query(r"/\d+\./"), comp(text), 1) == ((17, 20), (35, 38))
    assert match_completion(parse_query("/^the/"), comp(text), 1) is None  # ^ is the text's start
    assert match_completion(parse_query("/a*/"), comp("bbb"), 1) is None  # empty matches are no hit
    assert match_completion(parse_query("answer reward<0"), comp(text), 1) is None


def test_scan_streams_every_step_and_finds_where_hits_are(tmp_path: Path) -> None:
    path = write_samples(tmp_path / "samples.jsonl", {
        1: [[comp("no"), comp("yes 42")], [comp("42 again", advantage=-1.0)]],
        2: [[comp("nothing")]],
        3: [[comp("naïve 42", length=300)]],
    }, torn_tail='{"step": 4, "groups": [{"completions": [{"text": "42"')
    per_line = list(scan(path, parse_query("42")))
    assert len(per_line) == 3  # one yield per complete line: the torn line waits
    hits = [h for line in per_line for h in line]
    assert hits == [Hit(1, 0, 1, ((4, 6),)), Hit(1, 1, 0, ((0, 2),)), Hit(3, 0, 0, ((6, 8),))]
    assert [h.step for line in scan(path, parse_query("42 adv<0 ")) for h in line] == [1]
    assert [h.step for line in scan(path, parse_query("len>100")) for h in line] == [3]
    assert [h.step for line in scan(path, parse_query("NAÏVE")) for h in line] == []
    assert [h.step for line in scan(path, parse_query("naïve")) for h in line] == [3]
    assert [h.step for line in scan(path, parse_query("42 step>=2")) for h in line] == [3]
    assert sum(len(line) for line in scan(path, parse_query("/\\w/"), max_hits=2)) == 2
    assert list(scan(tmp_path / "missing.jsonl", parse_query("42"))) == []


def test_escaped_text_is_found_though_the_file_holds_it_escaped(tmp_path: Path) -> None:
    path = write_samples(tmp_path / "samples.jsonl", {5: [[comp('say "hi"\n\tok\\')]]})
    assert [h.spans for line in scan(path, parse_query('"hi"')) for h in line] == [((4, 8),)]
    assert [h.spans for line in scan(path, parse_query("/\\\\$/")) for h in line] == [((12, 13),)]


def test_snippet_shows_context_on_one_line() -> None:
    text = "x" * 50 + "MATCH" + "\ny" * 30
    before, match, after = snippet(text, (50, 55), context=10)
    assert (before, match, after) == ("…" + "x" * 10, "MATCH", "⏎y⏎y⏎y⏎y⏎y…")
    assert snippet("ab", (0, 1)) == ("", "a", "b")
