"""Reward functions: built-ins, plugins, and the safety net around scoring."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest
import torch

from engine.rewards.scoring import (
    RewardBatch,
    RewardFunction,
    RewardSpecError,
    build_reward_funcs,
    builtin_reward_names,
    check_reward_kwargs,
    check_reward_spec,
    completion_text,
    describe,
    score,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TOY = FIXTURES / "toy_rewards.py"


def call(name: str, completions, **kwargs) -> list:
    """Build one built-in and call it the way score() does."""
    options = kwargs.pop("options", None)
    (func,) = build_reward_funcs(
        [name],
        task=kwargs.pop("task", None),
        reward_kwargs={name: options} if options else None,
        max_completion_length=kwargs.pop("max_completion_length", None),
    )
    prompts = kwargs.pop("prompts", ["p"] * len(completions))
    return func.fn(prompts=prompts, completions=completions, **kwargs)


def run_score(funcs, completions, weights=None, **columns) -> RewardBatch:
    return score(
        funcs,
        weights,
        prompts=["p"] * len(completions),
        completions=completions,
        columns=columns,
        completion_ids=[[1] * len(c) for c in completions],
        step=3,
    )


def test_builtin_names():
    assert builtin_reward_names() == ["accuracy", "answer_accuracy", "format", "tag_count", "reasoning_steps", "len",
                                      "cosine", "repetition_penalty", "soft_overlong_punishment", "length"]
    for name in builtin_reward_names():
        assert check_reward_spec(name) is None


# ----------------------------------------------------------------- accuracy


class FakeTask:
    """Task-like: exact match on the answer; records the examples it saw."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def verify(self, completion: str, example: dict) -> float:
        self.seen.append(example)
        return 1.0 if completion.strip() == example["answer"] else 0.0


def test_accuracy_uses_task_verifier():
    task = FakeTask()
    out = call(
        "accuracy",
        ["46", " 46\n", "45"],
        task=task,
        prompts=["12+34="] * 3,
        answer=["46"] * 3,
        completion_ids=[[1], [2], [3]],
        step=0,
    )
    assert out == [1.0, 1.0, 0.0]
    assert task.seen[0] == {"prompt": "12+34=", "answer": "46"}


def test_accuracy_task_on_conversational_data():
    task = FakeTask()
    prompts = [[{"role": "user", "content": "1+1="}]] * 2
    completions = [[{"role": "assistant", "content": "2"}], [{"role": "assistant", "content": "3"}]]
    out = call("accuracy", completions, task=task, prompts=prompts, answer=["2", "2"])
    assert out == [1.0, 0.0]
    assert task.seen[0]["prompt"] == prompts[0]


def test_answer_accuracy_math_verify():
    completions = [
        "<think>half</think><answer>0.5</answer>",  # answer tag, numeric equal to \frac{1}{2}
        "<answer>1/3</answer>",
        "so the result is \\boxed{41} no wait \\boxed{42}",  # last boxed wins
        "\\boxed{42}",
        "The answer is 42",  # whole text
        "no number here",
        "<answer>\\frac{2}{4}</answer>",
    ]
    gold = ["\\frac{1}{2}", "\\frac{1}{2}", "42", "42", "42", "42", "0.5"]
    out = call("answer_accuracy", completions, answer=gold)
    assert out == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]


def test_answer_accuracy_math_verify_solution_column_and_unparseable_gold():
    completions = ["\\boxed{\\sqrt{2}}", "<answer>7</answer>", "<answer>x</answer>"]
    out = call("answer_accuracy", completions, solution=["\\sqrt{2}", "not a number", ""])
    assert out == [1.0, None, None]


def test_answer_accuracy_math_verify_conversational():
    completions = [[{"role": "assistant", "content": "<answer>42</answer>"}]]
    assert call("answer_accuracy", completions, answer=[42]) == [1.0]


