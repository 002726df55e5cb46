"""The GPU path: vLLM generation, the sampler/trainer correction, the clear errors without a GPU.

The tests marked ``gpu`` need a CUDA GPU and the vllm extra and skip cleanly without them;
run them on a GPU machine with ``pip install -e ".[dev,vllm]" && pytest -m gpu``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, tiny_config, train
from engine.algo import grpo
from engine.config.schema import ConfigError
from engine.config.checks import vllm_problems
from engine.config.presets import load_preset
from engine.rollout.backend import TransformersRollout
from engine.run.rundir import read_jsonl

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
needs_gpu_and_vllm = pytest.mark.skipif(not (torch.cuda.is_available() and HAVE_VLLM),
                                        reason="needs a CUDA GPU and the vllm extra")


# --------------------------------------------------------------------------- the correction (maths)


def test_sequence_mask_keeps_close_sequences_and_drops_far_ones():
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    sampled = torch.tensor([[-0.1, -0.2], [-1.0, -0.5]])  # d = (0.1, 0.2) and (1.0, 0.5)
    mask = torch.ones(2, 2)
    w, stats = grpo.sampling_correction(old, sampled, mask, "sequence_mask", None, 3.0)
    assert w.shape == (2, 1)
    assert w[0, 0].item() == pytest.approx(math.exp(0.3))
    assert w[1, 0].item() == 0.0  # e^1.5 ≈ 4.48 > 3
    assert stats["sampling/importance_sampling_ratio/max"].item() == pytest.approx(math.exp(0.3))
    assert stats["sampling/sampling_logp_difference/max"].item() == pytest.approx(1.0)


def test_token_truncate_clips_each_token_and_ignores_padding_and_missing_logprobs():
    old = torch.tensor([[0.0, 0.0, 0.0]])
    sampled = torch.tensor([[-2.0, float("nan"), 5.0]])  # d = 2 (e² ≈ 7.4 → 3), NaN → 0 (ratio 1), padding
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w, stats = grpo.sampling_correction(old, sampled, mask, "token_truncate", 0.5, 3.0)
    assert w[0, :2].tolist() == pytest.approx([3.0, 1.0])
    assert stats["sampling/importance_sampling_ratio/min"].item() == pytest.approx(1.0)
    assert stats["sampling/importance_sampling_ratio/mean"].item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        grpo.sampling_correction(old, sampled, mask, "per_token", None, None)


class ShiftedLogprobs(TransformersRollout):
    """The transformers backend posing as a separate engine whose log-probs are off by ``shift``."""

    separate_engine = True
    shift = 0.0

    def generate(self, *args, **kwargs):
        rollout = super().generate(*args, **kwargs)
        rollout.logprobs = rollout.logprobs + self.shift * rollout.completion_mask
        return rollout


def _shifted(shift: float):
    return type("Shifted", (ShiftedLogprobs,), {"shift": shift})


def test_trainer_weights_the_loss_by_the_sampler_gap(tmp_path):
    """A sampler that claims its tokens were e² times less likely than the trainer finds them:
    sequence_mask drops every sequence (no gradient without a KL term); token_truncate caps each
    token's weight; without the correction the step learns as usual."""
    masked = tiny_config(tmp_path / "a", "max_steps=2", "beta=0", "vllm_importance_sampling_mode=sequence_mask")
    trainer, _ = train(masked, rollout_backend=_shifted(-2.0))
    last = read_jsonl(trainer.run_dir / "metrics.jsonl")[-1]
    assert last["sampling/importance_sampling_ratio/mean"] == 0.0
    assert last["grad_norm"] == 0.0 and last["loss"] == 0.0

    truncated = tiny_config(tmp_path / "b", "max_steps=2", "vllm_importance_sampling_mode=token_truncate")
    trainer, _ = train(truncated, rollout_backend=_shifted(-2.0))
    last = read_jsonl(trainer.run_dir / "metrics.jsonl")[-1]
    assert last["sampling/importance_sampling_ratio/max"] == pytest.approx(3.0)
    assert last["grad_norm"] > 0

    off = tiny_config(tmp_path / "c", "max_steps=2", "vllm_importance_sampling_correction=false")
    trainer, _ = train(off, rollout_backend=_shifted(-2.0))
    last = read_jsonl(trainer.run_dir / "metrics.jsonl")[-1]
    assert "sampling/importance_sampling_ratio/mean" not in last and last["grad_norm"] > 0


