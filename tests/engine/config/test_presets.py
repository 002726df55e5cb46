"""Presets: YAML text, ``--set`` overrides, and preset files found by name or path."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.schema import ConfigError, DatasetConfig, PresetInfo, RunConfig, config_to_dict
from engine.config.checks import config_from_dict
from engine.config.presets import apply_overrides, config_from_yaml, find_presets, load_preset
from conftest import write


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A private home and working folder, so only this test's presets are found there."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(work)
    return tmp_path


# --------------------------------------------------------------------------- YAML


def test_yaml_syntax_error_names_the_line(tmp_path):
    preset = write(tmp_path / "broken.yaml", "seed: 1\nreward_funcs: [accuracy\nbeta: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_preset(str(preset))
    assert str(info.value).startswith("preset broken.yaml has 1 problem:")
    assert "line 3" in info.value.problems[0]


@pytest.mark.parametrize("text, what", [("- 1\n- 2\n", "a list"), ("just text\n", "'just text'"), ("42", "42")])
def test_top_level_must_be_a_mapping(text, what):
    with pytest.raises(ConfigError) as info:
        config_from_yaml(text)
    (problem,) = info.value.problems
    assert problem.startswith("top level: expected a mapping") and what in problem and "line 1" in problem


@pytest.mark.parametrize("text", ["a: 2020-13-45\n", "a: !!binary '@@'\n", "? [a, b]\n: 1\n", "---\na: 1\n---\nb: 2\n", "a: *nope\n"])
def test_odd_yaml_is_a_config_error(text):
    with pytest.raises(ConfigError):
        config_from_yaml(text)


def test_empty_preset_is_all_defaults(tmp_path):
    preset = write(tmp_path / "empty.yaml", "# nothing set\n")
    cfg = load_preset(str(preset), check_paths=False)
    assert cfg.run_name == "empty" and cfg.learning_rate == RunConfig().learning_rate


def test_unreadable_preset(tmp_path):
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes(b"run_name: caf\xe9\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_preset(str(preset))


# --------------------------------------------------------------------------- overrides


def test_overrides_nested_and_typed():
    d = {"dataset": {"task": "arithmetic"}, "seed": 1}
    out = apply_overrides(
        d,
        [
            "learning_rate=5e-5",
            "dataset.split=test",
            "dataset.task_args.digits=3",
            "reward_funcs=[accuracy, format]",
            "bf16=true",
            "run_name=123",
            "dataset.system_prompt=Answer: briefly",
            "save_total_limit=",
        ],
    )
    assert d == {"dataset": {"task": "arithmetic"}, "seed": 1}  # the input is not changed
    assert out["dataset"] == {
        "task": "arithmetic",
        "split": "test",
        "task_args": {"digits": 3},
        "system_prompt": "Answer: briefly",  # a str field takes the text even when YAML reads a mapping
    }
    assert out["reward_funcs"] == ["accuracy", "format"] and out["bf16"] is True
    assert out["run_name"] == "123"
    assert out["save_total_limit"] is None
    cfg = config_from_dict(out, check_paths=False)
    assert cfg.learning_rate == 5e-5 and cfg.dataset.split == "test"
    assert cfg.dataset.task_args == {"digits": 3}


def test_override_creates_missing_blocks():
    out = apply_overrides({}, ["dataset.name=openai/gsm8k", "reward_kwargs.format.pattern=^x$"])
    assert out == {"dataset": {"name": "openai/gsm8k"}, "reward_kwargs": {"format": {"pattern": "^x$"}}}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("learnin_rate=1e-5", "learnin_rate: unknown key (did you mean 'learning_rate'?)"),
        ("dataset.splt=test", "dataset.splt: unknown key in dataset (did you mean 'split'?)"),
        ("seed.x=1", "seed.x: seed is not a mapping"),
        ("learning_rate", "learning_rate: override 'learning_rate' is not key=value"),
        ("=3", "=3: override '=3' is not key=value"),
    ],
)
def test_bad_overrides(override, expected):
    with pytest.raises(ConfigError) as info:
        apply_overrides({}, [override])
    (problem,) = info.value.problems
    assert problem.startswith(expected)


def test_overrides_apply_before_validation(tmp_path):
    preset = write(tmp_path / "p.yaml", "temperature: 0\nnum_generations: 3\n")
    cfg = load_preset(str(preset), ["temperature=0.7", "num_generations=4"], check_paths=False)
    assert cfg.temperature == 0.7 and cfg.num_generations == 4


def test_override_and_preset_problems_are_reported_together(tmp_path):
    preset = write(tmp_path / "p.yaml", "temperature: 0\n")
    with pytest.raises(ConfigError) as info:
        load_preset(str(preset), ["learnin_rate=1", "top_p=2"], check_paths=False)
    starts = sorted(p.split(":")[0] for p in info.value.problems)
    assert starts == ["learnin_rate", "temperature", "top_p"]


def test_switching_dataset_source_by_override(tmp_path):
    preset = write(tmp_path / "p.yaml", "dataset: {task: arithmetic}\n")
    with pytest.raises(ConfigError, match="exactly one"):
        load_preset(str(preset), ["dataset.name=openai/gsm8k"], check_paths=False)
    cfg = load_preset(str(preset), ["dataset.name=openai/gsm8k", "dataset.task=null"], check_paths=False)
    assert cfg.dataset.name == "openai/gsm8k" and cfg.dataset.task is None


# --------------------------------------------------------------------------- finding presets


def test_load_preset_by_name(isolated):
    write(isolated / "work" / "presets" / "zz-local-test.yaml", "seed: 7\n")
    write(isolated / "home" / ".config" / "grpo-tui" / "presets" / "zz-home-test.yml", "seed: 8\n")
    assert load_preset("zz-local-test", check_paths=False).seed == 7
    assert load_preset("zz-local-test.yaml", check_paths=False).seed == 7
    cfg = load_preset("zz-home-test", check_paths=False)
    assert cfg.seed == 8 and cfg.run_name == "zz-home-test"
    assert load_preset("zz-home-test", ["run_name=mine"], check_paths=False).run_name == "mine"


def test_missing_preset_lists_the_available_ones(isolated):
    write(isolated / "work" / "presets" / "zz-local-test.yaml", "seed: 7\n")
    with pytest.raises(ConfigError) as info:
        load_preset("zz-local-tst")
    (problem,) = info.value.problems
    assert "did you mean 'zz-local-test'?" in problem and "available presets:" in problem
    with pytest.raises(ConfigError, match="file not found"):
        load_preset(str(isolated / "nope.yaml"))


def test_find_presets(isolated, model_dir):
    folder = isolated / "work" / "presets"
    write(folder / "zz-good.yaml", f"# A good one.\n#\n# Runs anywhere.\nmodel_name_or_path: {model_dir}\n# not part of it\n")
    write(folder / "zz-bad.yaml", "learnin_rate: 1\n")
    write(folder / "zz-broken.yaml", "a: [\n")
    write(folder / "notes.txt", "not a preset")
    infos = {i.name: i for i in find_presets() if i.path.parent == folder}
    assert set(infos) == {"zz-good", "zz-bad", "zz-broken"}
    good = infos["zz-good"]
    assert isinstance(good, PresetInfo) and good.ok and good.problems == []
    assert good.description == "A good one.\n\nRuns anywhere."
    assert good.path == folder / "zz-good.yaml"
    assert not infos["zz-bad"].ok
    assert any("did you mean 'learning_rate'?" in p for p in infos["zz-bad"].problems)
    assert not infos["zz-broken"].ok and "line" in infos["zz-broken"].problems[0]


# --------------------------------------------------------------------------- fuzz


FIELD_NAMES = [f.name for f in dataclasses.fields(RunConfig)] + [f.name for f in dataclasses.fields(DatasetConfig)]
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12), st.integers(-3, 3), st.none(), st.booleans())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["5e-5", "1e3", "arithmetic", "accuracy", "format", "dapo", "group", "./x", "a/b/c", "m:f", "x.py:f", "", "~"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)),
    max_leaves=25,
)
top_level = st.one_of(st.dictionaries(st.sampled_from(FIELD_NAMES), documents, max_size=8), documents)


def valid_or_config_error(text: str) -> None:
    try:
        cfg = config_from_yaml(text)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
        str(err)
    else:
        assert isinstance(cfg, RunConfig)
        assert config_from_dict(config_to_dict(cfg)) == cfg


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top_level)
def test_any_yaml_document_gives_a_config_or_a_config_error(doc):
    valid_or_config_error(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:- \n[]{}#'\"!&*?|>%@`,.0123456789e\t")) | st.characters(), max_size=60))
def test_any_yaml_text_gives_a_config_or_a_config_error(text):
    valid_or_config_error(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FIELD_NAMES + ["dataset.task", "dataset.split", "x.y", ""]), st.text(max_size=10)), max_size=4))
def test_any_override_gives_a_config_or_a_config_error(pairs):
    try:
        cfg = config_from_yaml("", [f"{k}={v}" for k, v in pairs], check_paths=False)
    except ConfigError:
        return
    assert isinstance(cfg, RunConfig)


# --------------------------------------------------------------------------- bundled presets


def test_every_bundled_preset_is_well_formed():
    """Structure and values of every shipped preset (hardware and hub checks aside: those need
    the machine the preset names)."""
    from conftest import ROOT

    presets = sorted((ROOT / "presets").glob("*.yaml"))
    assert len(presets) >= 6
    for path in presets:
        cfg = load_preset(str(path), check_paths=False)
        assert cfg.max_steps > 0, path.name
        text = path.read_text(encoding="utf-8")
        assert "# Hardware:" in text, f"{path.name} does not say what it needs"


def test_a_wheel_ships_every_bundled_preset_and_the_tiny_model():
    """pyproject's data-files cover presets/ and assets/tiny-model/ (installed under
    share/grpo-tui, where engine.config.schema looks when there is no source tree)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from conftest import ROOT

    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {p.resolve() for patterns in spec.values() for pattern in patterns for p in ROOT.glob(pattern)}
    wanted = [*(ROOT / "presets").rglob("*.yaml"), *(ROOT / "assets" / "tiny-model").iterdir()]
    assert wanted and not [str(p.relative_to(ROOT)) for p in wanted if p.resolve() not in shipped]
    assert all(dest.startswith("share/grpo-tui/") for dest in spec)


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nmodel_name_or_path: assets/tiny-model\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded():
    import tracemalloc

    from engine.config.presets import config_from_yaml

    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as err:
            config_from_yaml(_bomb(9))  # 9**10 values expanded: about 20 GB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.problems == ["yaml: more than 100,000 values once its aliases are expanded: not a preset"]
    assert peak < 100e6


def test_duplicate_keys_deep_nesting_and_recursive_aliases_are_errors():
    from engine.config.presets import config_from_yaml

    cases = {
        "model_name_or_path: assets/tiny-model\nlearning_rate: 1e-5\nlearning_rate: 2e-5\n":
            "yaml: line 3: duplicate key 'learning_rate' (first on line 2)",
        "model_name_or_path: assets/tiny-model\nreward_kwargs: " + "[" * 60 + "]" * 60 + "\n":
            "yaml: line 2: nested deeper than 50 levels",
        "a: &a [*a]\n": "a value that contains itself",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as err:
            config_from_yaml(text, check_paths=False)
        assert any(message in p for p in err.value.problems), (text[:40], err.value.problems)
