"""Run config validation: each field's type, choices and range (:mod:`engine.config.fields`),
then the checks that need several fields or the outside world (paths, reward plugins, tasks,
LoRA, vLLM). Validation never stops at the first mistake: every problem is collected and
reported at once, each prefixed by its field path, because fixing a preset one error per
launch is the slowest loop there is. Whatever a mapping holds, :func:`config_from_dict`
returns a :class:`~engine.config.schema.RunConfig` or raises a :class:`~engine.config.schema.ConfigError`
-- never another exception; :func:`validate_adjustment` does the same for changes to a
running job.
"""

from __future__ import annotations

import re

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from engine.config.schema import (
    ADJUSTABLE_FIELDS,
    BUILTIN_ENVIRONMENTS,
    BUILTIN_REWARDS,
    DATASET_SUFFIXES,
    REPO_ROOT,
    REWARD_MODEL_PREFIX,
    ConfigError,
    DatasetConfig,
    RunConfig,
    config_to_dict,
)
from engine.config.knobs import check_knobs
from engine.config.trl_mapping import translate
from engine.config.model_checks import (  # noqa: F401 - vllm_unavailable, PEFT_KEYS: imported from here too
    PEFT_KEYS,
    _check_local_model,
    _check_peft,
    model_context,
    vllm_problems,
    vllm_unavailable,
)
from engine.config.fields import _BAD, _SCHEMA, _check_block, _check_value, _describe, _did_you_mean, _reporting_api


# --------------------------------------------------------------------------- paths


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _search_dirs(base_dir: str | os.PathLike | None) -> list[Path]:
    """Where a relative path is looked for: the preset's folder, the current folder, the repo."""
    dirs: list[Path] = []
    candidates: list[Any] = [base_dir]
    try:
        candidates.append(Path.cwd())
    except OSError:
        pass
    candidates.append(REPO_ROOT)
    for d in candidates:
        if d is None:
            continue
        try:
            d = Path(os.path.abspath(Path(d).expanduser()))
        except (OSError, ValueError, RuntimeError):
            continue
        if d not in dirs:
            dirs.append(d)
    return dirs


def _resolve(text: str, dirs: list[Path]) -> Path | None:
    """The absolute path of an existing file or folder, or None."""
    try:
        p = Path(text).expanduser()
        if p.is_absolute():
            return Path(os.path.abspath(p)) if _exists(p) else None
        for d in dirs:
            if _exists(d / p):
                return Path(os.path.abspath(d / p))
    except (OSError, ValueError, RuntimeError):
        return None
    return None


def _looks_local(model: str, dirs: list[Path]) -> bool:
    """True when a model reference is clearly a path rather than a hub id like 'Org/Name'."""
    if model.startswith((".", "/", "~", "\\")) or os.path.isabs(model) or "\\" in model:
        return True
    if model.count("/") > 1:
        return True
    if "/" in model:
        head = model.split("/", 1)[0]
        return any(_exists(d / head) for d in dirs)
    return False


def _where(dirs: list[Path]) -> str:
    return ", ".join(str(d) for d in dirs)


# --------------------------------------------------------------------------- cross-field checks


_TASKS_BUILT: set[tuple[str, str]] = set()
"""(task, options) pairs already built once: tasks are deterministic, so once is enough."""


def _task_registry() -> tuple[list[str], Callable[..., Any] | None]:
    """(known task names, get_task) -- lazily, so a broken or absent registry degrades to
    the one task every install has rather than breaking config loading."""
    try:
        from engine.data.tasks import get_task, task_names

        names = list(task_names())
    except Exception:
        return ["arithmetic"], None
    return names or ["arithmetic"], get_task


def _rewards_api(name: str) -> Callable | None:
    """A function from engine.rewards.scoring, imported lazily (it pulls in math-verify); None if absent."""
    try:
        import engine.rewards.scoring as rewards
    except Exception:
        return None
    return getattr(rewards, name, None)


