"""The built-in Countdown task: every problem is solvable and the verifier is strict."""

import pytest

from engine.data.tasks import get_task
from engine.data.tasks.countdown import evaluate


def test_problems_are_deterministic_and_disjoint():
    a = get_task("countdown", train_size=200, eval_size=50)
    b = get_task("countdown", train_size=200, eval_size=50)
    assert a.train_examples() == b.train_examples()
    keys = lambda ex: {(tuple(e["nums"]), e["target"]) for e in ex}  # noqa: E731
    assert not keys(a.train_examples()) & keys(a.eval_examples())
    assert len(a.eval_examples()) == 50
    ex = a.train_examples()[0]
    assert str(ex["target"]) in ex["prompt"] and "<answer>" in ex["prompt"]


def test_verifier():
    task = get_task("countdown", num_numbers=3, train_size=10, eval_size=0)
    ex = {"nums": [3, 5, 7], "target": 22}
    assert task.verify("<think>5*3=15, +7</think><answer> 5 * 3 + 7 </answer>", ex) == 1.0
    assert task.verify("<answer>(7 + 5) * 3 - 14</answer>", ex) == 0.0  # 14 is not given
    assert task.verify("<answer>5 * 3 + 7 + 0</answer>", ex) == 0.0
    assert task.verify("<answer>5*3</answer>", ex) == 0.0  # 7 unused, wrong value
    assert task.verify("<answer>__import__('os')</answer>", ex) == 0.0
    assert task.verify("5 * 3 + 7", ex) == 0.0  # no answer tags


def test_evaluate_is_exact():
    value, used = evaluate("(1 + 2) / 3")
    assert value == 1 and used == [1, 2, 3]
    with pytest.raises(ValueError):
        evaluate("2 ** 8")
    with pytest.raises(ValueError):
        evaluate("1 / 0")


def test_bad_options():
    with pytest.raises(ValueError):
        get_task("countdown", num_numbers=1)
    with pytest.raises(TypeError):
        get_task("countdown", num_numbrs=3)
