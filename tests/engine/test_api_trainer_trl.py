"""GRPOTrainer used the way a TRL script uses it: callbacks, trainer.state, save_model,
resume_from_checkpoint, overwrite_output_dir, IterableDataset, push_to_hub offline."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, TrainerCallback

from conftest import TINY_MODEL
from engine.api import GRPOConfig, GRPOConfigError, GRPOTrainer, HubError, TrainingFailed

FAST = dict(num_generations=4, per_device_train_batch_size=8, max_completion_length=4, learning_rate=1e-4,
            lr_scheduler_type="constant", gradient_checkpointing=False,  # fast and flat: TRL's are linear, on
            log_completions_groups=1, logging_steps=1, report_to="none")


def rows():
    from datasets import Dataset

    return Dataset.from_list([{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(4) for b in range(4)])


def exact(prompts, completions, answer, **kwargs):
    return [float(c.strip() == a) for c, a in zip(completions, answer)]


def accuracy(prompts, completions, answer, **kwargs):
    """Named so, the held-out evaluation judges with it."""
    return exact(prompts, completions, answer)


class Recorder(TrainerCallback):
    """Every hook with state.global_step at the time; stops the run after ``stop_at`` steps."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.eval_metrics: list[dict] = []
        self.stop_at = stop_at

    def _note(self, hook, state):
        self.calls.append((hook, state.global_step))

    def on_train_begin(self, args, state, control, **kw):
        self._note("train_begin", state)

    def on_step_begin(self, args, state, control, **kw):
        self._note("step_begin", state)

    def on_step_end(self, args, state, control, **kw):
        self._note("step_end", state)
        if self.stop_at is not None and state.global_step >= self.stop_at:
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kw):
        self._note("log", state)

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        self._note("evaluate", state)
        self.eval_metrics.append(metrics)

    def on_save(self, args, state, control, **kw):
        self._note("save", state)

    def on_train_end(self, args, state, control, **kw):
        self._note("train_end", state)


def trainer(out, callbacks=(), eval_dataset=None, reward=exact, **args):
    args = GRPOConfig(output_dir=str(out), **{**FAST, **args})
    return GRPOTrainer(model=str(TINY_MODEL), reward_funcs=reward, args=args, train_dataset=rows(),
                       eval_dataset=eval_dataset, callbacks=list(callbacks))


@pytest.mark.slow
def test_a_trl_script_flow_callbacks_state_and_save_model(tmp_path, capsys):
    recorder = Recorder()
    t = trainer(tmp_path / "run", [recorder], max_steps=2, eval_dataset=rows().select(range(4)),
                reward=accuracy)
    result = t.train()
    assert recorder.calls == [("train_begin", 0), ("log", 0), ("evaluate", 0),  # held out, before training
                              ("step_begin", 0), ("step_end", 1), ("log", 1),
                              ("step_begin", 1), ("step_end", 2), ("log", 2), ("log", 2), ("evaluate", 2),
                              ("log", 2), ("train_end", 2)]
    assert all(any(k.startswith("eval_") for k in m) for m in recorder.eval_metrics)
    assert t.state.global_step == 2 and t.state.max_steps == 2
    steps = [entry for entry in t.state.log_history if "loss" in entry]
    assert [e["step"] for e in steps] == [1, 2] and all("reward" in e for e in steps)
    assert "train_runtime" in t.state.log_history[-1]
    assert result.global_step == 2 and result["steps"] == 2  # transformers' TrainOutput and our summary
    t.log_metrics("train", result.metrics)
    t.save_metrics("train", result.metrics)
    t.save_state()
    assert json.loads((tmp_path / "run" / "all_results.json").read_text())["train_loss"] == result.training_loss
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 2
    out = capsys.readouterr().out
    assert "'loss'" in out and "***** train metrics *****" in out  # the log lines TRL prints, above the progress bar
    assert t.accelerator.is_main_process and t.accelerator.process_index == 0

    saved = t.save_model(tmp_path / "saved")
    model = AutoModelForCausalLM.from_pretrained(saved)
    assert model.config.vocab_size == t.model.config.vocab_size
    assert (saved / "tokenizer_config.json").exists()