def test_answer_accuracy_math_verify_off_the_main_thread():
    """The engine scores on a background thread: math-verify's signal timeouts must stay off."""
    (func,) = build_reward_funcs(["answer_accuracy"])
    result: dict = {}

    def work() -> None:
        completions = ["<answer>0.5</answer>", "\\boxed{3}"]
        result["batch"] = run_score([func], completions, answer=["1/2", "4"])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    batch = result["batch"]
    assert batch.errors == []
    assert batch.per_func[:, 0].tolist() == [1.0, 0.0]


def test_answer_accuracy_without_gold_column_is_a_batch_error():
    (func,) = build_reward_funcs(["answer_accuracy"])
    batch = run_score([func], ["42"], question=["q"])
    assert batch.errors[0][0] == "answer_accuracy"
    assert "'answer' or 'solution'" in batch.errors[0][1]
    assert math.isnan(batch.per_func[0, 0])


# ----------------------------------------------------------------- format / tag_count


def test_format_default_pattern():
    """open-r1's format_reward: each tag on its own line, matched from the start (re.match with
    MULTILINE, so text after the answer block's line end is allowed, as there)."""
    completions = [
        "<think>\na\nb\n</think>\n<answer>\n3\n</answer>",
        "<think>a</think><answer>3</answer>",  # tags not on lines of their own
        "  <think>\na\n</think>\n<answer>\n3\n</answer>",  # not at the start
        "<think>\na\n</think>\n<answer>\n3\n</answer>\nP.S.",
        "<answer>\n3\n</answer>",
        [{"role": "assistant", "content": "<think>\nx\n</think>\n<answer>\ny\n</answer>"}],
    ]
    assert call("format", completions) == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def test_format_custom_pattern_is_a_full_match():
    out = call("format", ["42", "x42", "4"], options={"pattern": r"\d\d"})
    assert out == [1.0, 0.0, 0.0]


def test_format_invalid_regex_fails_at_build():
    with pytest.raises(ValueError, match="format.pattern: invalid regex"):
        build_reward_funcs(["format"], reward_kwargs={"format": {"pattern": "("}})


def test_tag_count():
    perfect = "<think>\nreasoning\n</think>\n<answer>\n3\n</answer>"
    assert call("tag_count", [perfect]) == [1.0]
    assert call("tag_count", ["nothing"]) == [0.0]
    assert call("tag_count", ["<think>\nx\n</think>\n"]) == [0.5]
    # duplicated <think>\n earns nothing for that tag
    assert call("tag_count", ["<think>\n<think>\nx\n</think>\n<answer>\n3\n</answer>"]) == [0.75]


# ----------------------------------------------------------------- length


def test_length_soft_overlong_boundaries():
    # max_length 20, cache 4: free up to 16, then -1/4 per token, -1 at 20 and beyond
    lengths = [0, 16, 17, 18, 20, 21]
    ids = [[0] * n for n in lengths]
    options = {"max_length": 20, "cache_length": 4}
    out = call("length", ["x"] * len(ids), completion_ids=ids, options=options)
    assert out == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]


def test_length_defaults_from_max_completion_length():
    ids = [[0] * n for n in (6, 7, 8)]  # max 8, cache 8 // 4 == 2: free up to 6
    out = call("length", ["x"] * 3, completion_ids=ids, max_completion_length=8)
    assert out == [0.0, -0.5, -1.0]


def test_length_option_errors():
    with pytest.raises(ValueError, match="max_length"):
        build_reward_funcs(["length"])  # no max_completion_length and no max_length
    with pytest.raises(ValueError, match="cache_length"):
        options = {"length": {"max_length": 4, "cache_length": 9}}
        build_reward_funcs(["length"], reward_kwargs=options)


def test_unknown_builtin_option():
    expected = r"reward_kwargs.format: unknown option 'patern' \(did you mean 'pattern'"
    with pytest.raises(ValueError, match=expected):
        build_reward_funcs(["format"], reward_kwargs={"format": {"patern": "x"}})
    with pytest.raises(ValueError, match="reward_kwargs.my_fn: options are only for built-in"):
        build_reward_funcs(["format"], reward_kwargs={"my_fn": {}})