# --------------------------------------------------------------------------- clear errors without vLLM / CUDA


def test_vllm_problems_name_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    (missing,) = vllm_problems("colocate")
    assert "pip install 'vllm>=0.27,<0.33'" in missing and "use_vllm: false" in missing
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for mode in ("colocate", "server"):
        (no_gpu,) = vllm_problems(mode)
        assert "needs a CUDA GPU" in no_gpu and "use_vllm: false" in no_gpu


def test_a_preset_asking_for_vllm_fails_at_once_with_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        load_preset("tiny-arithmetic", ["use_vllm=true", "vllm_importance_sampling_clip_min=5"])
    text = str(err.value)
    assert "pip install 'vllm>=0.27,<0.33'" in text
    assert "vllm_importance_sampling_clip_min: 5 is above vllm_importance_sampling_clip_max (3)" in text


@pytest.mark.skipif(HAVE_VLLM and torch.cuda.is_available(), reason="this machine can run vLLM")
def test_cli_without_vllm_or_gpu_exits_2_with_one_message():
    result = subprocess.run([sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless",
                             "--set", "use_vllm=true"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "use_vllm:" in result.stderr and ("pip install 'vllm" in result.stderr or "CUDA GPU" in result.stderr)


@pytest.mark.skipif(not torch.cuda.is_available() and not shutil.which(os.environ.get("CXX", "g++")),
                    reason="torch.compile on CPU needs a C++ compiler")
def test_torch_compile_trains(tmp_path):
    """``torch_compile: true`` compiles the decoder layers; the run trains and saves as usual."""
    cfg = tiny_config(tmp_path, "max_steps=2", "torch_compile=true", "dataset.task_args.eval_size=8")
    trainer, _ = train(cfg)
    assert all(getattr(layer, "_compiled_call_impl", None) is not None for layer in trainer.model.model.layers)
    assert (trainer.run_dir / "final" / "model.safetensors").exists()
    assert len(read_jsonl(trainer.run_dir / "metrics.jsonl")) >= 2


# --------------------------------------------------------------------------- on a GPU with vLLM


@pytest.fixture(scope="module")
def vllm_backend(tmp_path_factory):
    from engine.training.model_loading import eos_token_ids, load_model_and_tokenizer
    from engine.rollout.vllm_colocated import VllmRollout

    cfg = tiny_config(tmp_path_factory.mktemp("vllm"), "use_vllm=true", "vllm_gpu_memory_utilization=0.2")
    model, tokenizer = load_model_and_tokenizer(cfg, torch.device("cuda"))
    backend = VllmRollout(model, tokenizer.pad_token_id, eos_token_ids(model, tokenizer), cfg=cfg)
    return cfg, model, tokenizer, backend


def _prompts(tokenizer, n: int = 4) -> list[list[int]]:
    from engine.data.prompts import PromptRenderer, load_prompt_data

    data = load_prompt_data(tiny_config(ROOT / "runs" / "unused").dataset, seed=0)
    renderer = PromptRenderer(tokenizer)
    return [renderer.ids(row["prompt"]) for row in data.train[:n]]


@pytest.mark.gpu
@needs_gpu_and_vllm
def test_tiny_model_generates_through_vllm(vllm_backend):
    from engine.training.logprobs import completion_logps
    from engine.rollout.backend import SamplingParams

    cfg, model, tokenizer, backend = vllm_backend
    rollout = backend.generate(_prompts(tokenizer), 4, SamplingParams(max_new_tokens=8), torch.Generator().manual_seed(0))
    assert rollout.completion_ids.shape[0] == 16
    assert int(rollout.completion_mask.sum()) > 0
    texts = tokenizer.batch_decode(rollout.completion_ids, skip_special_tokens=True)
    assert any(t.strip() for t in texts)
    with torch.no_grad():
        logps, _ = completion_logps(model, rollout, slice(None), 4, 1.0)
    mask = rollout.completion_mask.bool() & ~torch.isnan(rollout.logprobs)
    assert (logps - rollout.logprobs)[mask].abs().mean() < 0.05  # the two engines agree on the policy


@pytest.mark.gpu
@needs_gpu_and_vllm
def test_vllm_uses_the_trainers_weights_after_an_update(vllm_backend):
    from engine.training.logprobs import completion_logps
    from engine.rollout.backend import SamplingParams

    cfg, model, tokenizer, backend = vllm_backend
    with torch.no_grad():  # an "update" big enough to change the policy visibly
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    backend.sync_weights(model)
    engine_model = backend.llm.llm_engine.model_executor.driver_worker.model_runner.model
    engine_params = dict(engine_model.named_parameters())
    for name in ("model.norm.weight", "model.embed_tokens.weight"):
        trained = dict(model.named_parameters())[name]
        torch.testing.assert_close(engine_params[name].float(), trained.float(), rtol=1e-2, atol=1e-2)
    rollout = backend.generate(_prompts(tokenizer), 4, SamplingParams(max_new_tokens=8), torch.Generator().manual_seed(1))
    with torch.no_grad():
        logps, _ = completion_logps(model, rollout, slice(None), 4, 1.0)
    mask = rollout.completion_mask.bool() & ~torch.isnan(rollout.logprobs)
    assert (logps - rollout.logprobs)[mask].abs().mean() < 0.05


@pytest.mark.gpu
@needs_gpu_and_vllm
def test_short_tiny_run_with_vllm_raises_reward(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--max-steps", "30",
         "--output", str(run), "--set", "use_vllm=true", "--set", "vllm_gpu_memory_utilization=0.2",
         "--set", "dataset.task_args.eval_size=64"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rewards = [r["reward"] for r in read_jsonl(run / "metrics.jsonl") if "reward" in r]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5


@pytest.mark.skipif(HAVE_VLLM and torch.cuda.is_available(), reason="this machine can run vLLM")
def test_vllm_serve_without_vllm_or_gpu_exits_2_with_the_fix():
    result = subprocess.run([sys.executable, "-m", "grpo_tui", "vllm-serve", "assets/tiny-model"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install 'vllm" in result.stderr or "CUDA GPU" in result.stderr


@pytest.mark.gpu
@needs_gpu_and_vllm
def test_server_mode_trains_against_grpo_tui_vllm_serve(tmp_path):
    """A server on the same GPU (small memory share), a short run that generates through it."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "grpo_tui", "vllm-serve", "assets/tiny-model", "--port", str(port),
                               "--gpu-memory-utilization", "0.2", "--host", "127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:]
                time.sleep(2)
        run = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--max-steps", "20",
             "--output", str(run), "--set", "use_vllm=true", "--set", "vllm_mode=server",
             "--set", "vllm_server_host=127.0.0.1", "--set", f"vllm_server_port={port}",
             "--set", "vllm_group_port=" + str(port + 1), "--set", "dataset.task_args.eval_size=64"],
            cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        records = [r for r in read_jsonl(run / "metrics.jsonl") if "reward" in r]
        assert len(records) == 20
        assert all(r["sampling/importance_sampling_ratio/mean"] > 0 for r in records)  # the engines agree
        assert sum(r["reward"] for r in records[-5:]) > sum(r["reward"] for r in records[:5])
    finally:
        server.terminate()
        server.wait(timeout=60)


# --------------------------------------------------------------------------- vLLM outputs in the trainer's terms


def test_a_completion_keeps_the_eos_that_ended_it():
    from engine.rollout.vllm_colocated import completion_row

    eos = [2, 7]
    # stopped at EOS, which the engine left out: added, its sampling log-prob unknown (no correction)
    tokens, logps, truncated = completion_row([5, 6], [-0.1, -0.2], "stop", eos, 8)
    assert tokens == [5, 6, 2] and logps[:2] == [-0.1, -0.2] and math.isnan(logps[2]) and not truncated
    # the EOS already there: unchanged
    assert completion_row([5, 7], [-0.1, -0.3], "stop", eos, 8) == ([5, 7], [-0.1, -0.3], False)
    # cut at the length limit: truncated, nothing added
    assert completion_row([5, 6, 6], [-1.0] * 3, "length", eos, 3) == ([5, 6, 6], [-1.0] * 3, True)


def test_sampled_token_logprobs_are_read_from_the_engine_output():
    from types import SimpleNamespace

    from engine.rollout.vllm_colocated import _tokens_and_logps

    out = SimpleNamespace(token_ids=[4, 9], logprobs=[{4: SimpleNamespace(logprob=-0.5)}, {3: SimpleNamespace(logprob=-2.0)}])
    tokens, logps = _tokens_and_logps(out)
    assert tokens == [4, 9] and logps[0] == -0.5 and math.isnan(logps[1])  # the sampled token missing: NaN
    tokens, logps = _tokens_and_logps(SimpleNamespace(token_ids=[1], logprobs=None))
    assert tokens == [1] and math.isnan(logps[0])


def test_the_trainer_reaches_a_local_server_on_loopback():
    from engine.rollout.vllm_server import _address_towards

    assert _address_towards("http://localhost:8000") == "127.0.0.1"
    assert _address_towards("http://127.0.0.1:8000") == "127.0.0.1"


def test_lora_weights_go_to_the_engine_merged_under_plain_names():
    """What the vLLM engine receives from a LoRA run: the plain architecture's names, with the
    adapter merged in while they are sent, and the base weights untouched afterwards."""
    import copy

    from transformers import AutoModelForCausalLM

    from conftest import TINY_MODEL
    from engine.training.model_loading import with_lora
    from engine.rollout.vllm_colocated import checkpoint_name, merged_weights

    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    plain = {k: v.clone() for k, v in base.state_dict().items()}
    model = with_lora(base, {"r": 4, "target_modules": "all-linear"})
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a trained adapter: B is no longer zero
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    with merged_weights(model) as weights:
        sent = {name: t.clone() for name, t in weights}
    assert set(sent) <= set(expected) and {n for n in expected if "layers.0" in n} <= set(sent)
    for name, tensor in sent.items():
        torch.testing.assert_close(tensor, expected[name], msg=name)
    assert any(not torch.equal(sent[n], plain[n]) for n in sent)  # the adapter is in what was sent
    after = {checkpoint_name(n): p for n, p in model.base_model.model.named_parameters() if checkpoint_name(n)}
    for name, tensor in after.items():
        torch.testing.assert_close(tensor.data, plain[name], msg=name)  # and out of the model again
    assert checkpoint_name("lm_head.modules_to_save.default.weight") == "lm_head.weight"
    assert checkpoint_name("lm_head.original_module.weight") is None
    assert checkpoint_name("model.layers.0.self_attn.q_proj.lora_A.default.weight") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_samples_on_cuda_with_a_cuda_generator(tmp_path):
    """torch.multinomial on CUDA takes only a CUDA generator: the run's sampling stream lives on its device."""
    trainer, _ = train(tiny_config(tmp_path, "max_steps=2"))
    assert trainer.parts.device.type == "cuda" and trainer.parts.sampling_gen.device.type == "cuda"
    assert len([r for r in read_jsonl(trainer.run_dir / "metrics.jsonl") if "reward" in r]) == 2
