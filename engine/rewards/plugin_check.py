"""Check a reward plugin spec without running any of its code.

Listing presets, validating one, opening the launcher in a cloned repository: none of these
may execute a ``path/file.py`` or ``module`` a preset names — a preset someone sent you is
data until you start it. So validation finds the file (or the module's source on the path,
without importing it or its parents), parses it, and looks for the function at its top level
with a ``**kwargs`` parameter (a factory's own parameters are its own). The code runs only when a run starts
(:func:`engine.rewards.scoring.build_reward_funcs`), where every failure is reported again.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
from pathlib import Path

from engine.rewards.common import KWARGS_CONTRACT, RewardSpecError

MAX_SOURCE_BYTES = 5_000_000  # a plugin larger than this is not parsed here (the run reports it)


def check_plugin_statically(spec: str, target: str, attr: str, is_file: bool, path: Path | None = None,
                            needs_kwargs: bool = True) -> None:
    """Raise :class:`RewardSpecError` (one line) when ``spec``'s source cannot provide
    ``attr``: file or module not found, a syntax error, the name not defined at its top
    level, or a function without ``**kwargs``. Sources it cannot read as Python (a compiled
    extension, a namespace package) pass: the run checks them when it imports them."""
    if is_file:
        if path is None or not path.is_file():
            raise RewardSpecError(f"reward plugin '{spec}': file not found: {path}", spec)
        source, where = path, path.name
    else:
        source = module_source(target)
        if isinstance(source, str):  # the first part not found
            raise RewardSpecError(
                f"reward plugin '{spec}': module '{target}' could not be imported: "
                f"ModuleNotFoundError: No module named '{source}'", spec)
        if source is None:
            return
        where = f"module '{target}'"
    tree = _parse(source, spec)
    if tree is None:
        return
    name = attr.split(".")[0]
    node = top_level_definition(tree, name)
    if node is None:
        found = ", ".join(top_level_functions(tree)[:12]) or "no functions"
        raise RewardSpecError(f"reward plugin '{spec}': '{attr}' is not defined in {where} (found: {found})", spec)
    value = getattr(node, "value", None)
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and "." not in attr and isinstance(value, ast.Constant):
        raise RewardSpecError(f"reward plugin '{spec}': '{attr}' in {where} is not callable "
                              f"(it is a {type(value.value).__name__})", spec)
    if needs_kwargs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "." not in attr \
            and node.args.kwarg is None:
        raise RewardSpecError(f"reward plugin '{spec}': '{attr}' takes no **kwargs; {KWARGS_CONTRACT}", spec)


def module_source(target: str) -> Path | str | None:
    """The ``.py`` file of module ``target`` found on ``sys.path`` (or as ``target.py`` in the
    working directory) without importing it or its packages; None when it exists but has no
    Python source to read; when it is not found, the dotted name of the first part missing."""
    if target in sys.modules:
        origin = getattr(getattr(sys.modules[target], "__spec__", None), "origin", None)
        return Path(origin) if origin and origin.endswith(".py") else None
    locations: list[str] | None = None
    spec, parts = None, target.split(".")
    for i, part in enumerate(parts):
        spec = importlib.machinery.PathFinder.find_spec(part, locations)
        if spec is None:
            local = Path.cwd() / (target.replace(".", os.sep) + ".py")
            return local if local.is_file() else ".".join(parts[: i + 1])
        locations = list(spec.submodule_search_locations or [])
    origin = spec.origin
    return Path(origin) if origin and origin.endswith(".py") else None


def _parse(path: Path, spec: str) -> ast.Module | None:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RewardSpecError(f"reward plugin '{spec}': {path.name} is not UTF-8 text ({exc.reason})", spec) from None
    except OSError as exc:
        raise RewardSpecError(f"reward plugin '{spec}': cannot read {path.name}: {exc.strerror}", spec) from None
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise RewardSpecError(
            f"reward plugin '{spec}': SyntaxError in {path.name} line {exc.lineno}: {exc.msg}", spec) from None
    except ValueError:  # null bytes
        raise RewardSpecError(f"reward plugin '{spec}': {path.name} is not Python source", spec) from None


def top_level_definition(tree: ast.Module, name: str) -> ast.AST | None:
    """The last top-level statement that binds ``name`` (def, class, assignment, import), or
    None. Statements inside top-level ``if``/``try`` blocks count: plugins define fallbacks so.

    >>> tree = ast.parse("import re\\ndef acc(prompts, completions, **kw): ...\\nscore = acc")
    >>> type(top_level_definition(tree, "acc")).__name__, type(top_level_definition(tree, "score")).__name__
    ('FunctionDef', 'Assign')
    >>> top_level_definition(tree, "missing") is None
    True
    """
    found = None
    for node in _top_statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                found = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound == name or alias.name == "*":
                    found = node
    return found


def top_level_functions(tree: ast.Module) -> list[str]:
    """Public functions defined at the top level, in order (what an error lists as found)."""
    return [n.name for n in _top_statements(tree.body)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")]


def _top_statements(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, (ast.If, ast.Try)):
            yield from _top_statements(node.body)
            yield from _top_statements(node.orelse)
            for handler in getattr(node, "handlers", []):
                yield from _top_statements(handler.body)
            yield from _top_statements(getattr(node, "finalbody", []))
        else:
            yield node
