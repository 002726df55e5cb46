"""TRL's GRPOConfig names, in Python and in YAML: the dataclass TRL's parsers take, every TRL
1.16 field at its default, refusals that say what to do, and an open-r1-style recipe.

TRL is not installed here: its field names and defaults are in tests/data/trl-1.16-grpo-fields.json,
written by ``python tests/data/make_trl_fields.py /path/to/trl > tests/data/trl-1.16-grpo-fields.json``
(TRL 1.16's sources read with ast, plus the installed transformers.TrainingArguments).
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
from transformers import HfArgumentParser

from engine.api import GRPOConfig, GRPOConfigError
from engine.config.presets import config_from_yaml, load_preset
from engine.config.schema import ConfigError, RunConfig
from engine.config.trl_names import SCRIPT_NAMES, TRL_NAMES
from tests.conftest import ROOT, TINY_MODEL, train, write

TRL_FIELDS: dict = json.loads((ROOT / "tests" / "data" / "trl-1.16-grpo-fields.json").read_text())["fields"]
OURS = {f.name for f in dataclasses.fields(RunConfig)}


def _defaults() -> dict:
    """TRL's GRPOConfig at its defaults, as a Python call would spell them."""
    return {name: value for name, value in TRL_FIELDS.items() if not isinstance(value, dict) or "repr" not in value}


def test_every_trl_field_is_a_field_and_is_handled():
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(TRL_FIELDS) <= names
    for name in TRL_FIELDS:
        assert name in OURS or name in TRL_NAMES, name  # ours, or the table says what happens to it


def test_every_trl_field_at_its_default_is_accepted():
    values = _defaults()
    assert len(values) == len(TRL_FIELDS)  # every default is plain data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at TRL's defaults nothing is even ignored
        cfg = GRPOConfig(**values).to_run_config()
    # TRL's max_steps -1 leaves the length to num_train_epochs (3), as in TRL
    assert cfg.num_train_epochs == 3.0
    assert (cfg.eval_steps, cfg.num_generations_eval, cfg.report_to) == (0, 0, [])
    # one at a time too: no default depends on another to pass
    for name, value in values.items():
        GRPOConfig(**{name: value})


def test_every_trl_field_at_its_default_is_accepted_in_a_preset():
    text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in _defaults().items())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = config_from_yaml(text, check_paths=False)  # TRL's 512 tokens exceed the tiny model's context
    assert cfg.num_train_epochs == 3.0 and cfg.gradient_checkpointing is True


def test_trl_command_line_parses_into_grpo_config():
    argv = ["--output_dir", "runs/x", "--learning_rate", "1e-5", "--num_generations", "4",
            "--per_device_train_batch_size", "8", "--num_train_epochs", "2", "--report_to", "none",
            "--bf16", "false", "--gradient_checkpointing", "--lr_scheduler_type", "cosine",
            "--warmup_ratio", "0.1", "--model_init_kwargs", '{"dtype": "bfloat16"}', "--save_strategy", "no",
            "--logging_steps", "5", "--beta", "0.04", "--loss_type", "dr_grpo", "--push_to_hub", "false"]
    (args,) = HfArgumentParser((GRPOConfig,)).parse_args_into_dataclasses(argv)
    assert isinstance(args, GRPOConfig) and args.learning_rate == 1e-5
    cfg = args.to_run_config()
    assert (cfg.output_dir, cfg.num_generations, cfg.num_train_epochs, cfg.report_to) == ("runs/x", 4, 2.0, [])
    assert (cfg.bf16, cfg.gradient_checkpointing, cfg.lr_scheduler_type, cfg.warmup_ratio) == (False, True, "cosine", 0.1)
    assert (cfg.torch_dtype, cfg.save_steps, cfg.logging_steps, cfg.loss_type) == ("bfloat16", 0, 5, "dr_grpo")
    # a second parse of the same class (the parser rewrites field types in place)
    (again,) = HfArgumentParser((GRPOConfig,)).parse_args_into_dataclasses(argv)
    assert again.to_run_config().torch_dtype == "bfloat16"


def test_trl_parser_with_script_and_model_arguments_sees_no_name_twice():
    """TRL's scripts parse (ScriptArguments, GRPOConfig, ModelConfig): GRPOConfig leaves their names to them."""
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert not names & (set(SCRIPT_NAMES) | {"model_name_or_path"})


@pytest.mark.parametrize(("kwargs", "line"), [
    ({"debug": "underflow_overflow"}, "debug='underflow_overflow': not supported here; debug modes"),
    ({"optim": "lion_8bit"}, "optim: 'lion_8bit' is not one of"),
    ({"save_strategy": "epoch"}, "save_strategy='epoch': not supported here; use steps"),
    ({"model_init_kwargs": {"device_map": "auto"}}, "model_init_kwargs.device_map: not taken here"),
    ({"fp16": True}, "fp16=True: not supported here; use torch_dtype: float16"),
    ({"lr_scheduler_kwargs": {"min_lr_rate": 0.1}}, "lr_scheduler_kwargs.min_lr_rate: not an option of the linear"),
])
def test_a_refused_field_gives_one_line_saying_what_to_do(kwargs, line):
    with pytest.raises(ConfigError) as err:
        GRPOConfig(**kwargs)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(line)


