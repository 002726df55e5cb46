"""The built-in task registry and the arithmetic task: splits, answers, verifier, option checks."""

from __future__ import annotations

import random
import re

import pytest

from engine.data.tasks import ArithmeticTask, Task, get_task, task_names


def _reference_splits() -> dict[str, list[tuple[int, int]]]:
    """The reference benchmark's enumeration, written out independently of the task code."""
    probs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(0).shuffle(probs)
    return {"eval": probs[:500], "dev": probs[500:1000], "train": probs[1000:]}


def _as_pairs(examples: list[dict]) -> list[tuple[str, str]]:
    return [(ex["prompt"], ex["answer"]) for ex in examples]


def _python_value(prompt: str) -> int:
    """Evaluate "07*12=" with Python (leading zeros dropped: "07" is not a Python literal)."""
    assert prompt.endswith("=")
    return eval(re.sub(r"\b0+(?=\d)", "", prompt[:-1]))


@pytest.fixture(scope="module")
def default_task() -> ArithmeticTask:
    return get_task("arithmetic")


# ------------------------------------------------------------------ registry

def test_registry_lists_and_builds_arithmetic(default_task):
    assert "arithmetic" in task_names()
    assert isinstance(default_task, Task)
    assert default_task.name == "arithmetic"


def test_unknown_task_name_lists_known_names():
    with pytest.raises(KeyError, match="arithmetic"):
        get_task("arithmetc")


# ------------------------------------------------------------------ default split

def test_default_splits_equal_reference_enumeration(default_task):
    ref = _reference_splits()
    for split, examples in [
        ("eval", default_task.eval_examples()),
        ("dev", default_task.dev_examples()),
        ("train", default_task.train_examples()),
    ]:
        expected = [(f"{a:02d}+{b:02d}=", str(a + b)) for a, b in ref[split]]
        assert _as_pairs(examples) == expected, split


def test_default_example_shape(default_task):
    ex = default_task.eval_examples()[0]
    assert ex == {"prompt": "97+70=", "answer": "167"}
    assert {len(e["prompt"]) for e in default_task.train_examples()} == {6}


@pytest.mark.parametrize(
    "args",
    [{}, {"digits": 1}, {"digits": 3, "ops": "+-*"}, {"num_terms": 3, "ops": "-"}, {"dev_size": 0}],
)
def test_splits_are_disjoint(args):
    task = get_task("arithmetic", **args)
    ev = {e["prompt"] for e in task.eval_examples()}
    dev = {e["prompt"] for e in task.dev_examples()}
    train = {e["prompt"] for e in task.train_examples()}
    assert ev and train
    assert len(ev) == len(task.eval_examples())  # no duplicates inside a split either
    assert len(train) == len(task.train_examples())
    assert not ev & train
    assert not ev & dev
    assert not dev & train


def test_dev_size_zero_returns_dev_to_the_train_pool():
    task = get_task("arithmetic", dev_size=0)
    ref = _reference_splits()
    assert task.dev_examples() == []
    assert len(task.train_examples()) == 9500
    assert [e["prompt"] for e in task.eval_examples()] == [f"{a:02d}+{b:02d}=" for a, b in ref["eval"]]


def test_same_arguments_same_examples_other_seed_other_order():
    a = get_task("arithmetic", digits=3, ops="+-")
    b = get_task("arithmetic", digits=3, ops="+-")
    c = get_task("arithmetic", digits=3, ops="+-", seed=1)
    assert a.eval_examples() == b.eval_examples()
    assert a.train_examples() == b.train_examples()
    assert a.eval_examples() != c.eval_examples()


def test_small_space_shrinks_default_held_out_splits():
    task = get_task("arithmetic", digits=1)  # only 100 problems
    assert len(task.eval_examples()) == 10
    assert len(task.dev_examples()) == 10
    assert len(task.train_examples()) == 80


# ------------------------------------------------------------------ verifier

