"""TRL's knobs that recipes use take effect: ``optim``, transformers' schedules with
``lr_scheduler_kwargs``, ``chat_template_kwargs``, ``generation_kwargs``, ``model_init_kwargs``,
``disable_dropout``, ``cast_lm_head_to_fp32``, ``gradient_checkpointing_kwargs`` and
``use_liger_kernel`` (a clear line where the package is missing); a run with another optimizer
resumes exactly."""

from __future__ import annotations

import inspect
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL, tiny_config, train

from engine.api import GRPOConfig
from engine.config.checks import config_from_dict
from engine.config.knobs import SCHEDULE_OPTIONS, installed
from engine.config.schema import ConfigError, LrSchedulerType
from engine.data.prompts import PromptRenderer
from engine.run.control import Control
from engine.run.events import RunFailed, RunFinished
from engine.run.rundir import read_jsonl
from engine.training.model_loading import load_model_and_tokenizer, load_tokenizer
from engine.training.optimizers import make_optimizer, make_scheduler
from engine.training.round import sampling_params
from engine.training.trainer import Trainer

CPU = torch.device("cpu")
TIMING = {"time", "step_time", "time/generate", "time/reward", "time/update", "time/eval", "completions_per_s",
          "elapsed_s", "eta_s"}


def config(**values):
    return config_from_dict({"model_name_or_path": str(TINY_MODEL), **values})


def one_problem(**values) -> str:
    with pytest.raises(ConfigError) as err:
        config(**values)
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


# --------------------------------------------------------------------------- optimizer and schedule


@pytest.mark.parametrize(("optim", "cls", "fused"), [
    ("adamw_torch_fused", torch.optim.AdamW, True),
    ("adamw_torch", torch.optim.AdamW, False),
    ("adafactor", "Adafactor", None),
    ("sgd", torch.optim.SGD, None),
    ("rmsprop", torch.optim.RMSprop, None),
])
def test_optim_picks_the_optimizer(optim, cls, fused):
    cfg = config(optim=optim, learning_rate=1e-3, weight_decay=0.01)
    model = torch.nn.Linear(4, 2)
    opt = make_optimizer(model, cfg, CPU)
    assert (type(opt).__name__ if isinstance(cls, str) else type(opt)) == cls
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["weight_decay"] == 0.01
    if fused is not None:
        assert bool(opt.defaults.get("fused")) is fused
    if optim == "adafactor":  # a fixed learning rate, as transformers builds it for optim adafactor
        assert not opt.defaults["relative_step"] and not opt.defaults["scale_parameter"]


def _small(config_cls, **extra):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config_cls(vocab_size=32, hidden_size=32, intermediate_size=64,
                                                       num_hidden_layers=2, num_attention_heads=4, **extra))


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "gpt2"])
def test_weight_decay_spares_biases_and_norms_as_trls_trainer_does(family):
    """The parameters that decay are the ones transformers' Trainer (so TRL's GRPOTrainer) decays:
    not biases, RMSNorm/LayerNorm weights, Qwen3's q_norm/k_norm. With one step of AdamW at zero
    gradient only decay shows: those weights shrink by lr · weight_decay, the rest stay."""
    from transformers import GPT2Config, Qwen2Config, Qwen3Config, Trainer

    model = {"qwen2": lambda: _small(Qwen2Config, num_key_value_heads=2),
             "qwen3": lambda: _small(Qwen3Config, num_key_value_heads=2, head_dim=8),
             "gpt2": lambda: _small(GPT2Config, n_embd=32, n_layer=2, n_head=4)}[family]()
    names = {p: n for n, p in model.named_parameters()}
    theirs = set(Trainer.get_decay_parameter_names(None, model)) & set(names.values())  # (a tied lm_head: once)
    opt = make_optimizer(model, config(optim="adamw_torch", learning_rate=0.1, weight_decay=0.5), CPU)
    ours = {names[p] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert ours == theirs
    assert set(names.values()) - ours  # something is spared: biases or norms
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n] * (0.95 if n in theirs else 1.0), msg=n)


