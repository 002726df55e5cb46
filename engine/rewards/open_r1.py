"""The built-in rewards that share their names with open-r1's (``accuracy`` on maths answers,
``format``, ``reasoning_steps``, ``len``, ``cosine``, ``repetition_penalty``,
``soft_overlong_punishment``): they score as open-r1's ``src/open_r1/rewards.py`` does on the
same completions, so a recipe's reward curve means the same thing here. Our own code, after
the definitions there; the defaults are open-r1's ``GRPOScriptArguments`` defaults.

Maths answers go through math-verify as open-r1 configures it: the gold with math-verify's
default extraction, the completion with LaTeX extraction only -- ``\\boxed{}`` first, and no
bare numbers (``try_extract_without_anchor=False``), so "124" alone scores 0 where
``\\boxed{124}`` scores 1. math-verify's timeouts rely on ``signal.alarm``, which works only in
a main thread: these run on the engine's scoring thread, so they parse without one (a user's
own reward function runs in a worker process whose main thread has them).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Callable

from engine.rewards.common import completion_text

RewardFn = Callable[..., list]

FORMAT_PATTERN = r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$"
"""open-r1's format: think and answer blocks, each tag on its own line."""

REASONING_STEPS = r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)"
"""open-r1's step markers: "Step 1:", a numbered line, a bullet, a transition word."""


def gold_texts(kwargs: dict[str, Any]) -> list:
    """The gold answers: the ``solution`` column (open-r1's), else ``answer``."""
    golds = kwargs.get("solution", kwargs.get("answer"))
    if golds is None:
        found = ", ".join(k for k in kwargs if isinstance(kwargs[k], (list, tuple))) or "none"
        raise ValueError(f"needs a 'solution' (or 'answer') column (columns: {found})")
    return list(golds)


def _gold(text: Any) -> str:
    """A gold answer as text; GSM8K's "worked solution #### 42" gives "42"."""
    text = "" if text is None else str(text)
    return text.rsplit("####", 1)[1].strip() if "####" in text else text


class QuietNotices(logging.Filter):
    """Drops math-verify's notices that say what is deliberate here: its timeouts are off (see
    above) and open-r1's ``equations=True`` setting is kept although the parser covers it."""

    NOTICES = ("Timeout is disabled", "equations=True in NormalizationConfig is deprecated")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOTICES)


def quiet_math_verify() -> None:
    """Install :class:`QuietNotices` on math-verify's loggers (once)."""
    for name in ("math_verify.parser", "math_verify.grader", "latex2sympy2_extended.math_normalization"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietNotices) for f in logger.filters):
            logger.addFilter(QuietNotices())


class MathVerify:
    """math-verify's ``parse``/``verify`` with open-r1's configurations, imported when built."""

    def __init__(self) -> None:
        import math_verify
        from latex2sympy2_extended import NormalizationConfig

        quiet_math_verify()

        self.parse_, self.verify_ = math_verify.parse, math_verify.verify
        self.latex = math_verify.LatexExtractionConfig

        def answer_config(boxed: Any) -> list:
            return [math_verify.LatexExtractionConfig(
                normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                         equations=True, boxed=boxed, units=True),
                boxed_match_priority=0, try_extract_without_anchor=False)]

        self.answer_all = answer_config("all")  # accuracy_reward's
        self.answer_boxed = answer_config(True)  # len_reward's and the cosine reward's

    def gold(self, text: str, latex_only: bool = False) -> list:
        config = {"extraction_config": [self.latex()]} if latex_only else {}
        try:
            return self.parse_(text, extraction_mode="first_match", parsing_timeout=None, **config)
        except Exception:  # noqa: BLE001 - an unparseable gold is "not verifiable", as in open-r1
            return []

    def answer(self, text: str, config: list) -> list:
        try:
            return self.parse_(text, extraction_config=config, extraction_mode="first_match", parsing_timeout=None)
        except Exception:  # noqa: BLE001
            return []

    def equal(self, gold: list, answer: list) -> bool | None:
        """Whether they agree; None when math-verify fails on them."""
        try:
            return bool(self.verify_(gold, answer, timeout_seconds=None))
        except Exception:  # noqa: BLE001
            return None