def test_mapped_and_no_effect_fields():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = GRPOConfig(generation_kwargs={"top_k": 20, "min_p": 0.1}, system_prompt="Think first.",
                         train_sampling_strategy="sequential", eval_strategy="steps", logging_steps=7,
                         dataloader_num_workers=4).to_run_config()
    assert (cfg.top_k, cfg.min_p, cfg.eval_steps) == (20, 0.1, 7)
    assert cfg.dataset.system_prompt == "Think first." and cfg.dataset.shuffle is False
    assert cfg.dataset.task == RunConfig().dataset.task  # rendering options keep the default source
    (message,) = [str(w.message) for w in caught]
    assert "dataloader_num_workers (prompts are read in process)" in message
    # both kept, as TRL keeps them: a positive max_steps wins when the run starts
    cfg = GRPOConfig(max_steps=5, num_train_epochs=2).to_run_config()
    assert (cfg.max_steps, cfg.num_train_epochs) == (5, 2.0)


def test_preset_did_you_mean_never_suggests_an_algorithm_setting():
    with pytest.raises(ConfigError) as err:
        config_from_yaml("num_train_epoch: 1\n", check_paths=False)
    assert "(did you mean 'num_train_epochs'?)" in err.value.problems[0]
    with pytest.raises(GRPOConfigError) as err:
        GRPOConfig(num_train_epoch=1)
    assert err.value.problems == ["num_train_epoch: unknown argument (did you mean 'num_train_epochs'?)"]


RECIPE = """\
# open-r1 style: Qwen2.5-1.5B-Instruct GRPO demo, model and data swapped for local ones
model_name_or_path: {model}
model_revision: main
torch_dtype: float32
attn_implementation: sdpa
dataset_name: {data}
dataset_prompt_column: problem
system_prompt: "A conversation between User and Assistant. Think first, then answer."
bf16: false
use_vllm: false
do_eval: false
gradient_accumulation_steps: 1
gradient_checkpointing: true
gradient_checkpointing_kwargs:
  use_reentrant: false
learning_rate: 2.0e-05
log_completions: true
log_level: info
logging_first_step: true
logging_steps: 1
logging_strategy: steps
lr_scheduler_type: cosine
max_prompt_length: 64
max_completion_length: 8
num_generations: 4
num_train_epochs: 1
output_dir: {out}
per_device_eval_batch_size: 16
per_device_train_batch_size: 8
push_to_hub: false
hub_model_id: my-org/demo
hub_strategy: every_save
report_to:
- none
reward_funcs:
- accuracy
- format
reward_weights:
- 1.0
- 0.5
save_strategy: "no"
save_total_limit: 1
seed: 42
temperature: 0.7
warmup_ratio: 0.1
beta: 0.0
"""


def test_open_r1_style_recipe_loads_and_trains_with_local_model_and_data(tmp_path):
    rows = [{"problem": f"{a}+{b}=", "answer": str(a + b), "solution": str(a + b)} for a in range(2) for b in range(2)]
    data = write(tmp_path / "prompts.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    text = RECIPE.format(model=TINY_MODEL, data="my-org/math-prompts", out=tmp_path / "run")
    preset = write(tmp_path / "recipe.yaml", text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_preset(str(preset), check_paths=False)
    assert cfg.dataset.name == "my-org/math-prompts" and cfg.dataset.prompt_column == "problem"
    assert cfg.dataset.task is None and cfg.dataset.system_prompt.startswith("A conversation")
    assert (cfg.num_train_epochs, cfg.save_steps, cfg.torch_dtype, cfg.report_to) == (1.0, 0, "float32", [])
    ignored = " ".join(str(w.message) for w in caught)
    for name in ("attn_implementation", "log_level", "logging_first_step", "per_device_eval_batch_size"):
        assert name in ignored  # accepted, and said to change nothing

    # the same recipe on a local file trains: one epoch of 4 prompts, 2 per step, is 2 steps
    local = write(tmp_path / "local.yaml", text.replace("dataset_name: my-org/math-prompts\n",
                                                        f"dataset:\n  path: {data}\n  eval_size: 0\n"))
    cfg = load_preset(str(local), ["dataset_prompt_column=problem"])
    trainer, _ = train(cfg)
    assert trainer.cfg.max_steps == 2 and trainer.summary.get("error") is None


def test_fields_trl_lists_how_each_trl_name_is_handled(capsys):
    from grpo_tui.cli.main import main

    assert main(["fields", "--trl"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert {n for n in TRL_FIELDS if n not in OURS} <= listed  # every TRL name that is not ours
    assert main(["fields", "--trl", "push_to"]) == 0
    assert capsys.readouterr().out.startswith("push_to_hub  by GRPOTrainer (TRL default False): GRPOTrainer.train() "
                                              "uploads")


def test_fields_set_after_construction_count():
    args = GRPOConfig(max_steps=5)
    args.learning_rate = 3e-5  # TRL's scripts adjust their config after parsing
    args.save_strategy = "no"
    args.save_steps = 9
    cfg = args.to_run_config()
    assert (cfg.learning_rate, cfg.save_steps) == (3e-5, 0)
    args.optim = "lion_8bit"
    with pytest.raises(ConfigError, match="optim: 'lion_8bit'"):
        args.to_run_config()
