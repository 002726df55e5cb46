"""Built-in Countdown task: reach a target number from given numbers with + − × ÷.

Each problem draws ``num_numbers`` numbers and builds the target from a random expression
over all of them, so every problem has a solution. The prompt asks for the reasoning in
<think> tags and the equation in <answer> tags (the R1-Zero / TinyZero recipe). The
verifier accepts an answer only if it uses every given number exactly once, nothing else
but + − × ÷ and parentheses, and evaluates to the target.
"""

from __future__ import annotations

import ast
import random
import re
from fractions import Fraction

PROMPT = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic "
    "arithmetic operations (+, -, *, /) and each number must be used exactly once. Show your "
    "work in <think> </think> tags. And return the final equation in <answer> </answer> tags, "
    "for example <answer> (1 + 2) / 3 </answer>."
)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ALLOWED = re.compile(r"^[\d+\-*/().\s]+$")
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integers it uses (ValueError if not allowed)."""
    if not _ALLOWED.match(expression):
        raise ValueError("only digits, + - * / and parentheses are allowed")
    numbers: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("division by zero")
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            numbers.append(node.value)
            return Fraction(node.value)
        raise ValueError("unsupported expression")

    return walk(ast.parse(expression.strip(), mode="eval")), numbers


class CountdownTask:
    """Countdown problems; difficulty set by how many numbers and how large they are."""

    name = "countdown"

    def __init__(self, num_numbers: int = 4, max_number: int = 99, max_target: int = 1000,
                 train_size: int = 20000, eval_size: int = 500, seed: int = 0) -> None:
        for key, value, low in (("num_numbers", num_numbers, 2), ("max_number", max_number, 2),
                                ("max_target", max_target, 1), ("train_size", train_size, 1),
                                ("eval_size", eval_size, 0), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"countdown: {key} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"countdown: {key} must be >= {low}, got {value}")
        if num_numbers > 6:
            raise ValueError(f"countdown: num_numbers must be at most 6, got {num_numbers}")
        self.num_numbers, self.max_number, self.max_target = num_numbers, max_number, max_target
        self._sizes, self._seed = (train_size, eval_size), seed
        self._train: list[dict] | None = None
        self._eval: list[dict] = []

    def _generate(self) -> None:
        """Draw the problems on first use (validating a preset builds the task but needs none)."""
        train_size, eval_size = self._sizes
        rng = random.Random(self._seed)
        problems, seen = [], set()
        attempts = 0
        while len(problems) < train_size + eval_size and attempts < 50 * (train_size + eval_size):
            attempts += 1
            problem = self._draw(rng)
            if problem is not None and problem[0] not in seen:
                seen.add(problem[0])
                problems.append(problem)
        self._eval = [self._example(p) for p in problems[:eval_size]]
        self._train = [self._example(p) for p in problems[eval_size:]]

    def _draw(self, rng: random.Random):
        nums = [rng.randint(1, self.max_number) for _ in range(self.num_numbers)]
        order = nums[:]
        rng.shuffle(order)
        value = Fraction(order[0])
        for n in order[1:]:
            op = rng.choice("+-*/")
            if op == "+":
                value += n
            elif op == "-":
                value = value - n if value - n > 0 else n - value
            elif op == "*":
                value *= n
            else:
                value = value / n if (value / n).denominator == 1 else value + n
        if value.denominator != 1 or not 1 <= value <= self.max_target:
            return None
        return (tuple(nums), int(value)), nums, int(value)

    @staticmethod
    def _example(problem) -> dict:
        _, nums, target = problem
        return {"prompt": PROMPT.format(nums=nums, target=target), "answer": str(target), "nums": nums, "target": target}

    def train_examples(self) -> list[dict]:
        if self._train is None:
            self._generate()
        return self._train

    def eval_examples(self) -> list[dict]:
        if self._train is None:
            self._generate()
        return self._eval

    def verify(self, completion: str, example: dict) -> float:
        found = _ANSWER.findall(completion)
        if not found:
            return 0.0
        try:
            value, used = evaluate(found[-1])
        except (ValueError, SyntaxError, RecursionError):
            return 0.0
        if sorted(used) != sorted(int(n) for n in example["nums"]):
            return 0.0
        return 1.0 if value == Fraction(int(example["target"])) else 0.0
