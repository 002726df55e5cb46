"""One source for each config rule: the dataclass annotations (``Literal`` choices,
``Annotated`` ranges) drive validation, and the field docstrings reach users as a reference."""

from __future__ import annotations

import dataclasses
import doctest
import subprocess
import sys
import typing

import pytest

import engine.config.constraints as constraints
import engine.config.docs as docs
from conftest import ROOT
from engine.config.checks import config_from_dict, validate_adjustment
from engine.config.constraints import NotEmpty, Range
from engine.config.docs import doc_for, field_docs, match_fields
from engine.config.schema import (
    ConfigError,
    DatasetConfig,
    ImportanceSamplingLevel,
    LossType,
    RunConfig,
    ScaleRewards,
)


def problems_of(d: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, check_paths=False)
    return info.value.problems


def annotated_fields(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls, include_extras=True)


def unwrap(tp):
    """``Annotated[X, ...] | None`` → (X, its markers)."""
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return base, meta
    return tp, []


def as_preset(cls: type, name: str, value) -> dict:
    if cls is DatasetConfig:
        return {"dataset": {"task": "arithmetic", name: value}}
    return {name: value}


# --------------------------------------------------------------------------- the annotations are the rules


def test_named_choice_aliases_type_their_fields():
    hints = annotated_fields(RunConfig)
    assert hints["loss_type"] is LossType and typing.get_args(LossType) == (
        "grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
    assert hints["scale_rewards"] is ScaleRewards and typing.get_args(ScaleRewards) == ("group", "batch", "none")
    assert hints["importance_sampling_level"] is ImportanceSamplingLevel


@pytest.mark.parametrize("cls", [RunConfig, DatasetConfig])
def test_every_literal_field_accepts_its_choices_and_names_them_when_wrong(cls):
    prefix = "dataset." if cls is DatasetConfig else ""
    checked = 0
    for name, tp in annotated_fields(cls).items():
        base, _ = unwrap(tp)
        if typing.get_origin(base) is not typing.Literal:
            continue
        choices = typing.get_args(base)
        for choice in choices:
            if cls is DatasetConfig and choice == "ranked":
                continue  # ranked groups also need dataset.path (a cross-field check)
            extra = {"lr_scheduler_kwargs": {"min_lr_rate": 0.1}} if choice.endswith("_min_lr") else {}
            config_from_dict({**as_preset(cls, name, choice), **extra}, check_paths=False)
        problem, = problems_of(as_preset(cls, name, "not-a-choice"))
        assert problem == f"{prefix}{name}: 'not-a-choice' is not one of {' | '.join(choices)}"
        checked += 1
    assert checked >= (8 if cls is RunConfig else 1)


def problems_for(d: dict) -> list[str]:
    """Every problem of ``d``; [] when it validates."""
    try:
        config_from_dict(d, check_paths=False)
    except ConfigError as err:
        return err.problems
    return []


@pytest.mark.parametrize("cls", [RunConfig, DatasetConfig])
def test_every_range_annotation_bounds_its_field(cls):
    prefix = "dataset." if cls is DatasetConfig else ""
    checked = 0
    for name, tp in annotated_fields(cls).items():
        base, meta = unwrap(tp)
        path = f"{prefix}{name}"
        for marker in meta:
            if isinstance(marker, Range):
                outside = [marker.ge - 1 if marker.ge is not None else marker.gt]
                if marker.upper is not None:
                    outside.append(marker.le + 1 if marker.le is not None else marker.lt)
                for value in outside:
                    problem, = problems_of(as_preset(cls, name, base(value)))
                    assert problem.startswith(f"{path}: must be "), problem
                edge = marker.ge if marker.ge is not None else marker.gt + (1 if base is int else 0.5)
                assert not [p for p in problems_for(as_preset(cls, name, base(edge))) if p.startswith(f"{path}: must")]
                checked += 1
            elif isinstance(marker, NotEmpty):
                problem, = problems_of(as_preset(cls, name, "  "))
                assert problem == f"{path}: must not be empty"
                checked += 1
    assert checked >= (45 if cls is RunConfig else 5)


def test_a_live_adjustment_is_checked_against_the_same_annotations():
    with pytest.raises(ConfigError) as info:
        validate_adjustment(RunConfig(), {"top_p": 0, "beta": -1})
    assert info.value.problems == ["top_p: must be in (0, 1], got 0.0", "beta: must be in [0, 1000], got -1.0"]


def test_range_and_not_empty_speak_both_to_errors_and_to_readers():
    assert Range(ge=1, le=65535).problem(0) == "must be in [1, 65535], got 0"
    assert Range(gt=0).problem(0) == "must be > 0, got 0"
    assert Range(ge=0, lt=1).describe() == "in [0, 1)"
    assert Range(le=2).problem(3) == "must be <= 2, got 3" and Range(lt=2).describe() == "< 2"
    assert Range(ge=0).problem(0) is None and NotEmpty().problem(" x ") is None
    with pytest.raises(ValueError):
        Range(ge=0, gt=0)


@pytest.mark.parametrize("module", [constraints, docs])
def test_worked_examples_in_docstrings_hold(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


# --------------------------------------------------------------------------- the field reference


def test_every_key_is_documented_with_type_default_and_doc():
    keys = [d.key for d in field_docs()]
    expected = [f.name for f in dataclasses.fields(RunConfig)]
    at = expected.index("dataset") + 1
    expected[at:at] = [f"dataset.{f.name}" for f in dataclasses.fields(DatasetConfig)]
    assert keys == expected
    assert all(d.doc and d.type and d.default and d.section for d in field_docs())


def test_the_reference_reads_as_a_user_writes_values():
    lr = doc_for("learning_rate")
    assert (lr.type, lr.default, lr.doc) == ("float in [0, 1]", "1e-06", "learning rate (peak, after warm-up)")
    assert lr.summary() == "learning_rate: float in [0, 1] = 1e-06 — learning rate (peak, after warm-up)"
    assert doc_for("loss_type").type == " | ".join(f'"{c}"' for c in typing.get_args(LossType))
    assert doc_for("loss_type").default == '"dapo"'
    assert doc_for("top_p").type == "float in (0, 1]"
    assert doc_for("num_iterations").type == "int ≥ 1"
    assert doc_for("max_prompt_length").type == "int ≥ 1 | None"
    assert doc_for("output_dir").type == "str | None" and doc_for("output_dir").default == "None"
    assert doc_for("reward_funcs").type == "list[str | dict]" and doc_for("reward_funcs").default == '["accuracy"]'
    assert doc_for("dataset").default == '{task: "arithmetic"}'
    assert doc_for("dataset.split").section == "dataset"
    assert doc_for("beta").section == "algorithm"


def test_a_nested_key_finds_the_field_holding_it():
    assert doc_for("dataset.task_args.digits").key == "dataset.task_args"
    assert doc_for("reward_kwargs.format.pattern").key == "reward_kwargs"
    assert doc_for("learnin_rate") is None


def test_fields_are_found_by_substring_or_glob():
    assert [d.key for d in match_fields("learning")] == ["learning_rate"]
    assert [d.key for d in match_fields("LEARNING_RATE")] == ["learning_rate"]
    assert all(d.key.startswith("vllm_") for d in match_fields("vllm_*")) and len(match_fields("vllm_*")) >= 10
    assert [d.key for d in match_fields("dataset.sp*")] == ["dataset.split"]
    assert match_fields(None) == field_docs() and match_fields("zzz") == []


def test_the_reference_imports_no_torch():
    code = "import engine.config.docs as d, sys; d.field_docs(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
