"""Run config: field and cross-field validation that reports every problem at once."""

from __future__ import annotations

import ast
import dataclasses
import pickle
import sys
from pathlib import Path

import pytest
import yaml

import engine.config.schema as config
import engine.config.checks as config_checks
from conftest import write
from engine.config.schema import ConfigError, DatasetConfig, RunConfig, config_to_dict, dump_yaml
from engine.config.checks import config_from_dict, validate_adjustment
from engine.config.presets import config_from_yaml, load_preset


def problems_of(d: dict, **kwargs) -> list[str]:
    """The problems config_from_dict reports for ``d`` (fails if it validates)."""
    kwargs.setdefault("check_paths", False)
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, **kwargs)
    return info.value.problems


def one_problem(d: dict, **kwargs) -> str:
    problems = problems_of(d, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------- the dataclasses


def test_defaults_follow_the_spec():
    cfg = config_from_dict({}, check_paths=False)
    assert cfg.learning_rate == 1e-6
    assert cfg.loss_type == "dapo" and cfg.scale_rewards == "group"
    assert cfg.reward_funcs == ["accuracy"] and cfg.reward_weights is None
    assert cfg.dataset.task == "arithmetic" and cfg.dataset.split == "train"
    assert DatasetConfig().task is None  # a given dataset block starts empty
    assert cfg.model_name_or_path.endswith("assets/tiny-model")


def test_every_field_has_a_docstring():
    tree = ast.parse(Path(config.__file__).read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for name in ("RunConfig", "DatasetConfig", "PresetInfo"):
        body = classes[name].body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                doc = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), (
                    f"{name}.{stmt.target.id} has no docstring"
                )


def test_repo_root_is_the_folder_holding_engine():
    assert (config.REPO_ROOT / "engine" / "config" / "schema.py").is_file()


# --------------------------------------------------------------------------- all problems at once


def test_a_preset_with_many_mistakes_reports_them_all(tmp_path):
    preset = write(
        tmp_path / "tiny-arithmetic.yaml",
        """\
learnin_rate: 1e-5
temperature: 0
loss_type: dapoo
num_generations: 3
bf16: "yes"
reward_funcs: [accuracy, formt]
reward_weights: [1.0]
dataset:
  task: arithmetic
  splitt: test
  task_args: 3
""",
    )
    with pytest.raises(ConfigError) as info:
        load_preset(str(preset), check_paths=False)
    err = info.value
    text = str(err)
    assert text.startswith(f"preset tiny-arithmetic.yaml has {len(err.problems)} problems:\n  - ")
    expected = [
        "learnin_rate: unknown key (did you mean 'learning_rate'?)",
        "temperature: must be in (0, 100]",
        "loss_type: 'dapoo' is not one of grpo | bnpo | dr_grpo | dapo | cispo | sapo | luspo | vespo (did you mean 'dapo'?)",
        "bf16: expected true or false",
        "dataset.splitt: unknown key (did you mean 'split'?)",
        "dataset.task_args: expected a mapping",
        "per_device_train_batch_size: ",
        "reward_funcs[1]: ",
        "reward_weights: has 1 weight but reward_funcs has 2 functions",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in err.problems), (start, err.problems)
    assert len(err.problems) == len(expected)
    for problem in err.problems:
        assert f"  - {problem}" in text


def test_one_problem_is_singular():
    err = ConfigError(["seed: must be >= 0, got -1"], source="preset x.yaml")
    assert str(err) == "preset x.yaml has 1 problem:\n  - seed: must be >= 0, got -1"
    assert "has 2 problems:" in str(ConfigError(["a: x", "b: y"]))


def test_config_error_pickles():
    err = ConfigError(["a: x", "b: y"], source="preset p.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert back.problems == err.problems and str(back) == str(err)


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    "d, expected",
    [
        ({"learning_rate": "fast"}, "learning_rate: expected a number, got 'fast'"),
        ({"learning_rate": True}, "learning_rate: expected a number"),
        ({"learning_rate": float("nan")}, "learning_rate: expected a finite number"),
        ({"num_generations": 2.5}, "num_generations: expected a whole number"),
        ({"seed": True}, "seed: expected a whole number"),
        ({"bf16": "yes"}, "bf16: expected true or false"),
        ({"bf16": 1}, "bf16: expected true or false"),
        ({"shuffle": 1}, "shuffle: unknown key"),
        ({"dataset": {"task": "arithmetic", "shuffle": "no"}}, "dataset.shuffle: expected true or false"),
        ({"reward_funcs": "accuracy"}, "reward_funcs: expected a list"),
        ({"reward_funcs": ["accuracy", 3]}, "reward_funcs[1]: expected a string"),
        ({"reward_weights": 1.0}, "reward_weights: expected a list"),
        ({"reward_weights": [1.0, "x"], "reward_funcs": ["accuracy", "format"]}, "reward_weights[1]: expected a number"),
        ({"reward_kwargs": ["format"]}, "reward_kwargs: expected a mapping"),
        ({"reward_kwargs": {"format": 3}}, "reward_kwargs.format: expected a mapping of options"),
        ({"dataset": {"task": "arithmetic", "task_args": [1]}}, "dataset.task_args: expected a mapping"),
        ({"dataset": {"task": "arithmetic", "task_args": {1: 2}}}, "dataset.task_args: keys must be strings"),
        ({"dataset": "arithmetic"}, "dataset: expected a mapping"),
        ({"dataset": {"task": 5}}, "dataset.task: expected a string"),
        ({"model_name_or_path": 7}, "model_name_or_path: expected a string"),
        ({"temperature": None}, "temperature: must be set, got null"),
        ({"run_name": ["a"]}, "run_name: expected a string"),
    ],
)
def test_wrong_types_are_named(d, expected):
    assert one_problem(d).startswith(expected)


def test_lenient_numbers_and_trl_spellings():
    cfg = config_from_dict(
        {
            "learning_rate": "5e-5",  # YAML 1.1 reads this as a string
            "temperature": 1,  # int where a float is expected
            "max_steps": "1e3",
            "num_generations": 4.0,
            "scale_rewards": False,  # TRL: false -> none
            "top_k": None,  # TRL: None -> off
            "reward_weights": [1, "0.5"],
            "reward_funcs": ["accuracy", "format"],
        },
        check_paths=False,
    )
    assert cfg.learning_rate == 5e-5 and isinstance(cfg.learning_rate, float)
    assert cfg.temperature == 1.0 and isinstance(cfg.temperature, float)
    assert cfg.max_steps == 1000 and cfg.num_generations == 4
    assert cfg.scale_rewards == "none" and cfg.top_k == 0
    assert cfg.reward_weights == [1.0, 0.5]
    assert config_from_dict({"scale_rewards": True}, check_paths=False).scale_rewards == "group"


def test_yaml_numbers_without_a_dot_are_accepted(tmp_path):
    preset = write(tmp_path / "p.yaml", "learning_rate: 5e-5\nadam_epsilon: 1e-8\n")
    cfg = load_preset(str(preset), check_paths=False)
    assert cfg.learning_rate == 5e-5 and cfg.adam_epsilon == 1e-8


# --------------------------------------------------------------------------- enums and ranges


@pytest.mark.parametrize(
    "field, value",
    [
        ("loss_type", "ppo"),
        ("scale_rewards", "std"),
        ("importance_sampling_level", "seq"),
        ("lr_scheduler_type", "reduce_lr_on_plateau"),
        ("torch_dtype", "fp16"),
    ],
)
def test_enum_values(field, value):
    problem = one_problem({field: value})
    assert problem.startswith(f"{field}: {value!r} is not one of ")


@pytest.mark.parametrize(
    "field, value, good",
    [
        ("num_generations", 1, 2),
        ("temperature", 0, 0.1),
        ("top_p", 0, 1),
        ("top_p", 1.01, 0.5),
        ("top_k", -1, 0),
        ("max_completion_length", 0, 1),
        ("max_prompt_length", 0, None),
        ("learning_rate", -1e-5, 0),
        ("beta", -0.1, 0),
        ("epsilon", 0, 0.1),
        ("epsilon_high", 0, 0.28),
        ("num_iterations", 0, 1),
        ("warmup_ratio", 1.0, 0.0),
        ("warmup_ratio", -0.1, 0.5),
        ("per_device_train_batch_size", 0, 8),
        ("gradient_accumulation_steps", 0, 2),
        ("max_steps", -2, 1),
        ("min_p", 1.5, 0.1),
        ("adam_beta2", 1.0, 0.99),
        ("save_total_limit", 0, 2),
    ],
)
def test_ranges(field, value, good):
    assert one_problem({field: value}).startswith(f"{field}: must be ")
    config_from_dict({field: good}, check_paths=False)


def test_dataset_ranges():
    assert one_problem({"dataset": {"task": "arithmetic", "eval_size": -1}}).startswith("dataset.eval_size: must be >= 0")
    assert one_problem({"dataset": {"task": "arithmetic", "split": " "}}).startswith("dataset.split: must not be empty")


def test_batch_must_hold_whole_groups():
    problem = one_problem({"per_device_train_batch_size": 6, "gradient_accumulation_steps": 2, "num_generations": 8})
    assert "per_device_train_batch_size" in problem and "gradient_accumulation_steps" in problem
    assert "num_generations (8)" in problem and "12" in problem
    config_from_dict({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4, "num_generations": 8}, check_paths=False)


def test_reward_weights_length():
    problem = one_problem({"reward_funcs": ["accuracy", "format"], "reward_weights": [1.0]})
    assert problem == "reward_weights: has 1 weight but reward_funcs has 2 functions"


def test_reward_funcs_must_not_be_empty():
    assert one_problem({"reward_funcs": []}).startswith("reward_funcs: name at least one")


# --------------------------------------------------------------------------- dataset source


@pytest.mark.parametrize(
    "dataset, got",
    [
        ({}, "none is set"),
        ({"task": "arithmetic", "name": "openai/gsm8k"}, "got task and name"),
        ({"path": "a.jsonl", "name": "openai/gsm8k"}, "got path and name"),
    ],
)
def test_exactly_one_dataset_source(dataset, got):
    problem = one_problem({"dataset": dataset})
    assert problem.startswith("dataset: set exactly one of dataset.task, dataset.path, dataset.name")
    assert got in problem


def test_unknown_task():
    problem = one_problem({"dataset": {"task": "arithmetc"}})
    assert problem.startswith("dataset.task: unknown task 'arithmetc'")
    assert "(did you mean 'arithmetic'?)" in problem


def test_unknown_task_without_a_task_registry(monkeypatch):
    monkeypatch.setitem(sys.modules, "engine.data.tasks", None)  # the import now fails
    assert "known tasks: arithmetic" in one_problem({"dataset": {"task": "sudoku"}})
    config_from_dict({"dataset": {"task": "arithmetic", "task_args": {"anything": 1}}}, check_paths=False)


def test_task_options_are_checked_by_the_task():
    tasks = pytest.importorskip("engine.data.tasks")
    if not hasattr(tasks, "get_task"):
        pytest.skip("no task registry yet")
    problem = one_problem({"dataset": {"task": "arithmetic", "task_args": {"digit": 3}}})
    assert problem.startswith("dataset.task_args: ") and "digits" in problem


def test_dataset_file(tmp_path):
    problem = one_problem({"dataset": {"path": "missing.jsonl"}}, base_dir=tmp_path, check_paths=True, )
    assert problem.startswith("dataset.path: file not found: missing.jsonl")
    assert one_problem({"dataset": {"path": "data.txt"}}).startswith("dataset.path: unsupported file type '.txt'")
    data = write(tmp_path / "data" / "train.jsonl", '{"prompt": "1+1=", "answer": "2"}\n')
    cfg = config_from_dict({"dataset": {"path": "data/train.jsonl"}}, base_dir=tmp_path)
    assert cfg.dataset.path == str(data)


# --------------------------------------------------------------------------- model path


@pytest.mark.parametrize("model", ["./no-such-model", "/no/such/model", "~/no-such-model", "a/b/c"])
def test_missing_local_model_path(model, tmp_path):
    problem = one_problem({"model_name_or_path": model}, base_dir=tmp_path, check_paths=True)
    assert problem.startswith(f"model_name_or_path: not found: {model}")


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-0.5B", "gpt2"])
def test_hub_ids_are_not_checked(model, tmp_path):
    cfg = config_from_dict({"model_name_or_path": model}, base_dir=tmp_path)
    assert cfg.model_name_or_path == model


def test_path_whose_first_folder_exists_is_local(tmp_path):
    (tmp_path / "models").mkdir()
    problem = one_problem({"model_name_or_path": "models/missing"}, base_dir=tmp_path, check_paths=True)
    assert problem.startswith("model_name_or_path: not found: models/missing")


def test_check_paths_false_skips_the_filesystem(tmp_path):
    d = {
        "model_name_or_path": "./nowhere",
        "dataset": {"path": "nowhere.jsonl"},
        "reward_funcs": ["nowhere/plugin.py:score"],
    }
    cfg = config_from_dict(d, base_dir=tmp_path, check_paths=False)
    assert cfg.model_name_or_path == "./nowhere"
    assert len(problems_of(d, base_dir=tmp_path, check_paths=True)) == 3


# --------------------------------------------------------------------------- path resolution


def test_relative_paths_prefer_the_preset_folder(tmp_path, monkeypatch, model_dir):
    preset_dir = tmp_path / "presets"
    cwd = tmp_path / "cwd"
    write(preset_dir / "data.jsonl", "{}\n")
    write(cwd / "data.jsonl", "{}\n")
    write(cwd / "rewards" / "mine.py", "def score(prompts, completions, **kw):\n    return [0.0] * len(completions)\n")
    monkeypatch.chdir(cwd)
    preset = write(
        preset_dir / "p.yaml",
        f"model_name_or_path: {model_dir}\n"
        "dataset: {path: data.jsonl}\n"
        "reward_funcs: [accuracy, rewards/mine.py:score]\n",
    )
    cfg = load_preset(str(preset))
    assert cfg.dataset.path == str(preset_dir / "data.jsonl")  # preset folder wins over cwd
    assert cfg.reward_funcs[1] == f"{cwd / 'rewards' / 'mine.py'}:score"  # then the current folder
    assert cfg.model_name_or_path == str(model_dir)


def test_relative_paths_fall_back_to_the_repo_root(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "assets" / "tiny-model").mkdir(parents=True)
    (repo / "assets" / "tiny-model" / "config.json").write_text("{}")
    monkeypatch.setattr(config_checks, "REPO_ROOT", repo)
    monkeypatch.chdir(tmp_path)
    cfg = config_from_dict({}, base_dir=tmp_path / "elsewhere")
    assert cfg.model_name_or_path == str(repo / "assets" / "tiny-model")


def test_reward_plugins(tmp_path):
    assert one_problem({"reward_funcs": ["formt"]}).startswith("reward_funcs[0]: ")
    assert "did you mean 'format'?" in one_problem({"reward_funcs": ["formt"]})
    assert "not 'module:function'" in one_problem({"reward_funcs": ["mod:"]})
    missing = one_problem({"reward_funcs": ["plugins/r.py:fn"]}, base_dir=tmp_path, check_paths=True)
    assert missing.startswith("reward_funcs[0]: file not found: plugins/r.py")


def test_reward_plugin_that_does_not_resolve(tmp_path):
    if config_checks._rewards_api("check_reward_spec") is None:
        pytest.skip("no reward checker yet")
    write(tmp_path / "r.py", "def score(prompts, completions, **kw):\n    return [1.0] * len(completions)\n")
    config_from_dict({"reward_funcs": ["r.py:score"]}, base_dir=tmp_path)
    assert one_problem({"reward_funcs": ["r.py:nope"]}, base_dir=tmp_path, check_paths=True).startswith("reward_funcs[0]: ")


def test_without_the_rewards_module(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "engine.rewards.scoring", None)
    assert "did you mean 'format'?" in one_problem({"reward_funcs": ["formt"]})
    write(tmp_path / "r.py", "x = 1\n")
    config_from_dict({"reward_funcs": ["r.py:nope"]}, base_dir=tmp_path)  # cannot be checked: skipped


def test_reward_kwargs_must_name_a_reward_function():
    problem = one_problem({"reward_funcs": ["accuracy", "format"], "reward_kwargs": {"formt": {}}})
    assert problem.startswith("reward_kwargs.formt: no reward function named 'formt'")
    assert "(did you mean 'format'?)" in problem


# --------------------------------------------------------------------------- round trip


def test_round_trip(tmp_path, model_dir):
    write(tmp_path / "train.jsonl", "{}\n")
    write(tmp_path / "r.py", "def score(prompts, completions, **kw):\n    return [1.0] * len(completions)\n")
    preset = write(
        tmp_path / "rt.yaml",
        f"model_name_or_path: {model_dir}\n"
        "dataset: {path: train.jsonl, system_prompt: 'Think: then answer', shuffle: false}\n"
        "reward_funcs: [accuracy, r.py:score]\nreward_weights: [1, 0.5]\n"
        "reward_kwargs: {accuracy: {}}\nlearning_rate: 3e-6\nepsilon_high: 0.28\n",
    )
    try:
        cfg = load_preset(str(preset))
    except ConfigError as e:  # a reward checker stricter about accuracy's options is fine
        assert all(p.startswith("reward_kwargs") for p in e.problems), e.problems
        cfg = load_preset(str(preset), ["reward_kwargs={}"])
    assert cfg.dataset.path == str(tmp_path / "train.jsonl")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg
    assert config_from_yaml(dump_yaml(cfg)) == cfg


def test_config_to_dict_is_plain_data():
    d = config_to_dict(RunConfig())
    assert isinstance(d["dataset"], dict) and d["dataset"]["task"] == "arithmetic"
    assert set(d) == {f.name for f in dataclasses.fields(RunConfig)}


# --------------------------------------------------------------------------- live adjustment


def test_validate_adjustment_coerces():
    cfg = RunConfig(reward_funcs=["accuracy", "format"])
    out = validate_adjustment(cfg, {"learning_rate": "5e-5", "temperature": 1, "reward_weights": [1, 0.5], "epsilon_high": None})
    assert out == {"learning_rate": 5e-5, "temperature": 1.0, "reward_weights": [1.0, 0.5], "epsilon_high": None}
    assert isinstance(out["temperature"], float)
    assert validate_adjustment(cfg, {}) == {}


def test_validate_adjustment_reports_every_problem():
    cfg = RunConfig()
    with pytest.raises(ConfigError) as info:
        validate_adjustment(
            cfg,
            {"num_generations": 4, "learnin_rate": 1e-5, "top_p": 0, "reward_weights": [1, 2], "max_completion_length": "x"},
        )
    problems = info.value.problems
    assert problems[0].startswith("num_generations: not adjustable while running")
    assert problems[1].startswith("learnin_rate: ") and "did you mean 'learning_rate'?" in problems[1]
    assert problems[2].startswith("top_p: must be in (0, 1]")
    assert problems[3].startswith("max_completion_length: expected a whole number")
    assert problems[4] == "reward_weights: has 2 weights but reward_funcs has 1 function"
    assert len(problems) == 5


def test_values_that_make_no_sense_are_refused(tmp_path):
    not_a_model = tmp_path / "weights.bin"
    not_a_model.write_text("x")
    cases = {
        "model_name_or_path": (str(not_a_model), "is not a model folder (a folder with config.json, or a hub id)"),
        "num_generations": (1_000_000, "num_generations: must be in [2, 4096]"),
        "seed": (2**64, "seed: must be in [0, 4.29497e+09]"),
        "run_name": ("x" * 300, "run_name: names the run's folder"),
    }
    for key, (value, message) in cases.items():
        problem = one_problem({key: value}, check_paths=True)
        assert message in problem, (key, problem)


def test_completion_length_is_checked_against_the_models_context() -> None:
    """The bundled model has 128 positions (its config.json, read without loading it): 1024
    new tokens are refused when the preset loads, not after the model did; a random-init
    model given more positions by model_config_overrides may generate them."""
    with pytest.raises(ConfigError) as info:
        load_preset("tiny-arithmetic", ["max_completion_length=1024"])
    assert info.value.problems == [
        "max_completion_length: must be below the model's context of 128 tokens "
        "(max_position_embeddings in its config.json), got 1024"]
    cfg = load_preset("tiny-arithmetic", ["max_completion_length=1024", "model_init=random",
                                          "model_config_overrides={max_position_embeddings: 2048}"])
    assert cfg.max_completion_length == 1024
    assert config_checks.model_context(Path(cfg.model_name_or_path)) == 128
