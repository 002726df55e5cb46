"""Built-ins named like open-r1's rewards score like open-r1's on the same completions (the
values below follow open-r1's definitions by hand); the built-in tasks keep their verifiers
and ``answer_accuracy`` keeps the lenient reading the bundled GSM8K presets ask for."""

from __future__ import annotations

import math

import pytest

from engine.rewards.scoring import build_reward_funcs


def call(name: str, completions, options=None, **columns) -> list:
    (func,) = build_reward_funcs([name], reward_kwargs={name: options} if options else None,
                                 max_completion_length=columns.pop("max_completion_length", None))
    return func.fn(prompts=["p"] * len(completions), completions=completions, **columns)


def test_accuracy_wants_latex_as_open_r1_does():
    """A bare number is no answer to open-r1's accuracy (try_extract_without_anchor=False);
    \\boxed{} and "the answer is $…$" are; a gold that does not parse leaves the row out (None)."""
    completions = ["124", "\\boxed{124}", "The answer is $124$.", "<answer>124</answer>", "\\boxed{125}", "\\boxed{1}"]
    solutions = ["124", "124", "$124$", "124", "124", "no gold here"]
    assert call("accuracy", completions, solution=solutions) == [0.0, 1.0, 1.0, 0.0, 0.0, None]
    # the lenient reading, by its own name
    assert call("answer_accuracy", completions[:5], solution=solutions[:5]) == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_reasoning_steps():
    """Markers "Step N:", a numbered first line, bullets, transition words; three make 1.0."""
    out = call("reasoning_steps", ["1. a\n- b\n* c\nFinally, d", "Step 1: x", "nothing"])
    assert out == [1.0, pytest.approx(1 / 3), 0.0]


def test_len_is_kimis_length_reward():
    """Lengths 10, 20, 30 characters → λ = .5, 0, −.5; right answers keep λ, wrong ones min(0, λ)."""
    completions = ["\\boxed{4}" + " " * 1, "\\boxed{5}" + " " * 11, "\\boxed{4}" + " " * 21]
    assert [len(c) for c in completions] == [10, 20, 30]
    assert call("len", completions, solution=["$4$"] * 3) == [0.5, 0.0, -0.5]
    assert call("len", ["\\boxed{5}" + " " * 1, "\\boxed{4}" + " " * 21], solution=["$4$"] * 2) == [0.0, -0.5]


def test_cosine_defaults_and_options():
    """Defaults (open-r1's): right and 10 characters → .5 + .25·(1 + cos(π·10/1000)) = .99988;
    wrong and 10 → −.5 + (−.25)·(1 + cos …)·(−1)... = −.5 + .5·(0 + .5)(1 + c) = −.00012."""
    c = math.cos(math.pi * 10 / 1000)
    out = call("cosine", ["\\boxed{4}" + " ", "\\boxed{5}" + " "], solution=["$4$", "$4$"])
    assert out == [pytest.approx(0.5 + 0.25 * (1 + c)), pytest.approx(-0.5 + 0.25 * (1 + c))]
    short = call("cosine", ["\\boxed{4}" + " "], options={"max_len": 20, "max_value_correct": 2.0}, solution=["$4$"])
    assert short == [pytest.approx(0.5 + 0.75 * (1 + math.cos(math.pi / 2)))]
    assert call("cosine", ["anything"], solution=["not maths"]) == [1.0]  # an unparseable gold scores 1.0 there


def test_repetition_penalty():
    """"a b a b a b": 4 trigrams, 2 distinct → −1·(1 − 2/4) = −.5; too short or empty → 0."""
    out = call("repetition_penalty", ["a b a b a b", "a b", "", "one two three four"])
    assert out == [-0.5, 0.0, 0.0, 0.0]
    assert call("repetition_penalty", ["a a a a"], options={"ngram_size": 1, "max_penalty": -2.0}) == [-1.5]
    with pytest.raises(ValueError, match="max_penalty: expected a number <= 0"):
        call("repetition_penalty", ["x"], options={"max_penalty": 1.0})


def test_soft_overlong_punishment_takes_open_r1s_option_names():
    """max_completion_len 10, soft_punish_cache 4: 0 up to 6 tokens, then (6 − n)/4, −1 past 10."""
    ids = [[0] * n for n in (6, 8, 10, 11)]
    out = call("soft_overlong_punishment", ["x"] * 4, options={"max_completion_len": 10, "soft_punish_cache": 4},
               completion_ids=ids)
    assert out == [0.0, -0.5, -1.0, -1.0]
    same = call("length", ["x"] * 4, options={"max_length": 10, "cache_length": 4}, completion_ids=ids)
    assert same == out