def test_verify_right_wrong_and_whitespace(default_task):
    ex = {"prompt": "12+34=", "answer": "46"}
    assert default_task.verify("46", ex) == 1.0
    assert default_task.verify(" 46\n", ex) == 1.0
    assert default_task.verify("47", ex) == 0.0
    assert default_task.verify("4 6", ex) == 0.0
    assert default_task.verify("46=", ex) == 0.0
    assert default_task.verify("046", ex) == 0.0
    assert default_task.verify("", ex) == 0.0
    assert default_task.verify("-5", {"prompt": "03-08=", "answer": "-5"}) == 1.0


def test_verify_accepts_every_example_own_answer(default_task):
    for ex in default_task.eval_examples():
        assert default_task.verify(ex["answer"], ex) == 1.0


# ------------------------------------------------------------------ difficulty settings

@pytest.mark.parametrize(
    "args",
    [
        {"digits": 3},
        {"digits": 2, "ops": "-"},
        {"digits": 2, "ops": "*"},
        {"digits": 2, "ops": "+-*"},
        {"digits": 1, "num_terms": 3, "ops": "+-*"},
        {"digits": 2, "num_terms": 3, "ops": "-*"},
        {"digits": 4, "ops": "*", "num_terms": 3},
        {"digits": 2, "ops": "-", "zero_pad": False},
    ],
)
def test_answers_match_python(args):
    task = get_task("arithmetic", **args)
    ops = args.get("ops", "+")
    terms = args.get("num_terms", 2)
    seen_ops = set()
    for ex in task.eval_examples() + task.train_examples()[:2000]:
        assert ex["answer"] == str(_python_value(ex["prompt"])), ex
        used = set(re.findall(r"[-+*]", ex["prompt"]))
        assert len(used) == 1 and used <= set(ops), ex  # one operator per problem
        assert len(re.findall(r"\d+", ex["prompt"])) == terms
        seen_ops |= used
    assert seen_ops == set(ops)  # every requested operator shows up


def test_zero_pad_controls_prompt_width():
    padded = get_task("arithmetic", digits=3)
    assert {len(e["prompt"]) for e in padded.eval_examples()} == {8}  # "AAA+BBB="
    plain = get_task("arithmetic", digits=3, zero_pad=False)
    assert all(not re.search(r"\b0\d", e["prompt"]) for e in plain.eval_examples())
    assert len({len(e["prompt"]) for e in plain.eval_examples()}) > 1


def test_subtraction_gives_negative_answers():
    task = get_task("arithmetic", ops="-")
    answers = [int(e["answer"]) for e in task.eval_examples()]
    assert min(answers) < 0 < max(answers)


def test_ops_as_a_list_is_accepted():
    assert get_task("arithmetic", ops=["+", "-"]).eval_examples() == get_task("arithmetic", ops="+-").eval_examples()


# ------------------------------------------------------------------ option checks

@pytest.mark.parametrize(
    ("args", "error", "needle"),
    [
        ({"digit": 2}, TypeError, "did you mean 'digits'"),
        ({"num_term": 3}, TypeError, "num_terms"),
        ({"colour": "red"}, TypeError, "unknown task option 'colour'"),
        ({"digits": 0}, ValueError, "digits"),
        ({"digits": 5}, ValueError, "digits"),
        ({"digits": "2"}, TypeError, "digits must be an integer"),
        ({"digits": 2.0}, TypeError, "digits"),
        ({"digits": True}, TypeError, "digits"),
        ({"ops": "/"}, ValueError, "ops"),
        ({"ops": ""}, ValueError, "ops"),
        ({"ops": "++"}, ValueError, "repeat"),
        ({"ops": 3}, TypeError, "ops"),
        ({"num_terms": 1}, ValueError, "num_terms"),
        ({"num_terms": 4}, ValueError, "num_terms"),
        ({"zero_pad": "yes"}, TypeError, "zero_pad"),
        ({"eval_size": 0}, ValueError, "eval_size"),
        ({"eval_size": -3}, ValueError, "eval_size"),
        ({"dev_size": -1}, ValueError, "dev_size"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"digits": 1, "eval_size": 60, "dev_size": 40}, ValueError, "only 100 distinct problems"),
        ({"digits": 2, "eval_size": 10_000}, ValueError, "eval_size"),
    ],
)
def test_bad_task_args_raise_clearly(args, error, needle):
    with pytest.raises(error, match=re.escape(needle)):
        get_task("arithmetic", **args)