def accuracy(ctx) -> RewardFn:
    """1.0 when the completion's LaTeX answer equals the gold (open-r1's ``accuracy_reward``);
    None (the row is left out) when the gold does not parse or math-verify fails."""
    mv = MathVerify()

    def accuracy(prompts, completions, **kwargs) -> list[float | None]:
        """1.0 when the completion's LaTeX answer (\\boxed{} first) equals the gold, as open-r1's."""
        out: list[float | None] = []
        cache: dict[str, list] = {}
        for completion, gold in zip(completions, gold_texts(kwargs)):
            text = _gold(gold)
            if text not in cache:
                cache[text] = mv.gold(text)
            if not cache[text]:
                out.append(None)
                continue
            same = mv.equal(cache[text], mv.answer(completion_text(completion), mv.answer_all))
            out.append(None if same is None else float(same))
        return out

    return accuracy


def format_reward(ctx, pattern: str = FORMAT_PATTERN) -> RewardFn:
    """1.0 when the completion matches ``pattern`` from its start (``re.match``, DOTALL and
    MULTILINE, as open-r1's ``format_reward``), else 0.0.

        >>> f = format_reward(None)
        >>> f([""] * 3, ["<think>\\nhmm\\n</think>\\n<answer>\\n4\\n</answer>", "<think>hmm</think><answer>4</answer>",
        ...              "<answer>\\n4\\n</answer>"])
        [1.0, 0.0, 0.0]
    """
    if not isinstance(pattern, str):
        raise ValueError(f"reward_kwargs.format.pattern: expected a string, got {pattern!r}")
    try:
        regex = re.compile(pattern, re.DOTALL | re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"reward_kwargs.format.pattern: invalid regex: {exc}") from exc

    def format(prompts, completions, **kwargs) -> list[float | None]:  # noqa: A001
        """1.0 when the completion is <think>\\n…\\n</think>\\n<answer>\\n…\\n</answer> (open-r1's)."""
        return [1.0 if regex.match(completion_text(c)) else 0.0 for c in completions]

    return format


def reasoning_steps(ctx) -> RewardFn:
    """min(1, markers / 3): step markers counted by :data:`REASONING_STEPS` (open-r1's
    ``reasoning_steps_reward``; three steps earn the whole reward).

        >>> reasoning_steps(None)([""] * 2, ["Step 1: a\\nStep 2: b", "First, x. Next, y. Finally, z."])
        [0.6666666666666666, 1.0]
    """
    regex = re.compile(REASONING_STEPS)

    def reasoning_steps(prompts, completions, **kwargs) -> list[float | None]:
        """min(1, step markers / 3), as open-r1's reasoning_steps_reward."""
        return [min(1.0, len(regex.findall(completion_text(c))) / 3) for c in completions]

    return reasoning_steps


def length_rewards(correct: list[bool], lengths: list[int]) -> list[float]:
    """Kimi 1.5's length reward (open-r1's ``len_reward``), over a batch's lengths in characters::

        λ = 0.5 − (len − min_len) / (max_len − min_len)
        reward = λ when correct, min(0, λ) when not; all 0 when every length is the same

    Example: lengths 10, 20, 30 → λ = .5, 0, −.5; the second wrong, the third right:

        >>> length_rewards([True, False, True], [10, 20, 30])
        [0.5, 0.0, -0.5]
    """
    shortest, longest = min(lengths), max(lengths)
    if longest == shortest:
        return [0.0] * len(lengths)
    out = []
    for ok, n in zip(correct, lengths):
        lam = 0.5 - (n - shortest) / (longest - shortest)
        out.append(float(lam if ok else min(0.0, lam)))
    return out


def len_reward(ctx) -> RewardFn:
    """Kimi 1.5's length reward (:func:`length_rewards`), correctness by math-verify as
    open-r1's ``len_reward`` judges it (a gold that does not parse counts as correct)."""
    mv = MathVerify()

    def len_reward(prompts, completions, **kwargs) -> list[float | None]:
        """Shorter is better: 0.5 − (len − min)/(max − min) when correct, min(0, that) when not."""
        texts = [completion_text(c) for c in completions]
        correct = []
        for text, gold in zip(texts, gold_texts(kwargs)):
            parsed = mv.gold(_gold(gold), latex_only=True)
            correct.append(True if not parsed else bool(mv.equal(mv.answer(text, mv.answer_boxed), parsed)))
        return length_rewards(correct, [len(t) for t in texts])

    len_reward.__name__ = "len"
    return len_reward


