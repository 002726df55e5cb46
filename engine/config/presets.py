"""Presets: YAML text and ``--set`` overrides made into a validated
:class:`~engine.config.schema.RunConfig`, and preset files found by name (``./presets/``,
``~/.config/grpo-tui/presets/``, then the bundled ``presets/``) or by path and listed for the
launcher. Whatever text a preset holds, the result is a :class:`~engine.config.schema.RunConfig` or
a :class:`~engine.config.schema.ConfigError` -- never another exception.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from engine.config.schema import REPO_ROOT, ConfigError, DatasetConfig, PresetInfo, RunConfig
from engine.config.checks import _exists, _validate
from engine.config.trl_mapping import is_trl_name
from engine.config.fields import _BAD, _SCHEMA, _copy, _describe, _did_you_mean, _Spec


# --------------------------------------------------------------------------- YAML text


MAX_PRESET_BYTES = 1_000_000  # a preset is a few kilobytes; a larger file is not one
MAX_NODES = 100_000  # values in the document with every alias expanded (an alias bomb has billions)
MAX_DEPTH = 50


def _node_problem(root: yaml.Node) -> str | None:
    """Why a composed document is not a preset's shape, before anything is built from it:
    too many values once aliases are expanded, nested too deep, or a key given twice in one
    mapping (YAML would keep the last silently). Aliases are shared nodes, so the count is
    memoised and a bomb is measured in microseconds, never expanded."""
    sizes: dict[int, int] = {}
    checked: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            return f"yaml: line {node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            if any(id(c) not in sizes for c in children):  # a child still open: the node contains itself
                return f"yaml: line {node.start_mark.line + 1}: a value that contains itself (a recursive alias)"
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
            continue
        if id(node) in sizes or id(node) in checked:
            continue
        checked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        return (f"yaml: line {key.start_mark.line + 1}: duplicate key {key.value!r} "
                                f"(first on line {seen[key.value]})")
                    seen[key.value] = key.start_mark.line + 1
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
    if sizes.get(id(root), 0) > MAX_NODES:
        return f"yaml: more than {MAX_NODES:,} values once its aliases are expanded: not a preset"
    return None


def _parse_yaml(text: str, problems: list[str]) -> Any:
    """Parse YAML text; on failure append a problem with the line number and return _BAD.
    Limits (size, values with aliases expanded, depth) and duplicate keys are checked on the
    composed document, before any value is built."""
    if len(text) > MAX_PRESET_BYTES:
        problems.append(f"yaml: {len(text):,} characters: larger than a preset can be ({MAX_PRESET_BYTES:,})")
        return _BAD
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # the reader already rejects control characters here
        node = loader.get_single_node()
        problem = None if node is None else _node_problem(node)
        if problem:
            problems.append(problem)
            return _BAD
        data = {} if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = e.problem or e.context or "invalid YAML"
        context = f" ({e.context})" if e.context and e.problem else ""
        problems.append(f"yaml: {where}invalid YAML: {what}{context}")
        return _BAD
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, max(e.position, 0)) + 1
        code = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        problems.append(f"yaml: line {line}: invalid YAML: character {code} is not allowed ({e.reason})")
        return _BAD
    except Exception as e:  # e.g. ValueError for a timestamp like 2020-13-45, RecursionError
        problems.append(f"yaml: invalid YAML: {type(e).__name__}: {e}")
        return _BAD
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, Mapping):
        problems.append(
            f"top level: expected a mapping of settings (key: value), got {_describe(data)} "
            f"(line {node.start_mark.line + 1})"
        )
        return _BAD
    return data


def config_from_yaml(
    text: str,
    overrides: Iterable[str] = (),
    *,
    base_dir: str | os.PathLike | None = None,
    check_paths: bool = True,
    source: str = "config",
) -> RunConfig:
    """Build a RunConfig from preset text (e.g. the preset editor's buffer); see load_preset."""
    problems: list[str] = []
    data = _parse_yaml(text, problems)
    if data is _BAD:
        raise ConfigError(problems, source=source)
    data = _apply_overrides(data, overrides, problems)
    cfg = _validate(data, base_dir=base_dir, check_paths=check_paths, problems=problems)
    if cfg is None:
        raise ConfigError(problems, source=source)
    return cfg


# --------------------------------------------------------------------------- overrides


def _apply_overrides(d: Mapping, overrides: Iterable[str], problems: list[str]) -> dict:
    """Apply ``key=value`` overrides to a copy of ``d``; bad ones become problems and are skipped."""
    if not isinstance(d, Mapping):
        problems.append(f"top level: expected a mapping of settings (key: value), got {_describe(d)}")
        return d
    out = _copy(d)
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{key or item}: override {item!r} is not key=value (e.g. learning_rate=5e-5)")
            continue
        parts = key.split(".")
        spec, error = _override_target(parts)
        if error:
            problems.append(f"{key}: {error} (in --set {item})")
            continue
        value = _parse_override_value(raw, spec)
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                problems.append(f"{'.'.join(parts[: depth + 1])}: is not a mapping, cannot set {key} (in --set {item})")
                break
            node = child
        else:
            node[parts[-1]] = value
    return out


def _override_target(parts: list[str]) -> tuple[_Spec | None, str | None]:
    """The spec of the field an override names (None below free-form mappings), or an error."""
    cls: type | None = RunConfig
    spec: _Spec | None = None
    for depth, part in enumerate(parts):
        if not part:
            return None, "empty key segment"
        if cls is None:
            if spec is None:  # free-form options below a mapping field: anything goes
                continue
            if spec.kind == "dict":  # reward_kwargs.<name> is itself a mapping; task_args.<x> is free
                spec = _Spec("dict", True) if spec.item == "dict" else None
                continue
            parent = ".".join(parts[:depth])
            return None, f"{parent} is not a mapping"
        schema = _SCHEMA[cls]
        spec = schema.get(part)
        if spec is None and cls is RunConfig and len(parts) == 1 and is_trl_name(part):
            return None, None  # a TRL name: translated with the rest of the preset
        if spec is None:
            prefix = ".".join(parts[:depth])
            where = f" in {prefix}" if prefix else ""
            return None, f"unknown key{where}{_did_you_mean(part, schema)}"
        cls = DatasetConfig if spec.kind == "dataset" else None
    return spec, None


def _parse_override_value(raw: str, spec: _Spec | None) -> Any:
    try:
        value = yaml.safe_load(raw)
    except Exception:
        return raw  # e.g. "system_prompt=Answer: {x" -- the text itself was meant
    if spec is not None and spec.kind == "str" and value is not None and not isinstance(value, str):
        return raw.strip()  # "run_name=123" or "system_prompt=Answer: x" meant the text
    return value


def apply_overrides(d: Mapping, overrides: Iterable[str]) -> dict:
    """A copy of ``d`` with ``key=value`` / ``dataset.split=test`` overrides applied.

    Values are parsed as YAML (``learning_rate=5e-5``, ``reward_funcs=[accuracy, format]``).
    Unknown keys raise ConfigError with a did-you-mean; values are checked later, by
    config_from_dict.
    """
    problems: list[str] = []
    out = _apply_overrides(d, overrides, problems)
    if problems:
        raise ConfigError(problems, source="overrides")
    return out


# --------------------------------------------------------------------------- presets


def user_preset_dir() -> Path:
    """The user's own preset folder: ``$XDG_CONFIG_HOME/grpo-tui/presets``, by default
    ``~/.config/grpo-tui/presets``. Copies of bundled presets are saved here."""
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path("~/.config").expanduser()  # the spec ignores relative ones
    return Path(os.path.abspath(base / "grpo-tui" / "presets"))


def bundled_preset_dir() -> Path:
    """The presets shipped with grpo-tui (the source tree's or the installed package's
    ``presets/``): read-only for the preset editor, which saves copies elsewhere."""
    return Path(os.path.abspath(REPO_ROOT / "presets"))


def is_bundled(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in the bundled presets folder (also through a link)."""
    bundled = bundled_preset_dir()
    for candidate, folder in ((Path(os.path.abspath(path)), bundled), (Path(path).resolve(), bundled.resolve())):
        if candidate == folder or folder in candidate.parents:
            return True
    return False


def preset_dirs() -> list[Path]:
    """Folders searched for presets by name, in order: ``./presets/``, the user's folder,
    then the bundled presets, so a preset the user saved under a bundled preset's name (the
    editor's copy of it) takes that preset's place."""
    dirs: list[Path] = []
    try:
        local = Path.cwd() / "presets"
        if not is_bundled(local):  # run from the source tree: ./presets/ is the bundled folder, searched last
            dirs.append(local)
    except OSError:
        pass
    try:
        dirs.append(user_preset_dir())
    except RuntimeError:  # no home folder to expand ~ in
        pass
    dirs.append(bundled_preset_dir())
    unique: list[Path] = []
    for d in dirs:
        d = Path(os.path.abspath(d))
        if d not in unique:
            unique.append(d)
    return unique


def _preset_files() -> list[Path]:
    """Every preset file, first one found per name (an earlier folder shadows a later one)."""
    seen: set[str] = set()
    files: list[Path] = []
    for d in preset_dirs():
        try:
            entries = sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        except OSError:
            continue
        for p in entries:
            if p.stem not in seen:
                seen.add(p.stem)
                files.append(p)
    return files


def _find_preset_file(name_or_path: str) -> Path:
    text = str(name_or_path)
    p = Path(text).expanduser()
    if _exists(p) and p.is_file():
        return Path(os.path.abspath(p))
    looks_like_path = any(s in text for s in ("/", "\\")) or text.startswith(("~", "."))
    if not looks_like_path:
        for d in preset_dirs():
            for candidate in (text, f"{text}.yaml", f"{text}.yml"):
                q = d / candidate
                if _exists(q) and q.is_file():
                    return q
    names = [f.stem for f in _preset_files()]
    available = f"available presets: {', '.join(names)}" if names else "no presets found"
    if looks_like_path:
        message = f"preset: file not found: {text} ({available})"
    else:
        message = (
            f"preset: no preset named {text!r}{_did_you_mean(text, names)}; {available} "
            f"(searched {', '.join(str(d) for d in preset_dirs())})"
        )
    raise ConfigError([message], source=f"preset {text}")


def load_preset(name_or_path: str, overrides: Iterable[str] = (), *, check_paths: bool = True) -> RunConfig:
    """Load a preset by name (./presets/, ~/.config/grpo-tui/presets/, the bundled presets/)
    or by path, apply ``--set`` overrides, validate, and default run_name to the preset's name.
    """
    path = _find_preset_file(name_or_path)
    source = f"preset {path.name}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"preset: cannot read {path}: {e}"], source=source) from None
    cfg = config_from_yaml(text, overrides, base_dir=path.parent, check_paths=check_paths, source=source)
    if cfg.run_name is None:
        cfg.run_name = path.stem
    return cfg


def _description(text: str) -> str:
    """The comment block at the top of a preset, without the '#' marks."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped and not lines:
            continue
        if not stripped.startswith("#"):
            break
        body = stripped[1:]
        lines.append(body[1:] if body.startswith(" ") else body)
    return "\n".join(lines).strip()


def find_presets(validate: bool = True) -> list[PresetInfo]:
    """Every preset the launcher can offer, by name, each validated (never raises).
    ``validate=False`` lists them at once, ``ok`` None: validating imports the model libraries (seconds)."""
    infos = []
    for path in sorted(_preset_files(), key=lambda p: p.stem):
        try:
            description = _description(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            description = ""
        if not validate:
            infos.append(PresetInfo(path.stem, path, description, None))
            continue
        try:
            load_preset(str(path), check_paths=True)
            problems: list[str] = []
        except ConfigError as e:
            problems = e.problems
        except Exception as e:  # a failing task or reward module must not hide the launcher
            problems = [f"preset: {type(e).__name__}: {e}"]
        infos.append(PresetInfo(path.stem, path, description, not problems, problems))
    return infos