def test_an_optimizer_state_written_in_one_group_resumes_in_the_two_of_weight_decay():
    """A checkpoint from before weight decay spared biases and norms holds every parameter in one
    group: each parameter's moments land on that parameter, and each group keeps the saved
    learning rate with its own weight decay."""
    from transformers import Qwen2Config

    from engine.parallel.sharding import load_optimizer_state

    model = _small(Qwen2Config, num_key_value_heads=2)
    old = torch.optim.AdamW([p for p in model.parameters()], lr=0.01, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    old.step()
    old.param_groups[0]["lr"] = 0.004  # where the schedule had taken it
    saved = old.state_dict()
    opt = make_optimizer(model, config(optim="adamw_torch", learning_rate=0.01, weight_decay=0.1), CPU)
    assert len(opt.param_groups) == 2
    load_optimizer_state(model, opt, saved)
    for p in model.parameters():
        torch.testing.assert_close(opt.state[p]["exp_avg"], old.state[p]["exp_avg"], rtol=0, atol=0)
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], old.state[p]["exp_avg_sq"], rtol=0, atol=0)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.004, 0.1), (0.004, 0.0)]


@pytest.mark.skipif(installed("bitsandbytes"), reason="bitsandbytes is installed")
@pytest.mark.parametrize("optim", ["adamw_8bit", "paged_adamw_8bit"])
def test_an_8bit_optimizer_without_bitsandbytes_is_one_line(optim):
    assert one_problem(optim=optim) == (f"optim: {optim} needs the bitsandbytes package (pip install bitsandbytes); "
                                        f"or use adamw_torch_fused")


def test_every_schedule_of_transformers_but_the_metric_driven_ones_is_a_choice():
    from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    from transformers.trainer_utils import SchedulerType

    ours = set(LrSchedulerType.__args__)
    assert ours == {s.value for s in SchedulerType} - {"reduce_lr_on_plateau", "greedy"}
    assert set(SCHEDULE_OPTIONS) == ours
    for name, options in SCHEDULE_OPTIONS.items():  # the options the config accepts are the schedule's
        takes = set(inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]).parameters)
        assert set(options) <= takes, name


def test_cosine_with_min_lr_follows_transformers_with_its_kwargs():
    cfg = config(lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
                 learning_rate=1e-3, max_steps=10, warmup_steps=2)
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=cfg.learning_rate)
    sched = make_scheduler(opt, cfg)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1e-3 * s / 2 for s in range(2)]
    expected += [1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8))) for s in range(2, 11)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(1e-4)  # ends at min_lr_rate × learning_rate, not 0


def test_schedule_options_are_checked_against_the_schedule():
    assert one_problem(lr_scheduler_type="cosine", lr_scheduler_kwargs={"min_lr_rate": 0.1}) == (
        "lr_scheduler_kwargs.min_lr_rate: not an option of the cosine schedule; it takes num_cycles")
    assert one_problem(lr_scheduler_type="cosine_with_min_lr").startswith(
        "lr_scheduler_kwargs: the cosine_with_min_lr schedule needs exactly one of min_lr")


def test_a_run_follows_the_schedule(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=3", "log_completions_groups=1", "lr_scheduler_type=polynomial",
                      "lr_scheduler_kwargs={power: 2.0, lr_end: 0.0}", "learning_rate=1e-3", "optim=adamw_torch")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    lrs = [r["learning_rate"] for r in read_jsonl(trainer.run_dir / "metrics.jsonl")]
    steps = range(len(lrs))
    assert lrs == pytest.approx([1e-3 * (1 - s / 3) ** 2 for s in steps])  # transformers' polynomial decay


