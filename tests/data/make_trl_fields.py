"""Writes trl-1.16-grpo-fields.json: every field of TRL 1.16's GRPOConfig (its own, its base
config's and transformers.TrainingArguments') with the default TRL gives it, so the tests can
check that engine.api.GRPOConfig takes all of them without TRL installed.

    python tests/data/make_trl_fields.py /tmp/trl-1.16/trl > tests/data/trl-1.16-grpo-fields.json

TRL's sources are read with ``ast`` (never imported); TrainingArguments comes from the installed
transformers. A default that is not plain data is written as {"repr": "..."}.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from pathlib import Path


def _class_fields(path: Path, class_name: str) -> dict[str, object]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            out = {}
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    out[stmt.target.id] = _default(stmt.value)
            return out
    raise SystemExit(f"{class_name} not found in {path}")


def _default(value: ast.expr | None) -> object:
    if isinstance(value, ast.Call):  # field(default=..., default_factory=...)
        for kw in value.keywords:
            if kw.arg == "default":
                return _literal(kw.value)
            if kw.arg == "default_factory":
                return _literal(kw.value.body) if isinstance(kw.value, ast.Lambda) else {"repr": ast.unparse(kw.value) + "()"}
    return _literal(value)


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node)
    except Exception:
        return {"repr": ast.unparse(node) if node is not None else "MISSING"}


def _plain(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(_plain(v) == v for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return value
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, str):
        return enum_value
    return {"repr": repr(value)}


def main(trl_root: str) -> None:
    import transformers

    fields: dict[str, object] = {}
    for f in dataclasses.fields(transformers.TrainingArguments):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            fields[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = _plain(f.default_factory())
        else:
            fields[f.name] = {"repr": "MISSING"}
    root = Path(trl_root)
    fields.update(_class_fields(root / "trainer" / "base_config.py", "_BaseConfig"))
    fields.update(_class_fields(root / "trainer" / "grpo_config.py", "GRPOConfig"))
    json.dump({"transformers": transformers.__version__, "fields": fields}, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/trl-1.16/trl")