def _ask(checker: Callable[[str], str | None], spec: str) -> str | None:
    try:
        return checker(spec)
    except Exception as e:  # a checker that breaks must not break loading the preset
        return f"could not check {spec!r}: {type(e).__name__}: {e}"


def _ask_all(checker: Callable[..., list[str]], names: list[str], check_installed: bool) -> list[str]:
    try:
        return list(checker(names, check_installed=check_installed))
    except Exception as e:  # a checker that breaks must not break loading the preset
        return [f"report_to: could not check {names!r}: {type(e).__name__}: {e}"]


def _is_file_spec(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _check_rewards(funcs: list[str], dirs: list[Path], check_paths: bool, problems: list[str]) -> list[str]:
    """Check each reward spec; returns them with plugin file paths made absolute."""
    checker = _rewards_api("check_reward_spec")
    resolved = []
    for i, spec in enumerate(funcs):
        path = f"reward_funcs[{i}]"
        if isinstance(spec, dict):  # a factory: {func: spec, kwargs: {...}}
            resolved.append(_check_factory(spec, path, dirs, check_paths, problems, checker))
            continue
        resolved.append(spec)
        if spec.startswith(REWARD_MODEL_PREFIX):  # a sequence-classification reward model
            target = spec[len(REWARD_MODEL_PREFIX):].strip()
            found = _resolve(target, dirs) if target else None
            if found is not None:
                spec = resolved[-1] = f"{REWARD_MODEL_PREFIX}{found}"
            elif check_paths and target and _looks_local(target, dirs):
                problems.append(f"{path}: reward model not found: {target} (looked in {_where(dirs)})")
                continue
            message = _ask(checker, spec) if checker else None
            if message:
                problems.append(f"{path}: {message}")
            continue
        if ":" not in spec:
            if spec in BUILTIN_REWARDS:
                continue
            message = _ask(checker, spec) if checker else (
                f"unknown reward function {spec!r}{_did_you_mean(spec, BUILTIN_REWARDS)}: use a built-in "
                f"({', '.join(BUILTIN_REWARDS)}), module:function, pkg.module.function or path/file.py:function"
            )
            if message:
                problems.append(f"{path}: {message}")
            continue
        target, _, fn = spec.rpartition(":")
        if not target.strip() or not fn.strip() or not all(part.isidentifier() for part in fn.split(".")):
            problems.append(f"{path}: {spec!r} is not 'module:function' or 'path/file.py:function'")
            continue
        if _is_file_spec(target):
            found = _resolve(target, dirs)
            if found is not None and found.is_file():
                spec = resolved[-1] = f"{found}:{fn}"
            elif check_paths:
                problems.append(f"{path}: file not found: {target} (looked in {_where(dirs)})")
                continue
        if check_paths and checker:
            message = _ask(checker, spec)
            if message:
                problems.append(f"{path}: {message}")
    return resolved


def _check_code_spec(spec: Any, path: str, what: str, dirs: list[Path], check_paths: bool, problems: list[str],
                     builtins: tuple[str, ...] = ()) -> Any:
    """A ``module:name`` / ``pkg.module.name`` / ``path/file.py:name`` entry of tools, environment
    or rollout_func: checked for shape, a file path made absolute (found beside the preset)."""
    if not isinstance(spec, str) or not spec.strip():
        problems.append(f"{path}: expected 'module:{what}' or 'path/file.py:{what}', got {_describe(spec)}")
        return spec
    spec = spec.strip()
    if spec in builtins:
        return spec
    if ":" not in spec:
        if "." in spec and all(part.isidentifier() for part in spec.split(".")):
            return spec  # pkg.module.name
        known = f" (built in: {', '.join(builtins)})" if builtins else ""
        problems.append(f"{path}: {spec!r} is not 'module:{what}', 'pkg.module.{what}' or 'path/file.py:{what}'"
                        f"{_did_you_mean(spec, builtins)}{known}")
        return spec
    target, _, name = spec.rpartition(":")
    if not target.strip() or not name.strip() or not all(part.isidentifier() for part in name.split(".")):
        problems.append(f"{path}: {spec!r} is not 'module:{what}' or 'path/file.py:{what}'")
        return spec
    if _is_file_spec(target):
        found = _resolve(target, dirs)
        if found is not None and found.is_file():
            return f"{found}:{name}"
        if check_paths:
            problems.append(f"{path}: file not found: {target} (looked in {_where(dirs)})")
    return spec


def _check_agent(v: dict, dirs: list[Path], check_paths: bool, problems: list[str]) -> None:
    """tools, environment(s) and rollout_func: their specs, and the combinations TRL allows."""
    if isinstance(v.get("tools"), list):
        v["tools"] = [_check_code_spec(s, f"tools[{i}]", "function", dirs, check_paths, problems)
                      for i, s in enumerate(v["tools"])]
    if isinstance(v.get("environment"), str):
        v["environment"] = _check_code_spec(v["environment"], "environment", "Class", dirs, check_paths, problems,
                                            BUILTIN_ENVIRONMENTS)
    if isinstance(v.get("environments"), dict):
        v["environments"] = {name: _check_code_spec(s, f"environments.{name}", "Class", dirs, check_paths, problems,
                                                    BUILTIN_ENVIRONMENTS) for name, s in v["environments"].items()}
        if v["environments"] and v.get("environment"):
            problems.append("environments: set either environment (one for every row) or environments "
                            "(chosen by each row's environment column), not both")
    if isinstance(v.get("rollout_func"), str):
        v["rollout_func"] = _check_code_spec(v["rollout_func"], "rollout_func", "function", dirs, check_paths, problems)
        if v.get("tools") or v.get("environment") or v.get("environments"):
            problems.append("rollout_func: a rollout_func makes the rounds itself, so tools and environments "
                            "cannot be set with it (call them inside it)")
        if v.get("use_vllm"):
            problems.append("rollout_func: with a rollout_func the engine does not generate; set use_vllm: false "
                            "(the function may drive vLLM itself)")
    agentic = v.get("tools") or v.get("environment") or v.get("environments")
    ds = v.get("dataset")
    if agentic and (ds.get("format") if isinstance(ds, dict) else getattr(ds, "format", None)) == "ranked":
        problems.append("tools: ranked datasets bring their responses; tools and environments need generation")


def _check_factory(entry: dict, path: str, dirs: list[Path], check_paths: bool, problems: list[str],
                   checker: Callable | None) -> dict:
    """A factory entry with its file path made absolute; its source is parsed, never run."""
    func = entry.get("func")
    target, sep, fn = func.rpartition(":") if isinstance(func, str) else ("", "", "")
    if sep and _is_file_spec(target) and fn.strip():
        found = _resolve(target.strip(), dirs)
        if found is not None and found.is_file():
            entry = {**entry, "func": f"{found}:{fn.strip()}"}
        elif check_paths:
            problems.append(f"{path}.func: file not found: {target} (looked in {_where(dirs)})")
            return entry
    if check_paths and checker:
        message = _ask(checker, entry)
    else:  # the entry's shape alone, without looking for files
        message = None
        shape = _rewards_api("factory_spec")
        try:
            if shape is not None:
                shape(entry)
        except ValueError as exc:
            message = str(exc)
    if message:
        problems.append(f"{path}: {message}")
    return entry


def _weights_mismatch(n_weights: int, n_funcs: int) -> str:
    weights = f"{n_weights} weight{'' if n_weights == 1 else 's'}"
    funcs = f"{n_funcs} function{'' if n_funcs == 1 else 's'}"
    return f"reward_weights: has {weights} but reward_funcs has {funcs}"


def _reward_name(spec: str | dict) -> str:
    if isinstance(spec, dict):  # a factory: named after the function it makes, known when it runs
        spec = str(spec.get("func", ""))
    if spec.startswith(REWARD_MODEL_PREFIX):  # the model's folder or repo name, as engine.rewards.scoring names it
        return spec[len(REWARD_MODEL_PREFIX):].strip().replace("\\", "/").rstrip("/").rpartition("/")[2]
    return spec.rpartition(":")[2] if ":" in spec else spec


def _cross_check(v: dict, bad: set, dirs: list[Path], check_paths: bool, problems: list[str],
                 given: set | None = None) -> None:
    """Checks that need several fields or the outside world; only on fields that passed alone.
    ``given``: the keys the preset set (the others hold their defaults)."""
    check_knobs(v, bad, problems, check_paths)  # optimizer, schedule, from_pretrained and checkpointing options
    batch, accum, gens = (v.get(k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations"))
    if None not in (batch, accum, gens) and (batch * accum) % gens:
        problems.append(
            f"per_device_train_batch_size: per_device_train_batch_size * gradient_accumulation_steps "
            f"= {batch} * {accum} = {batch * accum} completions per step is not a multiple of "
            f"num_generations ({gens})"
        )

    _check_agent(v, dirs, check_paths, problems)
    funcs = v.get("reward_funcs")
    if funcs is not None:
        if not funcs and not (v.get("environment") or v.get("environments")):
            problems.append("reward_funcs: name at least one reward function (or an environment with get_reward)")
        v["reward_funcs"] = funcs = _check_rewards(funcs, dirs, check_paths, problems)
        weights = v.get("reward_weights")
        if weights is not None and len(weights) != len(funcs):
            problems.append(_weights_mismatch(len(weights), len(funcs)))
        names = [_reward_name(f) for f in funcs]
        kwargs = dict(v.get("reward_kwargs") or {})
        for key in list(kwargs):
            if key not in names:
                problems.append(
                    f"reward_kwargs.{key}: no reward function named {key!r} in reward_funcs"
                    f"{_did_you_mean(key, names)}"
                )
                del kwargs[key]
        check_kwargs = _rewards_api("check_reward_kwargs")
        if kwargs and check_kwargs is not None and "max_completion_length" not in bad:
            try:
                problems.extend(check_kwargs(kwargs, max_completion_length=v.get("max_completion_length"), reward_funcs=funcs))
            except Exception as e:
                problems.append(f"reward_kwargs: could not check options: {type(e).__name__}: {e}")

    spg, gbs = v.get("steps_per_generation"), v.get("generation_batch_size")
    if spg is not None and gbs is not None:
        problems.append("generation_batch_size: set either steps_per_generation or generation_batch_size, not both")
    elif None not in (batch, accum, gens) and (spg is not None or gbs is not None):
        per_round = gbs if gbs is not None else batch * (spg or accum)
        if per_round % (batch * accum):
            problems.append(f"{'generation_batch_size' if gbs is not None else 'steps_per_generation'}: a generation "
                            f"round of {per_round} completions must feed whole optimizer steps of {batch * accum}")
        elif per_round % gens:
            problems.append(f"generation_batch_size: {per_round} completions per round is not a multiple of "
                            f"num_generations ({gens})")
    steps = v.get("max_steps")
    if isinstance(steps, int) and steps <= 0 and "num_train_epochs" not in bad and v.get("num_train_epochs") is None:
        problems.append(f"max_steps: {steps} trains for num_train_epochs passes over the prompts, but num_train_epochs "
                        "is None; set one of them")
    if v.get("sync_ref_model") and not v.get("beta"):
        problems.append("sync_ref_model: needs beta > 0 (without a KL term there is no reference model)")
    peft = v.get("peft")
    if peft is not None:
        problems.extend(_check_peft(peft))

    if v.get("use_vllm") and check_paths:
        problems.extend(vllm_problems(v.get("vllm_mode") or "colocate"))
    lo, hi = v.get("vllm_importance_sampling_clip_min"), v.get("vllm_importance_sampling_clip_max")
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"vllm_importance_sampling_clip_min: {lo:g} is above vllm_importance_sampling_clip_max ({hi:g})")

    lo, hi = v.get("entropy_coef_min"), v.get("entropy_coef_max")
    if lo is not None and hi is not None and lo > hi:
        problems.append(f"entropy_coef_min: {lo:g} is above entropy_coef_max ({hi:g})")
    mode = v.get("vllm_importance_sampling_mode") or "sequence_mask"
    if (v.get("loss_type") == "vespo" and v.get("use_vllm") and v.get("vllm_importance_sampling_correction", True)
            and not mode.startswith("token")):
        problems.append(f"vllm_importance_sampling_mode: loss_type vespo folds the correction into its sequence "
                        f"weight token by token; use token_truncate or token_mask (got {mode})")

    if v.get("log_completions") and v.get("log_completions_groups") == 0:
        problems.append("log_completions: the completion logs hold the groups each step logs; set log_completions_groups > 0")

    report_to = v.get("report_to")
    check_report_to = _reporting_api("check_report_to")
    if report_to and check_report_to is not None:
        problems.extend(_ask_all(check_report_to, report_to, check_paths))

    if v.get("model_config_overrides") and v.get("model_init") != "random":
        problems.append("model_config_overrides: only used with model_init: random (a pretrained model's shape is "
                        "fixed by its weights)")
    if v.get("model_init") == "random" and v.get("use_vllm"):
        problems.append("model_init: random builds the model in the training process, but vLLM loads its weights "
                        "from model_name_or_path; set use_vllm: false")
    model = v.get("model_name_or_path")
    if model is not None:
        found = _resolve(model, dirs)
        if found is not None:
            v["model_name_or_path"] = str(found)
            if check_paths:
                _check_local_model(found, v, problems, given)
        elif check_paths and _looks_local(model, dirs):
            problems.append(f"model_name_or_path: not found: {model} (looked in {_where(dirs)})")
    run_name = v.get("run_name")
    if isinstance(run_name, str) and (len(run_name) > 100 or not _FOLDER_NAME.fullmatch(run_name)):
        problems.append(f"run_name: names the run's folder: at most 100 letters, digits, '.', '_' or '-' "
                        f"(got {run_name[:40]!r}{'…' if len(run_name) > 40 else ''})")

    ds = v.get("dataset")
    if ds is not None:
        _check_dataset(ds, {k.partition(".")[2] for k in bad if str(k).startswith("dataset.")}, dirs, check_paths, problems)


_FOLDER_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _check_dataset(ds: dict, bad: set, dirs: list[Path], check_paths: bool, problems: list[str]) -> None:
    if ds.get("format") == "ranked" and ds.get("path") is None:
        problems.append("dataset.format: ranked groups are read from a local file: set dataset.path")
    sources = [k for k in ("task", "path", "name") if ds.get(k) is not None]
    if not bad & {"task", "path", "name"} and len(sources) != 1:
        got = "none is set" if not sources else f"got {' and '.join(sources)}"
        problems.append(
            f"dataset: set exactly one of dataset.task, dataset.path, dataset.name ({got}; "
            "clear one with --set dataset.<key>=null)"
        )
    task = ds.get("task")
    if task is not None:
        known, get_task = _task_registry()
        if task not in known:
            problems.append(f"dataset.task: unknown task {task!r}; known tasks: {', '.join(known)}{_did_you_mean(task, known)}")
        elif get_task is not None and "task_args" not in bad:
            key = (task, repr(sorted(ds["task_args"].items())))
            try:  # building the task is how its options get checked (tasks are cheap to build)
                if key not in _TASKS_BUILT:
                    get_task(task, **ds["task_args"])
                    _TASKS_BUILT.add(key)
            except (TypeError, ValueError) as e:
                problems.append(f"dataset.task_args: {e}")
            except Exception as e:
                problems.append(f"dataset.task_args: could not build task {task!r}: {type(e).__name__}: {e}")
    path = ds.get("path")
    if path is not None:
        suffix = Path(path).suffix.lower()
        if suffix not in DATASET_SUFFIXES:
            problems.append(f"dataset.path: unsupported file type {suffix or '(none)'!r}; use {', '.join(DATASET_SUFFIXES)}")
        found = _resolve(path, dirs)
        if found is not None and found.is_file():
            ds["path"] = str(found)
        elif check_paths:
            problems.append(f"dataset.path: file not found: {path} (looked in {_where(dirs)})")


# --------------------------------------------------------------------------- building


def _validate(
    d: Any,
    *,
    base_dir: str | os.PathLike | None,
    check_paths: bool,
    problems: list[str],
) -> RunConfig | None:
    if not isinstance(d, Mapping):
        problems.append(f"top level: expected a mapping of settings (key: value), got {_describe(d)}")
        return None
    d = translate(d, problems, set(_SCHEMA[RunConfig]))  # TRL's names, as GRPOConfig takes them
    good, bad = _check_block(RunConfig, d, "", problems)
    defaults = config_to_dict(RunConfig())
    values = {**defaults, **good}
    # the keys set to other than their defaults: a run's config.yaml, which lists every key,
    # is checked as the preset it came from was
    given = {k for k, value in good.items() if defaults.get(k, _BAD) != value}
    for key in bad:
        if "." not in key:
            values.pop(key, None)
    # Cross-field checks run on whatever passed alone, so all mistakes show at once.
    _cross_check(values, bad, _search_dirs(base_dir), check_paths, problems, given=given)
    if problems:
        return None
    ds = values.pop("dataset")
    return RunConfig(**values, dataset=DatasetConfig(**ds))


def config_from_dict(
    d: Mapping,
    *,
    base_dir: str | os.PathLike | None = None,
    check_paths: bool = True,
    source: str = "config",
) -> RunConfig:
    """Validate a preset-shaped mapping and build the RunConfig; ConfigError lists every problem.

    Relative paths resolve against ``base_dir`` (the preset's folder), the current folder,
    then the repository root; found paths are stored absolute. ``check_paths=False`` skips
    the checks that need the filesystem (model and dataset paths, reward plugins).
    """
    problems: list[str] = []
    cfg = _validate(d, base_dir=base_dir, check_paths=check_paths, problems=problems)
    if cfg is None:
        raise ConfigError(problems, source=source)
    return cfg

# --------------------------------------------------------------------------- live adjustment


def validate_adjustment(cfg: RunConfig, changes: Mapping[str, Any], max_positions: int | None = None) -> dict[str, Any]:
    """Check changes to a running job; returns them coerced, or raises ConfigError.

    Only ADJUSTABLE_FIELDS may change while a run is going: the rest shape the model,
    data or buffers the run was built with. ``max_positions``: the model's context length
    (``max_position_embeddings``) when known, which a completion must fit in.
    """
    if not isinstance(changes, Mapping):
        raise ConfigError([f"changes: expected a mapping, got {_describe(changes)}"], source="adjustment")
    problems: list[str] = []
    out: dict[str, Any] = {}
    schema = _SCHEMA[RunConfig]
    for key, value in changes.items():
        if key not in ADJUSTABLE_FIELDS:
            what = "not adjustable while running" if key in schema else "unknown key, not adjustable while running"
            hint = _did_you_mean(key, ADJUSTABLE_FIELDS) if key not in schema else ""
            problems.append(f"{key}: {what}{hint} (adjustable: {', '.join(ADJUSTABLE_FIELDS)})")
            continue
        v = _check_value(schema[key], key, value, problems)
        if v is not _BAD:
            out[key] = v
    length = out.get("max_completion_length")
    if length is not None and max_positions and length >= max_positions:
        problems.append(f"max_completion_length: must be below the model's context of {max_positions} tokens "
                        f"(max_position_embeddings), got {length}")
    weights = out.get("reward_weights")
    if weights is not None and len(weights) != len(cfg.reward_funcs):
        problems.append(_weights_mismatch(len(weights), len(cfg.reward_funcs)))
    if problems:
        raise ConfigError(problems, source="adjustment")
    return out