def test_a_run_with_adafactor_resumes_exactly(tmp_path):
    cfg = tiny_config(tmp_path / "a", "max_steps=4", "save_steps=2", "log_completions_groups=1", "optim=adafactor",
                      "learning_rate=1e-3", "lr_scheduler_type=cosine")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    resumed = tmp_path / "resumed"
    shutil.copytree(trainer.run_dir, resumed)
    shutil.rmtree(resumed / "final", ignore_errors=True)
    shutil.rmtree(resumed / "checkpoints" / "step-000004", ignore_errors=True)
    control, events = Control(), []
    control.subscribe(events.append)
    Trainer.resume(resumed, control=control, evaluate=False).run()
    assert isinstance(events[-1], RunFinished), events[-1]

    def comparable(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(path)]

    assert comparable(resumed / "metrics.jsonl") == comparable(trainer.run_dir / "metrics.jsonl")
    assert [r["step"] for r in read_jsonl(resumed / "metrics.jsonl")] == [1, 2, 3, 4]


# --------------------------------------------------------------------------- prompts and sampling


def test_chat_template_kwargs_reach_the_template(tmp_path):
    tokenizer = load_tokenizer(str(TINY_MODEL))
    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
                               "{% if enable_thinking is defined and not enable_thinking %}<no-think>{% endif %}")
    plain = PromptRenderer(tokenizer, chat_template=True)
    quiet = PromptRenderer(tokenizer, chat_template=True, chat_template_kwargs={"enable_thinking": False})
    assert plain.text("2+2=") == "2+2="
    assert quiet.text("2+2=") == "2+2=<no-think>"
    model = tmp_path / "model"
    shutil.copytree(TINY_MODEL, model)
    (model / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    cfg = tiny_config(tmp_path, f"model_name_or_path={model}", "max_steps=1", "log_completions_groups=1",
                      "dataset.chat_template=true", "chat_template_kwargs={enable_thinking: false}")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFinished), events[-1]
    assert trainer.parts.renderer.text("2+2=") == "2+2=<no-think>"  # what the run's prompts were rendered with


def test_generation_kwargs_override_the_sampling_fields():
    cfg = GRPOConfig(temperature=1.0, generation_kwargs={"temperature": 0.5, "top_k": 3, "min_p": 0.05},
                     max_steps=1).to_run_config()
    params = sampling_params(cfg)
    assert (params.temperature, params.top_k, params.min_p) == (0.5, 3, 0.05)
    assert cfg.generation_kwargs is None and params.extra == {}


def test_other_generation_kwargs_go_to_vllm_and_need_it():
    cfg = config_from_dict({"use_vllm": True, "generation_kwargs": {"presence_penalty": 0.5, "top_p": 0.9}},
                           check_paths=False)  # (vLLM is not installed here)
    assert cfg.top_p == 0.9 and cfg.generation_kwargs == {"presence_penalty": 0.5}
    assert sampling_params(cfg).extra == {"presence_penalty": 0.5}  # what the vLLM backends add to SamplingParams
    assert config_from_dict({"generation_kwargs": cfg.generation_kwargs, "use_vllm": True},
                            check_paths=False).generation_kwargs == {"presence_penalty": 0.5}  # config.yaml re-read
    assert one_problem(generation_kwargs={"presence_penalty": 0.5}).startswith(
        "generation_kwargs.presence_penalty: taken by vLLM's SamplingParams, so only with use_vllm")
    with pytest.raises(ConfigError) as err:
        config_from_dict({"use_vllm": True, "generation_kwargs": {"seed": 3}}, check_paths=False)
    assert err.value.problems == ["generation_kwargs.seed: set by the engine; remove it"]


# --------------------------------------------------------------------------- model loading


def test_model_init_kwargs_reach_from_pretrained(monkeypatch):
    from transformers import AutoModelForCausalLM

    seen: list[dict] = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        seen.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(recording))
    cfg = config(model_init_kwargs={"revision": "main", "attn_implementation": "eager", "dtype": "float32"})
    assert cfg.torch_dtype == "float32" and cfg.model_init_kwargs == {"revision": "main", "attn_implementation": "eager"}
    model, _ = load_model_and_tokenizer(cfg, CPU)
    assert seen[-1]["revision"] == "main" and seen[-1]["attn_implementation"] == "eager"
    assert model.config._attn_implementation == "eager"


