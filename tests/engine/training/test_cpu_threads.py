"""torch's CPU threads follow the work: one for the bundled tiny model (its products are too
small to split), every core for a wide model, GRPO_TUI_CPU_THREADS over both; `bench` says which."""

from __future__ import annotations

import io

import pytest
import torch

from conftest import tiny_config
from engine.training import cpu_threads
from engine.training.cpu_threads import TORCH_DEFAULT_THREADS, choose_cpu_threads


def test_choice_by_width_and_override():
    assert choose_cpu_threads(128, 8) == (1, "hidden size 128 < 256: products too small to split; "
                                             "a core left to the dashboard")
    assert choose_cpu_threads(1024, 8)[0] == 8
    assert choose_cpu_threads(None, 8)[0] == 1
    assert choose_cpu_threads(1024, 8, "3") == (3, "GRPO_TUI_CPU_THREADS=3")
    assert choose_cpu_threads(1024, 8, "many")[0] == 8  # not a number: as if unset


@pytest.mark.slow
def test_bench_uses_and_names_the_choice(tmp_path, monkeypatch):
    from grpo_tui.cli.bench import bench

    monkeypatch.delenv(cpu_threads.ENV, raising=False)
    out = io.StringIO()
    assert bench(tiny_config(tmp_path, "log_completions_groups=0"), steps=1, warmup=0, out=out) == 0
    assert "threads 1 (hidden size 128 < 256" in out.getvalue()
    wide = tiny_config(tmp_path / "wide", "log_completions_groups=0", "model_init=random",
                       "model_config_overrides={hidden_size: 256, intermediate_size: 512}")
    out = io.StringIO()
    assert bench(wide, steps=1, warmup=0, out=out) == 0
    assert f"threads {TORCH_DEFAULT_THREADS} (hidden size 256 ≥ 256: compute-bound" in out.getvalue()
    assert torch.get_num_threads() == TORCH_DEFAULT_THREADS


@pytest.mark.slow
def test_bench_reports_each_phases_arithmetic_against_the_measured_peak(tmp_path):
    """The FLOP counts come from the model's shapes: the tiny model's (hidden 128, 4 layers, MLP
    512, vocab 100) appear, each phase gets GFLOP, GFLOP/s and its share of the peak, and the
    step is compared with its arithmetic floor; ``--profile N`` adds the N costliest operations."""
    import re

    from grpo_tui.cli.bench import bench

    out = io.StringIO()
    assert bench(tiny_config(tmp_path, "log_completions_groups=0"), steps=1, warmup=1, out=out, profile=5) == 0
    text = out.getvalue()
    assert "hidden 128, 4 layers, MLP 512, vocab 100" in text
    assert "generation    transformers, dynamic KV cache" in text
    assert re.search(r"update rows +\d+ of 64 completions", text)
    # --profile: the timed step's costliest operations (its matrix products first on the CPU)
    table = text[text.index("profile of the timed steps, by self_cpu_time_total"):]
    assert "aten::mm" in table and len([line for line in table.splitlines() if "aten::" in line]) == 5
    assert re.search(r"matmul peak +\d+ GFLOP/s \(float32", text)
    for phase in ("time/generate", "time/update"):
        assert re.search(rf"{phase} +[\d.]+ GFLOP +\d+ GFLOP/s +\d+% of peak", text), text
    assert re.search(r"floor +[\d.]+ s/step at the matmul peak; this step is [\d.]+× it", text)
    assert re.search(r"decode limit +\d+ GFLOP/s: this model's products for 64 rows, one token each "
                     r"\(\d+% of peak\); generation reaches \d+% of it", text)


@pytest.mark.slow
def test_bench_counts_a_round_that_feeds_several_steps_by_its_share(tmp_path):
    """steps_per_generation = 2: only a round's first step generates, so the bench times whole
    rounds, gives each phase's mean per step (a median would be 0 s of generation and a NaN
    rate), and measures the decode limit at the round's width (128 rows), where decoding runs."""
    import re

    from grpo_tui.cli.bench import bench

    out = io.StringIO()
    cfg = tiny_config(tmp_path, "log_completions_groups=0", "steps_per_generation=2")
    assert bench(cfg, steps=1, warmup=1, out=out) == 0
    text = out.getvalue()
    assert "steps timed   2 (after 2 warm-up); rounds of 128 completions, each feeding 2 steps" in text
    assert re.search(r"s/step +mean +[\d.]+", text) and re.search(r"time/generate +mean +[\d.]+ s", text)
    assert re.search(r"time/generate +[\d.]+ GFLOP +\d+ GFLOP/s +\d+% of peak", text), text
    assert re.search(r"decode limit +\d+ GFLOP/s: this model's products for 128 rows", text), text


def test_the_decode_roofline_reads_weights_and_cache_at_the_measured_bandwidth():
    from types import SimpleNamespace

    from grpo_tui.cli import flops
    from grpo_tui.cli.bench import _decode_roofline

    model = torch.nn.Linear(256, 256, bias=False)  # 256 KiB of fp32 weights
    parts = SimpleNamespace(model=model, device=torch.device("cpu"))
    shape = flops.Shape(256, 2, 512, 64, 100)
    lines = _decode_roofline(parts, shape, rows=4, prompt_len=10, new_tokens=20, gen_s=0.2)
    assert lines[0].startswith("bandwidth") and "weights 0.00 GiB" in lines[0]
    assert "10.0 ms/token-step for 4 rows" in lines[1] and "400 tokens/s" in lines[1]
