"""The worked examples in the algorithm's docstrings are tests: each one runs here (with those
of the agents' pure functions, the static cache's and the bench's FLOP counts)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import engine.agents
import engine.algo

MODULES = ("grpo_tui.cli.flops", "grpo_tui.cli.bench", "grpo_tui.cli.rank_launcher", "engine.training.optimizers", "engine.rollout.static_cache", "engine.rollout.node_cache")


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = []
    names = [info.name for package in (engine.algo, engine.agents)
             for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    for name in [*names, *MODULES]:
        module = importlib.import_module(name)
        found += [t for t in finder.find(module) if t.examples]
    return sorted(found, key=lambda t: t.name)


EXAMPLES = _examples()


def test_the_algorithm_has_worked_examples():
    assert len(EXAMPLES) >= 5, [t.name for t in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(example: doctest.DocTest):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(example, out=lambda text: None)
    failures = runner.summarize(verbose=False).failed
    if failures:
        report: list[str] = []
        doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS).run(example, out=report.append)
        pytest.fail("".join(report))
