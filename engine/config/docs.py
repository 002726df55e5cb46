"""The field reference users read: every preset key (``dataset.*`` included) with its type,
default and doc, for ``grpo-tui fields``, the preset editor's hint bar and the adjust form.

Nothing here is written twice. The doc is the string literal under each field in
:mod:`engine.config.schema` -- Python keeps no docstrings for attributes, so the module's
source is read with :mod:`ast` -- and the type is rendered from the same annotations
validation runs on (:mod:`engine.config.fields`), so the reference cannot drift from what a
preset is checked against. The section is the ``# --- name`` comment above a field.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import functools
import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

from engine.config import schema
from engine.config.fields import _SCHEMA, _Spec
from engine.config.schema import DatasetConfig, RunConfig

_SECTION = re.compile(r"^\s*# ---\s+(.*\S)\s*$")


@dataclass(frozen=True)
class FieldDoc:
    """One preset key as a user reads about it."""

    key: str
    """path as written in a preset or ``--set``: ``learning_rate``, ``dataset.split``"""
    type: str
    """what the value may be: ``float ≥ 0``, ``"grpo" | "bnpo" | "dr_grpo" | "dapo"``, ``int ≥ 1 | None``"""
    default: str
    """the default, written as a value: ``1e-06``, ``"dapo"``, ``None``, ``["accuracy"]``"""
    doc: str
    """the field's docstring, as one paragraph"""
    section: str
    """the group it is declared in (model, generation, algorithm, optimisation, ...)"""

    def summary(self) -> str:
        """One line: ``learning_rate: float ≥ 0 = 1e-06 — AdamW learning rate (peak, after warm-up)``."""
        return f"{self.key}: {self.type} = {self.default} — {self.doc}"


def type_text(spec: _Spec) -> str:
    """A field's type as a user reads it.

    >>> type_text(_Spec("float", False, checks=(schema.Range(gt=0, le=1),)))
    'float in (0, 1]'
    >>> type_text(_Spec("str", False, choices=("token", "sequence")))
    '"token" | "sequence"'
    >>> type_text(_Spec("int", True, checks=(schema.Range(ge=1),)))
    'int ≥ 1 | None'
    """
    if spec.kind == "dataset":
        text = "mapping of the dataset.* keys"
    elif spec.choices is not None:
        text = " | ".join(value_text(c) for c in spec.choices)
    elif spec.kind == "list":
        text = f"list[{spec.item.replace('_or_', ' | ')}]"
    elif spec.kind == "dict":
        text = f"dict[str, {spec.item}]" if spec.item == "dict" else "dict"
    else:
        text = " ".join([spec.kind, *(check.describe() for check in spec.checks)])
    return f"{text} | None" if spec.optional else text


def value_text(value: Any) -> str:
    """A default written as a value (Python's spelling, as the docs use: ``None``, ``True``).

    >>> value_text([1e-6, "a", None])
    '[1e-06, "a", None]'
    """
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, DatasetConfig):  # only what differs from a fresh dataset block
        plain, fresh = dataclasses.asdict(value), dataclasses.asdict(DatasetConfig())
        return value_text({k: v for k, v in plain.items() if v != fresh[k]})
    return repr(value)


def _docs_in_source() -> dict[str, dict[str, tuple[str, str]]]:
    """``{class name: {field: (doc, section)}}`` from schema.py's source."""
    source = inspect.getsource(schema)
    lines = source.splitlines()
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef) or node.name not in (DatasetConfig.__name__, RunConfig.__name__):
            continue
        fields: dict[str, tuple[str, str]] = {}
        section, seen_line = "", node.lineno
        for stmt, after in zip(node.body, [*node.body[1:], None]):
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            for line in lines[seen_line:stmt.lineno - 1]:  # comments between the previous field and this one
                match = _SECTION.match(line)
                if match:
                    section = match.group(1)
            seen_line = stmt.lineno
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                doc = " ".join(after.value.value.split())
            fields[stmt.target.id] = (doc, section)
        found[node.name] = fields
    return found


@functools.cache
def _all_docs() -> tuple[FieldDoc, ...]:
    source = _docs_in_source()
    defaults = {RunConfig: RunConfig(), DatasetConfig: DatasetConfig()}

    def block(cls: type, prefix: str, section: str | None) -> list[FieldDoc]:
        out: list[FieldDoc] = []
        for name, spec in _SCHEMA[cls].items():
            doc, own_section = source[cls.__name__].get(name, ("", ""))
            where = section if section is not None else own_section
            out.append(FieldDoc(f"{prefix}{name}", type_text(spec), value_text(getattr(defaults[cls], name)), doc, where))
            if spec.kind == "dataset":
                out.extend(block(DatasetConfig, f"{prefix}{name}.", name))
        return out

    return tuple(block(RunConfig, "", None))


@functools.cache
def _by_key() -> dict[str, FieldDoc]:
    return {d.key: d for d in _all_docs()}


def field_docs() -> list[FieldDoc]:
    """Every preset key in declaration order, each ``dataset.*`` key right after ``dataset``."""
    return list(_all_docs())


def doc_for(key: str) -> FieldDoc | None:
    """The doc of ``key``, or of the nearest field holding it: ``dataset.task_args.digits``
    gives ``dataset.task_args``, ``reward_kwargs.format`` gives ``reward_kwargs``; None when
    no field matches."""
    docs = _by_key()
    parts = key.split(".")
    while parts:
        hit = docs.get(".".join(parts))
        if hit is not None:
            return hit
        parts.pop()
    return None


def match_fields(pattern: str | None) -> list[FieldDoc]:
    """The fields whose key holds ``pattern`` (any case), or matches it as a glob when it has
    ``*``, ``?`` or ``[`` (``vllm_*``, ``dataset.*``); every field when no pattern is given."""
    docs = field_docs()
    if not pattern:
        return docs
    pattern = pattern.lower()
    if any(c in pattern for c in "*?["):
        return [d for d in docs if fnmatch.fnmatchcase(d.key.lower(), pattern)]
    return [d for d in docs if pattern in d.key.lower()]
