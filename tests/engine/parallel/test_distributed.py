"""Data parallelism on CPU: two processes (gloo) through accelerate, as a user launches them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.run.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[3]
ONE_STEP = ROOT / "tests" / "helpers" / "one_step.py"
FSDP_ON_CPU = ROOT / "tests" / "helpers" / "fsdp_on_cpu"
LAUNCH_TIMEOUT = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1"}


def _fsdp_config(tmp: Path, processes: int = 2) -> Path:
    """The shipped FSDP2 config for ``processes`` ranks."""
    text = (ROOT / "presets" / "accelerate" / "fsdp.yaml").read_text(encoding="utf-8")
    path = tmp / "fsdp.yaml"
    path.write_text(text.replace("num_processes: 8", f"num_processes: {processes}"), encoding="utf-8")
    return path


def _fsdp_env() -> dict:
    """Processes launched with an FSDP config shard on CPU too (see the helper's docstring)."""
    paths = [str(FSDP_ON_CPU), os.environ.get("PYTHONPATH", "")]
    return {**_env(), "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _one_step(out: Path, processes: int, per_device: int, *overrides: str, fsdp: bool = False,
              gpus: bool = False) -> None:
    """One step of the tiny preset on ``processes`` ranks (CPU processes over gloo, or GPUs)."""
    out.mkdir(parents=True)
    if processes == 1:
        cmd = [sys.executable, str(ONE_STEP)]
    else:
        setup = (["--config_file", str(_fsdp_config(out, processes))] if fsdp else
                 ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"])
        cmd = [sys.executable, "-m", "accelerate.commands.launch", *setup, "--num_processes", str(processes),
               "--num_machines", "1", "--main_process_port", str(_free_port()), str(ONE_STEP)]
    env = _fsdp_env() if fsdp else _env()
    if gpus:
        env = {k: v for k, v in _env().items() if k != "ACCELERATE_USE_CPU"}
    done = subprocess.run([*cmd, str(out), str(per_device), *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize(("overrides", "fsdp"), [
    (("loss_type=dapo", "scale_rewards=batch", "gradient_accumulation_steps=2"), False),
    (("loss_type=grpo", "scale_rewards=group"), False),
    (("loss_type=dapo", "scale_rewards=batch", "gradient_accumulation_steps=2"), True),
    (("--separate-engine", "loss_type=grpo", "num_iterations=2", "gradient_accumulation_steps=2", "max_steps=3"), True),
], ids=["dapo-batch-accum2", "grpo-group", "fsdp2-dapo-batch-accum2", "fsdp2-separate-engine-mu2-3steps"])
def test_two_processes_compute_the_loss_and_gradients_of_one_process(tmp_path, overrides, fsdp):
    """Same global batch (16 completions per micro-batch alone, 8 on each of two ranks, the
    model replicated by DDP or sharded by FSDP2): the loss and every parameter's gradient
    agree within float tolerance. With a separate sampling engine (as vLLM) nothing is
    gathered for the round: the log-prob passes before the update (μ = 2, two micro-batches)
    run in step, and the weights sent after each update are the ones the engine samples with
    (step 3 samples with weights updated twice)."""
    _one_step(tmp_path / "one", 1, 16, *overrides)
    _one_step(tmp_path / "two", 2, 8, *overrides, fsdp=fsdp)
    one, two = torch.load(tmp_path / "one" / "grads.pt"), torch.load(tmp_path / "two" / "grads.pt")
    assert one.keys() == two.keys() and len(one) > 10
    assert any(float(g.abs().max()) > 0 for g in one.values())  # a real gradient, not zeros
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    setup = [e["data"] for e in read_jsonl(tmp_path / "two" / "run" / "events.jsonl") if e["kind"] == "run_started"]
    assert [(d["processes"], d["sharded"]) for d in setup] == [(2, fsdp)]
    m1 = read_jsonl(tmp_path / "one" / "run" / "metrics.jsonl")[-1]
    m2 = read_jsonl(tmp_path / "two" / "run" / "metrics.jsonl")[-1]
    for key in ("loss", "grad_norm", "reward", "advantage/std", "num_tokens", "completions/mean_length"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key
    if "--separate-engine" in overrides:  # the sampler's log-probs were corrected for: same weights, ratio 1
        assert m2["step"] == 3 and m2["sampling/sampling_logp_difference/max"] < 1e-4
        assert m2["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_gpus_compute_the_gradients_of_one(tmp_path, fsdp):
    """The same check on two GPUs (NCCL), DDP and FSDP2: gradients of one GPU on the same batch."""
    overrides = ("loss_type=dapo", "scale_rewards=batch", "gradient_accumulation_steps=2")
    _one_step(tmp_path / "one", 1, 16, *overrides, gpus=True)
    _one_step(tmp_path / "two", 2, 8, *overrides, fsdp=fsdp, gpus=True)
    one, two = torch.load(tmp_path / "one" / "grads.pt"), torch.load(tmp_path / "two" / "grads.pt")
    assert one.keys() == two.keys() and len(one) > 10
    for name in one:
        torch.testing.assert_close(two[name].cpu(), one[name].cpu(), rtol=1e-3, atol=1e-5, msg=name)


def _alive(pid: int) -> bool:
    """A live (not zombie) process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _in_session(pid: int, session: int) -> bool:
    """A live (not zombie) process of ``session``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return os.getsid(pid) == session and state != "Z"
    except (OSError, IndexError):
        return False


def _grpo_tui(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grpo_tui", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _train_on_two(preset: str, steps: int, run: Path, eval_size: int) -> str:
    """``grpo-tui train PRESET --headless --num-processes 2``, to the end; its output."""
    proc = _grpo_tui("train", preset, "--headless", "--num-processes", "2", "--max-steps", str(steps),
                     "--output", str(run), "--set", f"dataset.task_args.eval_size={eval_size}")
    out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_num_processes_trains_and_only_rank_zero_writes_the_run(tmp_path):
    run = tmp_path / "run"
    out = _train_on_two("tiny-arithmetic", 3, run, eval_size=32)
    assert out.count("── summary") == 1  # rank 0 alone prints
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert steps == [0, 1, 2, 3]  # every step once: one writer
    finished = [e for e in read_jsonl(run / "events.jsonl") if (e.get("data") or {}).get("state") == "finished"]
    assert len(finished) == 1
    assert (run / "final" / "config.json").exists()
    assert not list(run.glob("error*"))
    last = read_jsonl(run / "metrics.jsonl")[-1]
    assert last["completions_per_s"] > 0 and "eval/accuracy" in last
    # the held-out evaluation is shared out and combined: the same greedy accuracy as one process
    one = tmp_path / "one"
    alone = _grpo_tui("train", "tiny-arithmetic", "--headless", "--max-steps", "1", "--output", str(one),
                      "--set", "dataset.task_args.eval_size=32")
    alone.communicate(timeout=LAUNCH_TIMEOUT)
    assert alone.returncode == 0
    before = [read_jsonl(d / "metrics.jsonl")[0] for d in (run, one)]
    assert before[0]["step"] == before[1]["step"] == 0
    assert before[0]["eval/accuracy"] == pytest.approx(before[1]["eval/accuracy"], abs=1 / 32 + 1e-9)
    assert before[0]["eval/mean_length"] == pytest.approx(before[1]["eval/mean_length"], rel=0.05)


def test_a_two_process_run_obeys_adjust_and_stop_sent_to_it(tmp_path):
    """Requests reach rank 0 (through the run directory) and every rank applies them at the
    same step: an adjusted learning rate shows up, a stop ends both processes with a checkpoint."""
    run = tmp_path / "run"
    proc = _grpo_tui("train", "tiny-arithmetic", "--headless", "--num-processes", "2", "--max-steps", "400",
                     "--output", str(run), "--set", "dataset.task_args.eval_size=16", "--set", "save_steps=0")
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT

        def wait_for_step(n: int) -> int:
            while time.monotonic() < deadline:
                steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
                if steps and steps[-1] >= n:
                    return steps[-1]
                assert proc.poll() is None, proc.stdout.read()[-3000:]
                time.sleep(0.1)
            raise AssertionError("the run did not reach step %d" % n)

        wait_for_step(2)
        subprocess.run([sys.executable, "-m", "grpo_tui", "send", str(run), "adjust", "learning_rate=1e-5"],
                       cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=60)
        while not any(r.get("learning_rate") == pytest.approx(1e-5) for r in read_jsonl(run / "metrics.jsonl")):
            wait_for_step(wait_for_step(1) + 1)
        subprocess.run([sys.executable, "-m", "grpo_tui", "send", str(run), "stop"],
                       cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=60)
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    records = read_jsonl(run / "metrics.jsonl")
    last = records[-1]["step"]
    assert last < 400
    assert (run / "final" / "config.json").exists()
    assert (run / "checkpoints" / f"step-{last:06d}" / "COMPLETE").exists()
    adjusted = [e for e in read_jsonl(run / "events.jsonl") if e.get("kind") == "adjust"]
    assert len(adjusted) == 1 and json.dumps(adjusted[0]["data"]) == json.dumps({"learning_rate": 1e-5})


@pytest.mark.parametrize(("config", "says"), [
    ("distributed_type: DEEPSPEED\nnum_processes: 2\n", "DEEPSPEED is not supported"),
    ("distributed_type: FSDP\nnum_processes: 2\n", "FSDP version 1 is not supported"),
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 1\n", "set fsdp_version: 2"),
    ("distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 2\n  fsdp_activation_checkpointing: true\n",
     "set gradient_checkpointing: true in the preset"),
], ids=["deepspeed", "fsdp-default-version", "fsdp1", "fsdp-activation-checkpointing"])
def test_unsupported_setups_are_refused_with_what_to_use_instead(tmp_path, config, says):
    path = tmp_path / "accelerate.yaml"
    path.write_text(config)
    proc = _grpo_tui("train", "tiny-arithmetic", "--headless", "--accelerate-config", str(path))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in out
    assert says in out and ("presets/accelerate/fsdp.yaml" in out or "gradient_checkpointing" in out)


@pytest.mark.parametrize(("args", "says"), [
    (("--fsdp", "--accelerate-config", "presets/accelerate/ddp.yaml"), "either --fsdp or --accelerate-config"),
    (("--fsdp",), "give --num-processes N"),  # no GPUs here: nothing to shard over by default
], ids=["with-a-config", "no-gpus"])
def test_fsdp_shortcut_mistakes_are_refused(args, says):
    proc = _grpo_tui("train", "tiny-arithmetic", "--headless", *args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and says in out and "Traceback" not in out


def test_zero_processes_is_refused_not_ignored():
    proc = _grpo_tui("train", "tiny-arithmetic", "--headless", "--num-processes", "0")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--num-processes must be at least 1" in out and "Traceback" not in out


def test_the_shipped_accelerate_configs_are_accepted():
    from grpo_tui.cli.launch import _accelerate_config_problem

    for name in ("ddp.yaml", "fsdp.yaml"):
        assert _accelerate_config_problem(ROOT / "presets" / "accelerate" / name) is None, name


def _metrics_by_step(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_jsonl(run / "metrics.jsonl")}


def _resume_from_step(run: Path, copy: Path, step: int, *launch: str, env: dict) -> None:
    """``grpo-tui resume`` a copy of ``run`` cut back to its checkpoint at ``step``."""
    import shutil

    shutil.copytree(run, copy)
    shutil.rmtree(copy / "final")
    for later in (copy / "checkpoints").glob("step-*"):
        if int(later.name.removeprefix("step-")) > step:
            shutil.rmtree(later)
    proc = subprocess.run([sys.executable, "-m", "grpo_tui", "resume", str(copy), "--headless", *launch], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_an_fsdp_run_saves_whole_models_and_checkpoints_that_resume_exactly(tmp_path):
    """FSDP2 on two processes: the final model is whole and loads on its own; resuming the
    step-2 checkpoint (whole weights, optimizer state gathered by name) on FSDP repeats
    steps 3-4 exactly, and the same checkpoint resumes in one process too."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--fsdp", "--num-processes", "2",
         "--max-steps", "4", "--output", str(run), "--set", "save_steps=2", "--set", "dataset.task_args.eval_size=16",
         "--set", "weight_decay=0.1"],  # two parameter groups: the optimizer's state is saved and restored by name
        cwd=ROOT, env=_fsdp_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [e["data"]["sharded"] for e in read_jsonl(run / "events.jsonl") if e["kind"] == "run_started"] == [True]
    assert "· cpu:0 ×2 FSDP2 ·" in proc.stdout  # the run line, as the dashboard's status line shows it
    final = load_file(run / "final" / "model.safetensors")
    base = load_file(ROOT / "assets" / "tiny-model" / "model.safetensors")
    assert final.keys() >= base.keys() and any(not torch.equal(final[k], base[k]) for k in base)
    model = AutoModelForCausalLM.from_pretrained(run / "final")
    assert type(model).__name__ == "LlamaForCausalLM"  # not the FSDP class the run trained

    _resume_from_step(run, tmp_path / "again", 2, "--fsdp", "--num-processes", "2", env=_fsdp_env())
    first, again = _metrics_by_step(run), _metrics_by_step(tmp_path / "again")
    assert sorted(again) == [0, 1, 2, 3, 4]
    for step in (3, 4):
        for key in ("loss", "grad_norm", "kl", "reward"):
            assert again[step][key] == pytest.approx(first[step][key], rel=1e-5, abs=1e-8), (step, key)
    resumed_final = load_file(tmp_path / "again" / "final" / "model.safetensors")
    for name in final:
        torch.testing.assert_close(resumed_final[name], final[name], rtol=1e-5, atol=1e-7, msg=name)

    _resume_from_step(run, tmp_path / "alone", 2, env=_env())  # the sharded checkpoint, one process
    assert sorted(_metrics_by_step(tmp_path / "alone")) == [0, 1, 2, 3, 4]


def test_a_killed_two_process_run_resumes_on_two_processes(tmp_path):
    """A detached two-process run, kill -9 of every process, then ``resume --num-processes 2``:
    each step is logged once and the run finishes from its last checkpoint."""
    import re
    import signal

    import psutil

    run = tmp_path / "run"
    started = subprocess.run(
        [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--num-processes", "2", "--detach",
         "--max-steps", "24", "--output", str(run), "--set", "save_steps=4", "--set", "dataset.task_args.eval_size=16",
         "--set", "per_device_train_batch_size=16"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0 and f"grpo-tui attach {run}" in started.stdout
    pid = int(re.search(r"pid (\d+)", started.stdout).group(1))  # the launcher leads its own session
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not (run / "checkpoints" / "step-000008" / "COMPLETE").exists():
            assert time.monotonic() < deadline, "no checkpoint at step 8: " + (run / "console.log").read_text()[-2000:]
            time.sleep(0.05)
    finally:
        # the launcher's session, and its workers: torch's launcher starts each in a session of its own
        workers = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        os.killpg(pid, signal.SIGKILL)
        for worker in workers:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 30
    while any(p.isdigit() and _in_session(int(p), pid) for p in os.listdir("/proc")) or any(
            _alive(w) for w in workers):
        assert time.monotonic() < deadline, "processes of the killed run are still alive"
        time.sleep(0.1)
    resumed = _grpo_tui("resume", str(run), "--num-processes", "2")
    out, _ = resumed.communicate(timeout=LAUNCH_TIMEOUT)
    assert resumed.returncode == 0, out[-3000:]
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 24 and set(range(1, 25)) <= set(steps)
    assert (run / "final" / "config.json").exists()
    assert any(e.get("kind") == "resume" for e in read_jsonl(run / "events.jsonl"))


def test_dynamic_sampling_refills_in_step_across_processes(tmp_path):
    """DAPO's refills: every process draws the same number of extra rounds (the most any needs)."""
    run = tmp_path / "run"
    _train_on_two("tiny-dapo", 4, run, eval_size=16)
    rounds = [r["dynamic_sampling/rounds"] for r in read_jsonl(run / "metrics.jsonl") if "dynamic_sampling/rounds" in r]
    assert len(rounds) == 4 and all(r >= 1 for r in rounds)


def test_an_fsdp_lora_run_checkpoints_its_adapter_and_saves_the_merged_model(tmp_path):
    """LoRA under FSDP2 with merge_on_save: the step-2 checkpoint holds the trained adapter, and
    final/ is the base with that adapter merged (rank 0 merges the gathered weights)."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--accelerate-config",
         str(_fsdp_config(tmp_path)), "--max-steps", "2", "--output", str(run), "--set", "save_steps=2",
         "--set", "learning_rate=1e-2", "--set", "dataset.task_args.eval_size=16",
         "--set", "peft={r: 4, lora_alpha: 8, target_modules: all-linear, merge_on_save: true}"],
        cwd=ROOT, env=_fsdp_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    adapter = load_file(run / "checkpoints" / "step-000002" / "adapter_model.safetensors")
    assert any(float(t.abs().max()) > 0 for name, t in adapter.items() if "lora_B" in name)  # it trained
    base = AutoModelForCausalLM.from_pretrained(ROOT / "assets" / "tiny-model")
    expected = PeftModel.from_pretrained(base, run / "checkpoints" / "step-000002").merge_and_unload().state_dict()
    merged = load_file(run / "final" / "model.safetensors")
    assert merged.keys() <= expected.keys() and not any("lora" in name for name in merged)
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    assert (run / "final" / "tokenizer.json").exists()


def test_ranked_groups_of_mixed_sizes_train_under_fsdp(tmp_path):
    """Ranked groups of 2 and 6 responses give the ranks different row counts; under FSDP the
    rank with fewer micro-batches makes passes that add nothing, so the layer-by-layer
    gathers stay in step (without them the run hangs at step 1)."""
    lines = []
    for i in range(40):
        a, b = 10 + i, 20 + i
        size = 2 if i % 2 else 6
        group = [{"response": str(a + b + k), "rank": k + 1} for k in range(size)]
        lines.append(json.dumps({"prompt": f"{a}+{b}=", "group": group}))
    data = tmp_path / "ranked.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--fsdp", "--num-processes", "2",
         "--max-steps", "3", "--output", str(run), "--set", "dataset.task=null", "--set", f"dataset.path={data}",
         "--set", "dataset.format=ranked", "--set", "dataset.eval_size=4", "--set", "num_generations=2",
         "--set", "per_device_train_batch_size=4", "--set", "beta=0.0"],
        cwd=ROOT, env=_fsdp_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3]
