"""The worked examples in the algorithm's docstrings are tests: each one runs here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import engine.algo


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = []
    for info in pkgutil.iter_modules(engine.algo.__path__, "engine.algo."):
        module = importlib.import_module(info.name)
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
