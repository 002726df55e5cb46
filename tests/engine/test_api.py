"""The TRL-shaped Python API: GRPOConfig / GRPOTrainer on the real tiny model."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import TINY_MODEL
from engine.api import GRPOConfig, GRPOConfigError, GRPOTrainer, TrainingFailed
from engine.config.schema import ConfigError, RunConfig
from engine.run.control import Control
from engine.run.rundir import read_jsonl, read_run

FAST = dict(num_generations=4, per_device_train_batch_size=8, max_completion_length=4, learning_rate=1e-4,
            lr_scheduler_type="constant", gradient_checkpointing=False,  # fast and flat: TRL's are linear, on
            log_completions_groups=1)
ROWS = [{"prompt": f"{a:02d}+{b:02d}=", "answer": str(a + b)} for a in range(6) for b in range(6)]


def exact(prompts, completions, answer, **kwargs):
    return [float(c.strip() == a) for c, a in zip(completions, answer)]


def tiny_model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(TINY_MODEL)


# ----------------------------------------------------------------- GRPOConfig


def test_grpo_config_builds_a_run_config_from_trl_names():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = GRPOConfig(output_dir="out", learning_rate=5e-5, beta=0.04, report_to="none", bf16=False,
                          shuffle_dataset=False, model_init_kwargs={"torch_dtype": torch.float32},
                          logging_dir="logs", push_to_hub=False, top_k=None, scale_rewards=True)
    cfg = args.to_run_config()
    assert isinstance(cfg, RunConfig) and args.learning_rate == 5e-5
    assert (cfg.output_dir, cfg.learning_rate, cfg.beta) == ("out", 5e-5, 0.04)
    assert cfg.report_to == [] and cfg.bf16 is False and cfg.dataset.shuffle is False
    assert cfg.torch_dtype == "float32" and cfg.top_k == 0 and cfg.scale_rewards == "group"
    assert any("logging_dir" in str(w.message) for w in caught)


def test_grpo_config_unknown_names_raise_a_type_error_listing_all():
    with pytest.raises(TypeError) as err:
        GRPOConfig(learnin_rate=1e-5, num_generation=4, temperature=0, deepspeed="ds.json", fp16=False)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, GRPOConfigError)
    text = str(err.value)
    assert "learnin_rate: unknown argument (did you mean 'learning_rate'?)" in text
    assert "num_generation: unknown argument (did you mean 'num_generations'?)" in text
    assert "deepspeed='ds.json': not supported here" in text
    assert "temperature: must be in (0, 100]" in text  # value problems in the same message
    assert "fp16" not in text  # off is fine


def test_grpo_config_value_problems_are_config_errors():
    with pytest.raises(ConfigError) as err:
        GRPOConfig(loss_type="ppo", per_device_train_batch_size=6, num_generations=4)
    assert not isinstance(err.value, TypeError)
    assert len(err.value.problems) == 2


def test_reward_settings_wait_for_the_trainer():
    cfg = GRPOConfig(reward_weights=[1.0, 0.5], reward_kwargs={"format": {"pattern": "^x$"}}, max_steps=-1,
                     num_train_epochs=2, **FAST)
    assert cfg.reward_weights == [1.0, 0.5]
    with pytest.raises(GRPOConfigError) as err:
        GRPOTrainer(tiny_model(), reward_funcs=[exact], args=cfg, train_dataset=ROWS, processing_class=None)
    text = str(err.value)
    assert "reward_weights: has 2 weights but reward_funcs has 1 functions" in text
    assert "reward_kwargs.format: no reward function named 'format'" in text
    # num_train_epochs becomes steps: 36 prompts, 2 prompts per step (8 completions / 4) -> 36 steps
    trainer = GRPOTrainer(tiny_model(), reward_funcs=[exact, "format"], args=cfg, train_dataset=ROWS)
    assert trainer.args.max_steps == 36
    assert trainer.args.reward_funcs[1] == "format"


def test_datasets_in_every_accepted_shape():
    from datasets import Dataset, DatasetDict

    model = tiny_model()
    args = GRPOConfig(max_steps=1, **FAST)
    trainer = GRPOTrainer(model, exact, args=args, train_dataset=Dataset.from_list(ROWS),
                          eval_dataset=["1+1=", "2+2="])
    data = trainer._trainer._given.data
    assert data.train[0] == ROWS[0] and data.eval == [{"prompt": "1+1="}, {"prompt": "2+2="}]
    with pytest.raises(TypeError, match="pass one, e.g. dataset\\['train'\\]"):
        GRPOTrainer(model, exact, args=args, train_dataset=DatasetDict({"train": Dataset.from_list(ROWS)}))
    with pytest.raises(ValueError, match="train_dataset\\[1\\]: no 'prompt' column"):
        GRPOTrainer(model, exact, args=args, train_dataset=[{"prompt": "a"}, {"question": "b"}])
    renamed = GRPOTrainer(model, exact, args=GRPOConfig(max_steps=1, dataset={"prompt_column": "q"}, **FAST),
                          train_dataset=[{"q": "1+1=", "answer": "2"}])
    assert renamed._trainer._given.data.train == [{"answer": "2", "prompt": "1+1="}]
    with pytest.raises(TypeError, match="reward_funcs\\[1\\]"):
        GRPOTrainer(model, [exact, 3], args=args, train_dataset=ROWS)


# ----------------------------------------------------------------- training


@pytest.mark.slow
def test_two_step_run_with_a_lambda_reward_writes_the_run_directory(tmp_path):
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, **FAST)
    trainer = GRPOTrainer(
        model="assets/tiny-model",  # a path, found from any working folder
        reward_funcs=lambda prompts, completions, answer, **kw: [float(c.strip() == a) for c, a in zip(completions, answer)],
        args=args,
        train_dataset=ROWS,
    )
    assert isinstance(trainer.control, Control)
    assert trainer.run_dir == tmp_path / "run"
    summary = trainer.train()
    assert summary["steps"] == 2 and summary["final_model"] == str(tmp_path / "run" / "final")

    run = read_run(trainer.run_dir)
    assert [m["step"] for m in run.metrics] == [1, 2]
    assert "rewards/<lambda>/mean" in run.metrics[0]
    assert run.state == "finished"
    assert "model_name_or_path: " + str(TINY_MODEL) in run.config_text
    assert [s["step"] for s in read_jsonl(trainer.run_dir / "samples.jsonl")] == [1, 2]
    assert trainer.model is trainer._trainer.model


@pytest.mark.slow
def test_model_object_with_a_given_reference_model(tmp_path):
    model, ref = tiny_model(), tiny_model()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, beta=0.1, **FAST)
    trainer = GRPOTrainer(model, reward_funcs=[exact, "format"], args=args, train_dataset=ROWS, ref_model=ref)
    trainer.start()  # in the background, steered through trainer.control as a notebook would
    trainer.control.adjust(temperature=0.9)
    assert trainer.wait(timeout=120)["steps"] == 1
    assert any(e["kind"] == "adjust" for e in read_jsonl(trainer.run_dir / "events.jsonl"))
    assert trainer.model is model
    used = trainer.ref_model
    assert used is not model
    assert all(torch.equal(a, b) for a, b in zip(used.parameters(), ref.parameters()))
    (metrics,) = read_jsonl(trainer.run_dir / "metrics.jsonl")
    assert metrics["kl"] > 0  # policy and reference differ from the first step
    assert {"rewards/exact/mean", "rewards/format/mean"} <= set(metrics)


@pytest.mark.slow
def test_a_failed_run_raises(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("another run\n")
    trainer = GRPOTrainer(tiny_model(), exact, args=GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, **FAST),
                          train_dataset=ROWS)
    with pytest.raises(TrainingFailed, match="already holds a run"):
        trainer.train()
