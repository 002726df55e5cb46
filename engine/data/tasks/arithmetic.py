"""Built-in arithmetic task: synthetic "AA+BB=" problems with an exact-match verifier.

The default (2 digits, "+", 2 terms, seed 0) reproduces the reference benchmark's data
exactly, so accuracies measured here and there are comparable:

    probs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(0).shuffle(probs)
    eval  = probs[:500]        # held out: before/after accuracy
    dev   = probs[500:1000]    # held out: only used to stop the tiny model's warm-up SFT
    train = probs[1000:]       # the prompt pool for training

The dev split is kept out of `train_examples()` on purpose: the reference trains on
probs[1000:] only, and keeping the pools identical makes reward curves comparable.
Pass `dev_size=0` to fold it back into the training pool.

Difficulty is settable: operand width (`digits`), operators (`ops`, one operator per
problem, assigned round-robin over the shuffled order so every split gets a balanced
mix), and the number of operands (`num_terms`). Small problem spaces are enumerated
and shuffled; large ones are sampled without replacement from a seeded generator, so
the splits stay disjoint either way.
"""

from __future__ import annotations

import itertools
import operator
import random
from functools import reduce
from typing import Any, Callable

#: Problem spaces up to this many operand tuples are enumerated; larger ones are sampled.
ENUMERATE_LIMIT = 100_000
#: Size of the training pool when the problem space is sampled rather than enumerated.
SAMPLED_TRAIN_SIZE = 20_000
#: Default size of each held-out split (eval, dev); capped at a tenth of a small space.
DEFAULT_HELD_OUT = 500

_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Reject bools and non-ints with TypeError, out-of-range values with ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"arithmetic: {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"arithmetic: {name} must be {bounds}, got {value}")
    return value


def _check_ops(value: Any) -> str:
    """Accept "+-" or ["+", "-"] (YAML needs quotes around a bare "-", a list avoids that)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = "".join(value)
    if not isinstance(value, str):
        raise TypeError(f"arithmetic: ops must be a string of operators such as \"+-*\", got {value!r}")
    if not value:
        raise ValueError("arithmetic: ops must name at least one operator out of \"+-*\"")
    bad = sorted(set(value) - set(_OPS))
    if bad:
        raise ValueError(
            f"arithmetic: ops may only contain \"+\", \"-\" and \"*\", got {value!r} (unknown: {''.join(bad)!r})"
        )
    if len(set(value)) != len(value):
        raise ValueError(f"arithmetic: ops must not repeat an operator, got {value!r}")
    return value


class ArithmeticTask:
    """Integer arithmetic prompts ("12+34=") whose answer is the exact result ("46").

    Args:
        digits: operand width, 1-4; operands are drawn from 0 .. 10**digits - 1.
        ops: operators to use, any of "+", "-", "*"; each problem uses one of them.
        num_terms: operands per problem, 2 or 3 (evaluated left to right, one operator).
        zero_pad: pad operands to `digits` characters, so every prompt has the same
            length and batches need no padding.
        eval_size: held-out problems for evaluation (the first ones after shuffling).
            None: 500, or a tenth of the problem space when that is smaller (1 digit).
        dev_size: further held-out problems (model selection); not in the train pool.
            None: as eval_size. 0 puts them back into the train pool.
        seed: shuffle / sampling seed.
    """

    name = "arithmetic"

    def __init__(
        self,
        digits: int = 2,
        ops: str = "+",
        num_terms: int = 2,
        zero_pad: bool = True,
        eval_size: int | None = None,
        dev_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.digits = _check_int("digits", digits, 1, 4)
        self.ops = _check_ops(ops)
        self.num_terms = _check_int("num_terms", num_terms, 2, 3)
        if not isinstance(zero_pad, bool):
            raise TypeError(f"arithmetic: zero_pad must be true or false, got {zero_pad!r}")
        self.zero_pad = zero_pad
        default_held = min(DEFAULT_HELD_OUT, self.space_size // 10)
        self.eval_size = default_held if eval_size is None else _check_int("eval_size", eval_size, 1)
        self.dev_size = default_held if dev_size is None else _check_int("dev_size", dev_size, 0)
        self.seed = _check_int("seed", seed, 0)

        problems = self._problems()
        held = self.eval_size + self.dev_size
        self._eval = [self._example(i, p) for i, p in enumerate(problems[: self.eval_size])]
        self._dev = [self._example(i, p) for i, p in enumerate(problems[self.eval_size : held], self.eval_size)]
        self._train = [self._example(i, p) for i, p in enumerate(problems[held:], held)]

    # ---------------------------------------------------------------- problem space
    @property
    def space_size(self) -> int:
        """Number of distinct operand tuples."""
        return (10**self.digits) ** self.num_terms

    def _problems(self) -> list[tuple[int, ...]]:
        """Operand tuples in split order: eval first, then dev, then train."""
        base = 10**self.digits
        space = self.space_size
        held = self.eval_size + self.dev_size
        rng = random.Random(self.seed)
        if space <= ENUMERATE_LIMIT:
            if held >= space:
                raise ValueError(
                    f"arithmetic: digits={self.digits}, num_terms={self.num_terms} has only {space} "
                    f"distinct problems, but eval_size={self.eval_size} + dev_size={self.dev_size} "
                    f"would leave none to train on; lower eval_size/dev_size"
                )
            # itertools.product is lexicographic, so for 2 terms this is exactly
            # [(a, b) for a in range(base) for b in range(base)].
            probs = list(itertools.product(range(base), repeat=self.num_terms))
            rng.shuffle(probs)
            return probs
        need = held + SAMPLED_TRAIN_SIZE
        if need * 2 > space:
            raise ValueError(
                f"arithmetic: eval_size={self.eval_size} + dev_size={self.dev_size} is too large "
                f"for a space of {space} problems"
            )
        seen: set[tuple[int, ...]] = set()
        probs = []
        while len(probs) < need:
            t = tuple(rng.randrange(base) for _ in range(self.num_terms))
            if t not in seen:  # sampling without replacement keeps the splits disjoint
                seen.add(t)
                probs.append(t)
        return probs

    def _example(self, index: int, operands: tuple[int, ...]) -> dict:
        op = self.ops[index % len(self.ops)]
        width = self.digits if self.zero_pad else 1
        prompt = op.join(str(x).zfill(width) for x in operands) + "="
        answer = reduce(_OPS[op], operands)
        return {"prompt": prompt, "answer": str(answer)}

    # ---------------------------------------------------------------- Task protocol
    def train_examples(self) -> list[dict]:
        return list(self._train)

    def eval_examples(self) -> list[dict]:
        return list(self._eval)

    def dev_examples(self) -> list[dict]:
        """Held out from both train and eval; for early stopping / model selection."""
        return list(self._dev)

    def verify(self, completion: str, example: dict) -> float:
        """1.0 iff the completion (text before EOS, specials stripped) is exactly the answer.

        Surrounding whitespace is forgiven; anything else (a trailing "=", a second
        number, a leading "+") is wrong, so the reward cannot be gamed by hedging.
        """
        return 1.0 if completion.strip() == str(example["answer"]).strip() else 0.0

    def __repr__(self) -> str:
        return (
            f"ArithmeticTask(digits={self.digits}, ops={self.ops!r}, num_terms={self.num_terms}, "
            f"zero_pad={self.zero_pad}, eval_size={self.eval_size}, dev_size={self.dev_size}, seed={self.seed})"
        )
