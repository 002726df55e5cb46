"""System figures for the dashboard: sampling this machine, and how they are shown."""

from __future__ import annotations

import os

from grpo_tui.model.system import GIB, GpuStat, SystemSampler, SystemSnapshot, level
from grpo_tui.model.format import bar
from grpo_tui.widgets.system import SystemPane, sparkline, status_segment


def test_sampling_this_machine_and_process():
    sampler = SystemSampler(pid=os.getpid())
    snap = sampler.sample()
    assert snap.cores >= 1 and snap.ram_total > snap.ram_used > 0
    assert 0 <= snap.cpu_percent <= 100
    assert snap.process_rss and snap.process_rss > 10 * 1024**2  # this interpreter with torch loaded
    assert snap.gpus or snap.gpu_note  # figures, or why there are none


def test_a_process_that_ended_leaves_the_machine_figures():
    sampler = SystemSampler(pid=2**22 + 12345)  # no such process
    snap = sampler.sample()
    assert snap.process_rss is None and snap.ram_total > 0


def _snapshot(gpu_used_gib: float) -> SystemSnapshot:
    return SystemSnapshot(cpu_percent=50.0, cores=8, ram_used=8 * GIB, ram_total=32 * GIB, process_rss=2 * GIB,
                          process_cpu=99.0, gpus=[GpuStat(0, "GPU", int(gpu_used_gib * GIB), 80 * GIB, 90.0)])


def test_pressure_names_the_fullest_memory_and_its_level():
    assert _snapshot(10).pressure() == ("RAM", 0.25)
    where, share = _snapshot(77).pressure()
    assert where == "GPU0" and share > 0.95 and level(share) == "danger"
    assert level(0.86) == "warn" and level(0.5) == "ok"
    assert status_segment(_snapshot(77))[0] == "GPU0 mem 96%"
    assert status_segment(_snapshot(10), short=True)[0] == "RAM 25%"


def test_bars_and_trend():
    assert bar(0.5, 1, 10, nearest=True) == "█████░░░░░"
    assert bar(1.7, 1, 4, nearest=True) == "████" and bar(-1, 1, 3, nearest=True) == "░░░"
    assert sparkline([0.0, 0.5, 0.99], 10) == "▁▅█"
    assert sparkline([0.1] * 20, 5) == "▁" * 5


def test_pane_warns_before_memory_runs_out():
    pane = SystemPane()
    for used in (40, 60, 77):
        pane.record(_snapshot(used))
    text = pane.render_snapshot(100).plain
    assert "GPU0" in text and "77.0 / 80.0 GiB (96%)" in text
    assert "trend" in text and "gradient_checkpointing" in text
    calm = SystemPane()
    calm.record(_snapshot(10))
    assert "gradient_checkpointing" not in calm.render_snapshot(100).plain