def test_check_reward_kwargs_lists_every_problem():
    problems = check_reward_kwargs(
        {"format": {"pattern": "(", "x": 1}, "length": {"cache_length": -1}, "nope": {}},
        max_completion_length=8,
    )
    assert problems == [
        "reward_kwargs.format: unknown option 'x' (options: pattern)",
        "reward_kwargs.length.cache_length: expected an integer in [0, 8], got -1",
        "reward_kwargs.nope: options are only for built-in rewards "
        "(accuracy, answer_accuracy, format, tag_count, reasoning_steps, len, cosine, repetition_penalty, "
        "soft_overlong_punishment, length)",
    ]
    assert check_reward_kwargs({"format": {"pattern": "("}}) == [
        "reward_kwargs.format.pattern: invalid regex: "
        "missing ), unterminated subpattern at position 0"
    ]
    assert check_reward_kwargs(None) == []


# ----------------------------------------------------------------- score: weights, None, errors


def constant(values):
    def fn(prompts, completions, **kwargs):
        return list(values)

    return fn


def test_score_weights_and_none_handling():
    funcs = [
        RewardFunction("a", constant([1.0, None, 0.5, None])),
        RewardFunction("b", constant([2.0, 4.0, None, None])),
    ]
    batch = run_score(funcs, ["w", "x", "y", "z"], weights=[0.5, 2.0])
    assert batch.per_func.shape == (4, 2) and batch.per_func.dtype == torch.float32
    assert math.isnan(batch.per_func[1, 0]) and math.isnan(batch.per_func[2, 1])
    # row 0: 0.5*1 + 2*2 = 4.5; row 1: None ignored -> 2*4 = 8; row 2: 0.5*0.5; row 3: all None -> 0
    assert batch.total.tolist() == [4.5, 8.0, 0.25, 0.0]
    assert batch.all_none_rows == 1
    assert batch.errors == []


def test_score_default_weights_are_one():
    funcs = [RewardFunction("a", constant([1.0, 2.0])), RewardFunction("b", constant([3, True]))]
    batch = run_score(funcs, ["x", "y"])
    assert batch.total.tolist() == [4.0, 3.0]


def test_score_rejects_weight_count_mismatch():
    with pytest.raises(ValueError, match="reward_weights"):
        run_score([RewardFunction("a", constant([1.0]))], ["x"], weights=[1.0, 2.0])