def cosine_reward(correct: bool, length: int, *, min_value_wrong: float, max_value_wrong: float,
                  min_value_correct: float, max_value_correct: float, max_len: int) -> float:
    """open-r1's cosine-scaled reward: shorter correct answers earn more, longer wrong ones lose less::

        c = cos(π · length / max_len)
        correct: min_c + ½(max_c − min_c)(1 + c)      wrong: max_w + ½(min_w − max_w)(1 + c)

    Example (open-r1's defaults): a correct answer of 0 characters earns 1.0, of 500 (c = 0)
    0.75; a wrong one of 0 characters 0.0, of 1000 (c = −1) −0.5:

        >>> d = dict(min_value_wrong=0.0, max_value_wrong=-0.5, min_value_correct=0.5, max_value_correct=1.0,
        ...          max_len=1000)
        >>> [round(cosine_reward(ok, n, **d), 4) for ok, n in ((True, 0), (True, 500), (False, 0), (False, 1000))]
        [1.0, 0.75, 0.0, -0.5]
    """
    c = math.cos(length / max_len * math.pi)
    low, high = (min_value_correct, max_value_correct) if correct else (max_value_wrong, min_value_wrong)
    return float(low + 0.5 * (high - low) * (1.0 + c))


def cosine(ctx, min_value_wrong: float = 0.0, max_value_wrong: float = -0.5, min_value_correct: float = 0.5,
           max_value_correct: float = 1.0, max_len: int = 1000) -> RewardFn:
    """:func:`cosine_reward` of each completion's length in characters (open-r1's
    ``get_cosine_scaled_reward``; a gold that does not parse scores 1.0, as there)."""
    options = dict(min_value_wrong=min_value_wrong, max_value_wrong=max_value_wrong,
                   min_value_correct=min_value_correct, max_value_correct=max_value_correct, max_len=max_len)
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"reward_kwargs.cosine.{key}: expected a number, got {value!r}")
    if max_len <= 0:
        raise ValueError(f"reward_kwargs.cosine.max_len: expected a positive number, got {max_len!r}")
    mv = MathVerify()

    def cosine(prompts, completions, **kwargs) -> list[float | None]:
        """Cosine-scaled by length: short and right earns most, long and wrong loses least (open-r1's)."""
        out: list[float | None] = []
        for completion, gold in zip(completions, gold_texts(kwargs)):
            text = completion_text(completion)
            parsed = mv.gold(_gold(gold), latex_only=True)
            if not parsed:
                out.append(1.0)
                continue
            ok = bool(mv.equal(mv.answer(text, mv.answer_boxed), parsed))
            out.append(cosine_reward(ok, len(text), **options))
        return out

    return cosine


def repetition_score(text: str, ngram_size: int, max_penalty: float) -> float:
    """open-r1's n-gram repetition penalty: ``max_penalty · (1 − distinct n-grams / n-grams)``
    over lower-cased words; 0 for an empty text or one shorter than an n-gram.

        >>> repetition_score("a b a b a b", 2, -1.0)  # 5 bigrams, 2 distinct
        -0.6
    """
    words = text.lower().split()
    if not text or len(words) < ngram_size:
        return 0.0
    grams = [tuple(words[i:i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
    return (1 - len(set(grams)) / len(grams)) * max_penalty


def repetition_penalty(ctx, ngram_size: int = 3, max_penalty: float = -1.0) -> RewardFn:
    """:func:`repetition_score` of each completion (open-r1's ``get_repetition_penalty_reward``,
    English word splitting)."""
    if isinstance(ngram_size, bool) or not isinstance(ngram_size, int) or ngram_size < 1:
        raise ValueError(f"reward_kwargs.repetition_penalty.ngram_size: expected an integer >= 1, got {ngram_size!r}")
    if isinstance(max_penalty, bool) or not isinstance(max_penalty, (int, float)) or max_penalty > 0:
        raise ValueError(f"reward_kwargs.repetition_penalty.max_penalty: expected a number <= 0, got {max_penalty!r}")

    def repetition_penalty(prompts, completions, **kwargs) -> list[float | None]:
        """max_penalty × the share of repeated word n-grams (open-r1's)."""
        return [repetition_score(completion_text(c), ngram_size, float(max_penalty)) for c in completions]

    return repetition_penalty
