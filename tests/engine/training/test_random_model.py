"""``model_init: random``: a model built at load time from the bundled model's architecture and a
few overrides, and the slow preset that uses it to make steps as long as a real model's."""

from __future__ import annotations

import pytest
import torch

from conftest import train
from engine.config.presets import find_presets, load_preset
from engine.config.schema import ConfigError
from engine.run.events import RunFinished
from engine.training.model_loading import load_model_and_tokenizer, load_reference_model, random_model

SLOW_PRESET = "slow-llama-25m"
SMALL = "model_config_overrides={hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4}"
"""Overrides that keep the slow preset's design but make it fast enough for a test."""


def small_config(tmp_path, *overrides: str):
    """The slow preset with a 2-layer, 64-wide model and short completions."""
    base = [f"output_dir={tmp_path / 'run'}", SMALL, "max_completion_length=8", "dataset.task_args.eval_size=16"]
    return load_preset(SLOW_PRESET, [*base, *overrides])


def test_slow_preset_validates_and_builds_a_random_model():
    cfg = load_preset(SLOW_PRESET)
    assert cfg.model_init == "random"
    assert cfg.model_config_overrides["num_hidden_layers"] == 8
    assert cfg.max_completion_length >= 128 and cfg.beta == 0
    info = next(p for p in find_presets() if p.name == SLOW_PRESET)
    assert info.ok, info.problems
    assert "Time:" in info.description and "Hardware:" in info.description


def test_random_model_has_the_overridden_shape_and_follows_the_seed(tmp_path):
    cfg = small_config(tmp_path)
    rng_before = torch.get_rng_state()
    model = random_model(cfg, torch.float32)
    assert torch.equal(torch.get_rng_state(), rng_before), "building must not move the global random stream"
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (2, 64)
    assert model.config.head_dim == 16  # follows hidden_size / num_attention_heads, not config.json's 32
    assert len(model.model.layers) == 2
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (64, 64)

    again = random_model(cfg, torch.float32).state_dict()
    other = random_model(small_config(tmp_path, "seed=7"), torch.float32).state_dict()
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, again[name]), name
    assert any(not torch.equal(w, other[n]) for n, w in model.state_dict().items() if w.ndim == 2)


def test_reference_is_the_starting_point_and_resume_loads_the_checkpoint(tmp_path):
    cfg = small_config(tmp_path, "beta=0.04")
    cpu = torch.device("cpu")
    policy, tokenizer = load_model_and_tokenizer(cfg, cpu)
    start = {n: w.clone() for n, w in policy.state_dict().items()}
    with torch.no_grad():  # training moves the policy: the reference must not follow it
        for p in policy.parameters():
            p.add_(0.5)
    ref = load_reference_model(cfg, cpu)
    assert all(torch.equal(w, start[n]) for n, w in ref.state_dict().items())

    checkpoint = tmp_path / "ckpt"
    policy.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    resumed, _ = load_model_and_tokenizer(cfg, cpu, path=checkpoint)
    trained = policy.state_dict()
    assert all(torch.equal(w, trained[n]) for n, w in resumed.state_dict().items())


def test_unknown_override_key_is_refused_with_its_name(tmp_path):
    cfg = small_config(tmp_path, "model_config_overrides.hiden_size=64")
    with pytest.raises(ConfigError) as err:
        load_model_and_tokenizer(cfg, torch.device("cpu"))
    assert err.value.problems == ["model_config_overrides.hiden_size: not a setting of LlamaConfig "
                                  "(did you mean 'hidden_size'?)"]


def test_overrides_need_random_init(tmp_path):
    with pytest.raises(ConfigError, match="model_config_overrides: only used with model_init: random"):
        small_config(tmp_path, "model_init=pretrained")


@pytest.mark.slow
def test_one_step_trains_and_saves_the_overridden_shape(tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = small_config(tmp_path, "max_steps=1", "max_completion_length=32", "beta=0.04", "eval_max_samples=2", "log_completions_groups=1")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    final = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "final")
    assert (final.config.num_hidden_layers, final.config.hidden_size, final.config.head_dim) == (2, 64, 16)
    start = random_model(cfg, torch.float32).state_dict()
    assert any(not torch.equal(w, start[n]) for n, w in final.state_dict().items()), "the step changed nothing"