def test_score_passes_columns_step_and_ids_as_keywords():
    funcs = build_reward_funcs([f"{TOY}:echo_step"])
    batch = run_score(funcs, ["a", "b"], answer=["1", "2"])
    assert batch.errors == []
    assert batch.total.tolist() == [3.0, 3.0]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("always_raises", "ZeroDivisionError: boom (toy_rewards.py:"),
        ("wrong_length", "ValueError: returned 2 values for 3 completions"),
        ("returns_strings", "TypeError: returned str at index 0, expected float or None"),
        ("returns_inf", "ValueError: returned inf at index 1"),
    ],
)
def test_failing_plugin_gives_nan_column_and_error(function, expected):
    funcs = build_reward_funcs(["format", f"{TOY}:{function}", f"{TOY}:contains_seven"])
    batch = run_score(funcs, ["<think>\na\n</think>\n<answer>\n7\n</answer>", "no", "7"])
    assert len(batch.errors) == 1
    name, message = batch.errors[0]
    assert name == function
    assert message.startswith(expected)
    assert "\n" not in message
    assert torch.isnan(batch.per_func[:, 1]).all()
    # the other columns are intact and the totals ignore the failed one
    assert batch.per_func[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert batch.per_func[:, 2].tolist() == [1.0, 0.0, 1.0]
    assert batch.total.tolist() == [2.0, 0.0, 1.0]
    assert batch.all_none_rows == 0


def test_nan_is_read_as_none():
    funcs = build_reward_funcs([f"{TOY}:returns_nan", f"{TOY}:odd_rows_only"])
    batch = run_score(funcs, ["a", "b", "c"])
    assert batch.errors == []
    assert batch.total.tolist() == [0.0, 3.0, 2.0]
    assert batch.all_none_rows == 1


def test_a_function_returning_a_scalar_is_an_error():
    batch = run_score([RewardFunction("s", lambda prompts, completions, **kw: 1.0)], ["a"])
    assert batch.errors == [("s", "TypeError: returned float, expected a list of 1 floats")]


# ----------------------------------------------------------------- plugins


def test_plugin_by_module_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    assert check_reward_spec("toy_rewards:contains_seven") is None
    (func,) = build_reward_funcs(["toy_rewards:contains_seven"])
    assert func.name == "contains_seven" and func.spec == "toy_rewards:contains_seven"
    assert func.fn(prompts=["p", "p"], completions=["17", "x"]) == [1.0, 0.0]


def test_plugin_by_file_path_absolute_and_relative(monkeypatch):
    assert check_reward_spec(f"{TOY}:contains_seven") is None
    monkeypatch.chdir(FIXTURES.parent)
    funcs = build_reward_funcs(["fixtures/toy_rewards.py:contains_seven", "format"])
    assert [f.name for f in funcs] == ["contains_seven", "format"]
    assert funcs[0].fn(prompts=["p"], completions=["7"]) == [1.0]


def test_plugin_module_name_falls_back_to_file_in_cwd(monkeypatch, tmp_path):
    (tmp_path / "cwd_only_rewards.py").write_text(
        "def one(prompts, completions, **kwargs):\n    return [1.0] * len(completions)\n"
    )
    monkeypatch.chdir(tmp_path)
    assert check_reward_spec("cwd_only_rewards:one") is None


def test_plugin_file_may_import_a_module_next_to_it(tmp_path):
    (tmp_path / "reward_sibling_xyz.py").write_text("BONUS = 5.0\n")
    (tmp_path / "with_sibling.py").write_text(
        "from reward_sibling_xyz import BONUS\n"
        "def bonus(prompts, completions, **kwargs):\n    return [BONUS] * len(completions)\n"
    )
    (func,) = build_reward_funcs([f"{tmp_path}/with_sibling.py:bonus"])
    assert func.fn(prompts=["p"], completions=["c"]) == [5.0]


def test_duplicate_names_are_made_unique():
    funcs = build_reward_funcs(["format", "format", f"{TOY}:contains_seven"])
    assert [f.name for f in funcs] == ["format", "format_2", "contains_seven"]


def test_callables_are_accepted():
    (func,) = build_reward_funcs([constant([1.0])])
    assert func.name == "fn"


def test_check_reward_spec_missing_file(tmp_path):
    message = check_reward_spec(f"{tmp_path}/my_rewards.py:acc")
    assert message.startswith(f"reward plugin '{tmp_path}/my_rewards.py:acc': file not found")


def test_check_reward_spec_missing_function(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "import os\n"
        "def f1(prompts, completions, **kwargs):\n    return []\n"
        "def f2(prompts, completions, **kwargs):\n    return []\n"
    )
    message = check_reward_spec(f"{path}:acc")
    assert message == (
        f"reward plugin '{path}:acc': 'acc' is not defined in my_rewards.py (found: f1, f2)"
    )


def test_check_reward_spec_import_error():
    message = check_reward_spec("no_such_module_xyz.sub:acc")
    assert message == (
        "reward plugin 'no_such_module_xyz.sub:acc': module 'no_such_module_xyz.sub' could not be "
        "imported: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )


def test_check_reward_spec_error_while_loading_file(tmp_path):
    """Validation runs none of the plugin's code, so a failing import inside it is found when
    the run builds its reward functions, in one line."""
    path = tmp_path / "broken.py"
    path.write_text("x = 1\nimport no_such_module_xyz\ndef f(prompts, completions, **kwargs):\n    return []\n")
    assert check_reward_spec(f"{path}:f") is None
    with pytest.raises(RewardSpecError) as info:
        build_reward_funcs([f"{path}:f"])
    expected = "broken.py could not be loaded: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_validating_a_plugin_runs_none_of_its_code(tmp_path, monkeypatch):
    from engine.config.presets import find_presets, load_preset

    marker = tmp_path / "ran"
    plugin = tmp_path / "presets" / "helpers.py"
    plugin.parent.mkdir()
    plugin.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef fn(prompts, completions, **kwargs):\n"
                      "    return [0.0] * len(completions)\n")
    preset = tmp_path / "presets" / "x.yaml"
    preset.write_text("model_name_or_path: assets/tiny-model\nreward_funcs: ['helpers.py:fn']\n")
    assert check_reward_spec(f"{plugin}:fn") is None
    load_preset(str(preset), check_paths=True)
    monkeypatch.chdir(tmp_path)  # ./presets/ is where the launcher looks
    info = next(p for p in find_presets() if p.name == "x")
    assert info.ok, info.problems
    assert not marker.exists(), "validation ran the plugin's code"
    (func,) = build_reward_funcs([f"{plugin}:fn"])  # starting a run does
    assert marker.exists() and func.fn(prompts=["p"], completions=["c"]) == [0.0]
    assert "'gone' is not defined in helpers.py (found: fn)" in check_reward_spec(f"{plugin}:gone")


def test_check_reward_spec_syntax_error(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def ok(prompts, completions, **kwargs):\n    return []\n\ndef f(:\n    pass\n")
    message = check_reward_spec(f"{path}:f")
    assert message.startswith(f"reward plugin '{path}:f': SyntaxError in bad.py line 4")
    with pytest.raises(RewardSpecError, match="SyntaxError in bad.py line 4") as info:
        build_reward_funcs([f"{path}:f"])
    assert isinstance(info.value, ValueError)


def test_check_reward_spec_other_problems():
    message = check_reward_spec("acuracy")
    assert "unknown reward function 'acuracy' (did you mean 'accuracy'?)" in message
    assert "expected module:function" in check_reward_spec("toy_rewards:")
    assert "is not callable" in check_reward_spec(f"{TOY}:NOT_CALLABLE")
    assert "takes no **kwargs; every call passes prompts, completions, completion_ids, trainer_state" in check_reward_spec(f"{TOY}:no_kwargs")


def test_edited_plugin_file_is_reloaded(tmp_path):
    path = tmp_path / "live.py"
    path.write_text("def r(prompts, completions, **kwargs):\n    return [1.0]\n")
    (first,) = build_reward_funcs([f"{path}:r"])
    path.write_text("def r(prompts, completions, **kwargs):\n    return [2.0, 2.0]\n")
    (second,) = build_reward_funcs([f"{path}:r"])
    assert first.fn(prompts=[], completions=[]) == [1.0]
    assert second.fn(prompts=[], completions=[]) == [2.0, 2.0]


# ----------------------------------------------------------------- describe, completion_text


def test_describe():
    assert describe("format").startswith("1.0 when the completion matches")
    funcs = build_reward_funcs(["tag_count", f"{TOY}:contains_seven"])
    assert describe(funcs[0]).startswith("0.25 for each")
    assert describe(funcs[1]) == "1.0 when the completion contains a 7."
    assert describe(lambda prompts, completions, **kw: []) == "<lambda>"


def test_completion_text():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "xyz"}]) == "xyz"
    assert completion_text([]) == ""


def test_answer_accuracy_reads_gsm8k_final_answer():
    from engine.rewards.scoring import build_reward_funcs, score

    funcs = build_reward_funcs(["answer_accuracy"])
    gold = "Natalia sold 48/2 = 24 clips in May.\n#### 72"
    batch = score(funcs, None, ["q", "q"], ["<answer>72</answer>", "<answer>24</answer>"],
                  {"answer": [gold, gold]}, [[1], [1]], 0)
    assert batch.per_func[:, 0].tolist() == [1.0, 0.0]


def test_plugin_check_worked_examples():
    import doctest

    import engine.rewards.plugin_check as plugin_check

    failed, tried = doctest.testmod(plugin_check, verbose=False)
    assert tried >= 3 and failed == 0
