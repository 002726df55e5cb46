"""What the machine has left: CPU, RAM and GPUs, for the dashboard's system view.

psutil for CPU and RAM (always installed); NVIDIA GPUs through NVML (``nvidia-ml-py``, the
vllm extra) when present. Sampling is cheap (well under a millisecond without GPUs, a few
with), so a viewer can call :meth:`SystemSampler.sample` every second or two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

GIB = 1024**3
WARN_AT = 0.85  # memory share at which the dashboard warns
DANGER_AT = 0.95


@dataclass(frozen=True)
class GpuStat:
    index: int
    name: str
    memory_used: int  # bytes, every process on the device
    memory_total: int
    utilization: float | None  # percent of the last sample period with a kernel running


@dataclass(frozen=True)
class SystemSnapshot:
    cpu_percent: float  # all cores together, 0–100
    cores: int
    ram_used: int
    ram_total: int
    process_rss: int | None  # the training process's resident memory (None when unknown)
    process_cpu: float | None  # its CPU use in percent of one core (may exceed 100)
    gpus: list[GpuStat] = field(default_factory=list)
    gpu_note: str = ""  # why no GPU figures (no NVIDIA GPU, nvidia-ml-py missing)

    @property
    def ram_share(self) -> float:
        return self.ram_used / self.ram_total if self.ram_total else 0.0

    def pressure(self) -> tuple[str, float]:
        """The fullest memory — ``("GPU0", 0.93)`` or ``("RAM", 0.41)``: where an OOM comes first."""
        worst = ("RAM", self.ram_share)
        for gpu in self.gpus:
            share = gpu.memory_used / gpu.memory_total if gpu.memory_total else 0.0
            if share > worst[1]:
                worst = (f"GPU{gpu.index}", share)
        return worst


def level(share: float) -> str:
    """ok | warn | danger for a memory share (0–1)."""
    return "danger" if share >= DANGER_AT else "warn" if share >= WARN_AT else "ok"


class SystemSampler:
    """Samples the machine, and one process (the trainer) when its pid is known."""

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._process = None
        self.set_pid(pid if pid is not None else os.getpid())
        psutil.cpu_percent(None)  # the first call starts the measuring period
        self._nvml = None
        self._gpu_note = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except ImportError:
            self._gpu_note = "GPU figures need nvidia-ml-py (pip install nvidia-ml-py)" if _has_nvidia_device() \
                else "no NVIDIA GPU"
        except Exception:  # noqa: BLE001 - NVMLError: no driver / no device
            self._gpu_note = "no NVIDIA GPU"

    def set_pid(self, pid: int | None) -> None:
        """Follow another process (an attached run's trainer); None = the machine only."""
        self._process = None
        if pid is None:
            return
        try:
            self._process = self._psutil.Process(pid)
            self._process.cpu_percent(None)
        except (self._psutil.Error, ValueError):
            self._process = None

    def sample(self) -> SystemSnapshot:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        rss = cpu = None
        if self._process is not None:
            try:
                with self._process.oneshot():
                    rss = self._process.memory_info().rss
                    cpu = self._process.cpu_percent(None)
            except psutil.Error:  # the process ended
                self._process = None
        return SystemSnapshot(
            cpu_percent=psutil.cpu_percent(None),
            cores=psutil.cpu_count() or 1,
            ram_used=memory.total - memory.available,
            ram_total=memory.total,
            process_rss=rss,
            process_cpu=cpu,
            gpus=self._gpus(),
            gpu_note=self._gpu_note,
        )

    def _gpus(self) -> list[GpuStat]:
        nvml = self._nvml
        if nvml is None:
            return []
        stats = []
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                try:
                    util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                except nvml.NVMLError:
                    util = None
                stats.append(GpuStat(i, name.decode() if isinstance(name, bytes) else str(name),
                                     int(mem.used), int(mem.total), util))
        except nvml.NVMLError as err:
            self._gpu_note = f"NVML error: {err}"
            return []
        return stats


def _has_nvidia_device() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")
