"""A TRL user's expectations hold: every RunConfig field that TRL 1.16's GRPOConfig (or
transformers' TrainingArguments) also has starts at TRL's default, except the few deliberate
differences listed below with their reasons (the README's "Differences from TRL" says the same).

TRL's fields and defaults are in tests/data/trl-1.16-grpo-fields.json (see make_trl_fields.py).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.config.checks import config_from_dict
from engine.config.schema import ConfigError, RunConfig
from tests.conftest import ROOT

TRL_FIELDS: dict = json.loads((ROOT / "tests" / "data" / "trl-1.16-grpo-fields.json").read_text())["fields"]

DELIBERATE = {
    "eval_steps": "0 evaluates before and after training (the dashboard's before/after accuracy); TRL's None "
                  "means logging_steps under eval_strategy 'steps', and TRL's eval_strategy 'no' maps onto 0 here",
    "num_generations_eval": "0 scores greedy completions only, which is cheaper than TRL's None (num_generations "
                            "samples per eval prompt); set it for pass@k",
    "report_to": "[] is TRL's 'none' as a list; 'none' is read as []",
}
"""Fields both have whose defaults differ on purpose, each with why."""


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def test_every_shared_field_starts_at_trls_default():
    shared = {f.name: _default(f) for f in dataclasses.fields(RunConfig) if f.name in TRL_FIELDS}
    assert {"max_steps", "num_train_epochs", "lr_scheduler_type", "save_steps", "gradient_checkpointing",
            "max_completion_length", "bf16"} <= set(shared)
    differ = {name: (ours, TRL_FIELDS[name]) for name, ours in shared.items() if ours != TRL_FIELDS[name]}
    assert set(differ) == set(DELIBERATE), {k: v for k, v in differ.items() if k not in DELIBERATE}


def test_the_defaults_that_used_to_differ_are_trls():
    cfg = RunConfig()
    assert (cfg.max_steps, cfg.num_train_epochs, cfg.lr_scheduler_type) == (-1, 3.0, "linear")
    assert (cfg.save_steps, cfg.gradient_checkpointing, cfg.max_completion_length) == (500, True, 512)


@pytest.mark.parametrize("steps", [-1, 0])
def test_epochs_decide_only_when_there_are_epochs(steps):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"max_steps": steps, "num_train_epochs": None}, check_paths=False)
    assert err.value.problems == [f"max_steps: {steps} trains for num_train_epochs passes over the prompts, but "
                                  "num_train_epochs is None; set one of them"]
    # a run directory's config.yaml from before holds num_train_epochs: null beside its resolved steps
    assert config_from_dict({"max_steps": 36, "num_train_epochs": None}, check_paths=False).max_steps == 36