def test_trust_remote_code_reaches_model_init_kwargs_as_in_trl():
    assert GRPOConfig(trust_remote_code=True, max_steps=1).to_run_config().model_init_kwargs == {
        "trust_remote_code": True}
    cfg = GRPOConfig(trust_remote_code=True, model_init_kwargs={"trust_remote_code": False, "revision": "v1"},
                     max_steps=1).to_run_config()
    assert cfg.model_init_kwargs == {"trust_remote_code": False, "revision": "v1"}


def test_model_init_kwargs_problems_are_one_line_each():
    assert one_problem(model_init_kwargs={"device_map": "auto"}).startswith(
        "model_init_kwargs.device_map: not taken here; the keys passed to from_pretrained are revision")
    assert one_problem(model_init_kwargs={"dtype": "fp8"}).startswith("model_init_kwargs.dtype: 'fp8' is not one of")


def test_an_attention_kernel_that_is_not_installed_is_one_line():
    cfg = config(model_init_kwargs={"attn_implementation": "flash_attention_2"})
    with pytest.raises(ConfigError) as err:
        load_model_and_tokenizer(cfg, CPU)
    assert err.value.problems[0].startswith("model_init_kwargs.attn_implementation: flash_attention_2 cannot be used")


def test_a_run_whose_attention_kernel_is_missing_fails_with_that_line(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=1", "model_init_kwargs={attn_implementation: flash_attention_2}")
    trainer, events = train(cfg, evaluate=False)
    assert isinstance(events[-1], RunFailed) and events[-1].traceback_path is None
    assert "model_init_kwargs.attn_implementation: flash_attention_2 cannot be used here" in events[-1].error


def test_disable_dropout_sets_every_dropout_to_zero():
    peft = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1}
    with_dropout, _ = load_model_and_tokenizer(config(peft=peft), CPU)
    assert {m.p for m in with_dropout.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    without, _ = load_model_and_tokenizer(config(peft=peft, disable_dropout=True), CPU)
    assert {m.p for m in without.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}


def test_cast_lm_head_to_fp32_gives_float32_logits_from_bfloat16_weights():
    model, _ = load_model_and_tokenizer(config(torch_dtype="bfloat16", cast_lm_head_to_fp32=True), CPU)
    assert model.get_output_embeddings().weight.dtype == torch.float32
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.dtype == torch.float32
    plain, _ = load_model_and_tokenizer(config(torch_dtype="bfloat16"), CPU)
    assert plain(input_ids=torch.tensor([[1, 2, 3]])).logits.dtype == torch.bfloat16


def test_gradient_checkpointing_kwargs_reach_the_model(monkeypatch):
    from transformers import PreTrainedModel

    seen = []
    monkeypatch.setattr(PreTrainedModel, "activation_checkpointing_enable",
                        lambda self, kwargs=None, **_: seen.append(kwargs), raising=False)
    load_model_and_tokenizer(config(gradient_checkpointing=True,
                                    gradient_checkpointing_kwargs={"use_reentrant": False}), CPU)
    assert seen == [{"use_reentrant": False}]
    assert one_problem(gradient_checkpointing_kwargs={"reentrant": False}).startswith(
        "gradient_checkpointing_kwargs.reentrant: not an option of torch's checkpointing")


@pytest.mark.skipif(installed("liger_kernel"), reason="liger-kernel is installed")
def test_use_liger_kernel_without_the_package_is_one_line():
    assert one_problem(use_liger_kernel=True) == ("use_liger_kernel: needs the liger-kernel package (pip install "
                                                  "liger-kernel, CUDA only); or set use_liger_kernel: false")
