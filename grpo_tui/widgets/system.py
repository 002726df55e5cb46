"""The system view: CPU, RAM and GPU memory with their recent trend, so an OOM is seen coming."""

from __future__ import annotations

from collections import deque

from textual.content import Content
from textual.widgets import Static

from grpo_tui.model.format import bar
from grpo_tui.model.system import GIB, SystemSnapshot, level

LEVEL_STYLE = {"ok": "$success", "warn": "$warning", "danger": "bold $error"}
TICKS = "▁▂▃▄▅▆▇█"
HISTORY = 120  # samples kept for the trend (4 minutes at one sample every 2 s)


def sparkline(values: list[float], width: int) -> str:
    """The last ``width`` shares (0–1) as block characters, oldest first."""
    return "".join(TICKS[min(len(TICKS) - 1, max(0, int(v * len(TICKS))))] for v in values[-width:])


def status_segment(snapshot: SystemSnapshot, short: bool = False) -> tuple[str, str]:
    """The fullest memory for the status line: ``("GPU0 mem 93%", style)`` (``"GPU0 93%"`` short)."""
    where, share = snapshot.pressure()
    label = where if short or where == "RAM" else f"{where} mem"
    return f"{label} {share:.0%}", LEVEL_STYLE[level(share)]


class SystemPane(Static):
    """Bars for CPU, RAM and each GPU's memory and utilisation, with the memory trend."""

    DEFAULT_CSS = "SystemPane { padding: 0 1; height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot: SystemSnapshot | None = None
        self.history: dict[str, deque[float]] = {}

    def record(self, snapshot: SystemSnapshot) -> None:
        self.snapshot = snapshot
        self._remember("RAM", snapshot.ram_share)
        for gpu in snapshot.gpus:
            self._remember(f"GPU{gpu.index}", gpu.memory_used / gpu.memory_total if gpu.memory_total else 0.0)

    def _remember(self, key: str, share: float) -> None:
        self.history.setdefault(key, deque(maxlen=HISTORY)).append(share)

    def refresh_view(self) -> None:
        self.update(self.render_snapshot(max(40, self.size.width - 2)), layout=False)

    def render_snapshot(self, width: int) -> Content:
        s = self.snapshot
        if s is None:
            return Content.styled("measuring…", "$text-muted")
        bar_w = max(10, min(40, width - 48))
        parts: list[tuple[str, str] | str] = []

        def line(label: str, share: float, text: str, style: str) -> None:
            parts.extend([(f"{label:<8}", "bold"), (bar(share, 1, bar_w, nearest=True), style), f" {text}\n"])

        cpu_share = s.cpu_percent / 100
        extra = f"   trainer {s.process_cpu:.0f}% of a core" if s.process_cpu is not None else ""
        line("CPU", cpu_share, f"{s.cpu_percent:3.0f}% of {s.cores} cores{extra}", "$accent")
        extra = f"   trainer {s.process_rss / GIB:.1f} GiB" if s.process_rss is not None else ""
        line("RAM", s.ram_share, f"{s.ram_used / GIB:.1f} / {s.ram_total / GIB:.1f} GiB ({s.ram_share:.0%}){extra}",
             LEVEL_STYLE[level(s.ram_share)])
        self._trend(parts, "RAM", bar_w)
        for gpu in s.gpus:
            share = gpu.memory_used / gpu.memory_total if gpu.memory_total else 0.0
            parts.append((f"\nGPU{gpu.index}  {gpu.name}\n", "bold"))
            line("  mem", share, f"{gpu.memory_used / GIB:.1f} / {gpu.memory_total / GIB:.1f} GiB ({share:.0%})",
                 LEVEL_STYLE[level(share)])
            self._trend(parts, f"GPU{gpu.index}", bar_w)
            if gpu.utilization is not None:
                line("  util", gpu.utilization / 100, f"{gpu.utilization:.0f}%", "$accent")
        if not s.gpus:
            parts.append((f"\nGPU     {s.gpu_note}\n", "$text-muted"))
        where, share = s.pressure()
        if level(share) != "ok":
            parts.append((f"\n{where} memory at {share:.0%}: lower per_device_train_batch_size, num_generations or "
                          "max_completion_length, or turn on gradient_checkpointing, before it runs out\n",
                          LEVEL_STYLE[level(share)]))
        return Content.assemble(*parts)

    def _trend(self, parts: list, key: str, width: int) -> None:
        values = list(self.history.get(key, ()))
        if len(values) > 1:
            parts.append((f"{'  trend' if key.startswith('GPU') else 'trend':<8}", "$text-muted"))
            parts.append((sparkline(values, width) + "\n", "$text-muted"))