@pytest.mark.slow
def test_stopped_by_a_callback_then_resumed_from_checkpoint(tmp_path):
    first = Recorder(stop_at=1)
    t = trainer(tmp_path / "run", [first], max_steps=3)
    assert t.train()["steps"] == 1
    assert ("save", 1) in first.calls  # the checkpoint written where the callback stopped the run

    again = Recorder()
    t2 = trainer(tmp_path / "run", [again], max_steps=3)
    with pytest.raises(TrainingFailed, match="overwrite_output_dir=True") as err:
        t2.train()  # the same output_dir without a word of what to do with it
    assert "--output" not in str(err.value) and "resume_from_checkpoint=True" in str(err.value)

    t3 = trainer(tmp_path / "run", [again], max_steps=3)
    assert t3.train(resume_from_checkpoint=True)["steps"] == 3
    assert again.calls[0] == ("train_begin", 1) and ("step_end", 3) in again.calls
    assert t3.state.global_step == 3
    assert [e["step"] for e in t3.state.log_history if "loss" in e] == [1, 2, 3]  # step 1 restored, as transformers


@pytest.mark.slow
def test_overwrite_output_dir_starts_over(tmp_path):
    trainer(tmp_path / "run", max_steps=1).train()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    t = trainer(tmp_path / "run", max_steps=1, overwrite_output_dir=True)
    assert t.train()["steps"] == 1
    from engine.run.rundir import read_jsonl

    assert [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if m.get("step")] == [1]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run's own files go


@pytest.mark.slow
def test_iterable_dataset_and_push_to_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stream = rows().to_iterable_dataset()
    t = GRPOTrainer(model=str(TINY_MODEL), reward_funcs=exact, train_dataset=stream,
                    args=GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, hub_model_id="me/tiny", **FAST))
    t.train()
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set") as err:
        t.push_to_hub()
    assert str(tmp_path / "run" / "final") in str(err.value)


def test_arguments_the_engine_cannot_honour_are_refused_before_loading():
    with pytest.raises(GRPOConfigError, match="optimizers: the optimizer and its schedule are built from args"):
        GRPOTrainer(model="nowhere", reward_funcs=exact, train_dataset=["a"], optimizers=(object(), None))
    with pytest.raises(GRPOConfigError, match="set max_steps to a positive number"):
        GRPOTrainer(model="nowhere", reward_funcs=exact, train_dataset=rows().to_iterable_dataset(),
                    args=GRPOConfig(max_steps=-1))
    with pytest.raises(GRPOConfigError, match="quantization_config: quantized loading is not supported yet"):
        GRPOTrainer(model="nowhere", reward_funcs=exact, train_dataset=["a"], quantization_config=object())
    with pytest.raises(GRPOConfigError, match="reward_processing_classes: has 2 entries"):
        GRPOTrainer(model="nowhere", reward_funcs=exact, train_dataset=["a"], reward_processing_classes=[None, None])


class Broken(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        raise ValueError("no such metric")


@pytest.mark.slow
def test_a_callback_that_raises_stops_the_run_with_one_message(tmp_path):
    t = trainer(tmp_path / "run", [Broken()], max_steps=3)
    with pytest.raises(TrainingFailed, match="callback Broken.on_step_end raised ValueError: no such metric"):
        t.train()
    assert t.summary["steps"] == 1  # stopped at the step's end, resumable from its checkpoint


def test_engine_messages_read_in_the_api_terms(tmp_path):
    from engine.api.output_dir import in_api_terms

    text = in_api_terms(f"output directory {tmp_path} already holds a run; choose another --output", tmp_path)
    assert "--output" not in text and "overwrite_output_dir=True" in text
    text = in_api_terms(f"free space and run `grpo-tui resume {tmp_path}` to save it", tmp_path)
    assert "grpo-tui" not in text and "train(resume_from_checkpoint=True)" in text


@pytest.mark.slow
def test_peft_config_trains_a_lora_adapter_and_save_model_writes_it(tmp_path):
    from peft import LoraConfig

    t = GRPOTrainer(model=str(TINY_MODEL), reward_funcs=exact, train_dataset=rows(),
                    args=GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=1, **FAST),
                    peft_config=LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM"))
    assert t.args.peft["r"] == 4 and hasattr(t.model, "peft_config")
    t.train()
    saved = t.save_model(tmp_path / "adapter")
    assert (saved / "adapter_config.json").exists() and not (saved / "model.safetensors").exists()
    with pytest.raises(GRPOConfigError, match="peft_config.use_dora=True: not supported here"):
        GRPOTrainer(model="nowhere", reward_funcs=exact, train_dataset=["a"],
                    peft_config=LoraConfig(r=4, use_dora=True))
