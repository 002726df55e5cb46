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
