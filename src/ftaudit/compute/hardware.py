"""Hardware-based cross-check (guidelines Annex A.2: C = N·L·H·U) and GPU energy from NVML.

N·L·H·U = GPUs × seconds × peak FLOP/s per GPU (by data type, from `data/gpu_peaks.yaml`) × mean utilisation.
The peak table is matched EXACTLY on a normalised device name (the seed meter's substring match let "H20" pass
for "H200"). An unknown GPU gets no peak and the report says so; `PEAK_TFLOPS_PER_GPU` overrides the table.

The sampler thread reads NVML (`nvidia-ml-py`) for utilisation, power and the total-energy counter. It takes the
NVML module as an argument so tests can inject a fake one (an interface test; no GPU on the CI machines).
No torch here.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from ftaudit.compute.evidence import EnergyEvidence, GpuUsage, HardwareCrossCheck
from ftaudit.io import load_yaml

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
_VENDOR_WORDS = {"nvidia", "tesla", "amd", "instinct"}
NO_GPU_STATEMENT = "no GPU counters on this machine: the hardware-based figure (Annex A.2) cannot be measured here"


@dataclass(frozen=True)
class GpuPeak:
    model: str
    peaks: dict[str, float | None]
    source: str


def normalise_gpu_name(name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' → 'a100 sxm4 80gb'; 'Tesla T4' → 't4'; 'AMD Instinct MI300X' → 'mi300x'."""
    words = re.sub(r"[-_\s]+", " ", str(name).replace("(TM)", "").replace("®", "").lower()).split()
    while words and words[0] in _VENDOR_WORDS:
        words = words[1:]
    return " ".join(words)


@lru_cache(maxsize=1)
def peak_table() -> dict[str, GpuPeak]:
    """Normalised name → entry. Two entries claiming one name is a data error, caught here (and by the tests)."""
    text = resources.files("ftaudit.compute").joinpath("data/gpu_peaks.yaml").read_text(encoding="utf-8")
    table: dict[str, GpuPeak] = {}
    for entry in load_yaml(text)["gpus"]:
        peak = GpuPeak(model=entry["model"], source=entry["source"],
                       peaks={d: (None if entry["peaks"].get(d) is None else float(entry["peaks"][d]))
                              for d in DTYPES})
        for name in entry["names"]:
            key = normalise_gpu_name(name)
            if key in table:
                raise ValueError(f"gpu_peaks.yaml: name {name!r} listed for {table[key].model} and {peak.model}")
            table[key] = peak
    return table


def lookup_gpu(name: str) -> GpuPeak | None:
    return peak_table().get(normalise_gpu_name(name))


def peak_tflops(name: str, dtype: str, override: float | None = None) -> tuple[float | None, str | None, str]:
    """(peak TFLOP/s, matched table model, source). An override wins over the table, for any GPU."""
    if override is not None:
        entry = lookup_gpu(name)
        return override, (entry.model if entry else None), "PEAK_TFLOPS_PER_GPU (set by the user)"
    entry = lookup_gpu(name)
    if entry is None:
        return None, None, f"GPU {name!r} is not in the peak table; set PEAK_TFLOPS_PER_GPU to give its peak"
    value = entry.peaks.get(dtype)
    if value is None:
        return None, entry.model, f"{entry.model} has no {dtype} tensor peak in its datasheet ({entry.source})"
    return value, entry.model, entry.source


# ---------------------------------------------------------------------------------------------------- NVML
@dataclass
class _GpuTrack:
    index: int
    name: str
    handle: Any
    util_sum: float = 0.0
    samples: int = 0
    power_joules: float = 0.0  # ∫ power dt, the fallback when the energy counter is unsupported
    energy_start_mj: float | None = None
    energy_end_mj: float | None = None
    last_power_w: float | None = None


@dataclass
class GpuReading:
    name: str
    samples: int
    mean_utilisation: float | None
    seconds: float
    energy_joules: float | None
    energy_method: str


class NvmlSampler:
    """Samples utilisation and power of the given GPUs every `interval` seconds on a daemon thread."""

    def __init__(self, nvml: Any, device_indices: list[int] | None = None, *, uuids: list[str] | None = None,
                 interval: float = 1.0):
        self.nvml = nvml
        self.interval = interval
        nvml.nvmlInit()
        handles: list[tuple[int, Any]] = []
        if uuids:
            for i, u in enumerate(uuids):
                handles.append((i, nvml.nvmlDeviceGetHandleByUUID(u)))
        else:
            indices = device_indices if device_indices is not None else range(nvml.nvmlDeviceGetCount())
            handles = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
        self.tracks = [_GpuTrack(index=i, name=_decode(nvml.nvmlDeviceGetName(h)), handle=h) for i, h in handles]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> "NvmlSampler":
        self.started = time.monotonic()
        for t in self.tracks:
            t.energy_start_mj = self._energy(t)
        self._sample(0.0)
        self._thread = threading.Thread(target=self._run, name="ftaudit-nvml", daemon=True)
        self._thread.start()
        return self

    def _energy(self, t: _GpuTrack) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(t.handle))
        except Exception:  # NVMLError_NotSupported before Volta, or a driver without the counter
            return None

    def _sample(self, dt: float) -> None:
        for t in self.tracks:
            try:
                t.util_sum += float(self.nvml.nvmlDeviceGetUtilizationRates(t.handle).gpu) / 100.0
                t.samples += 1
            except Exception:
                pass
            try:
                watts = float(self.nvml.nvmlDeviceGetPowerUsage(t.handle)) / 1000.0
                if t.last_power_w is not None:
                    t.power_joules += 0.5 * (watts + t.last_power_w) * dt
                t.last_power_w = watts
            except Exception:
                pass

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            self._sample(now - last)
            last = now

    def stop(self) -> list[GpuReading]:
        if self.stopped is None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._sample(0.0)
            for t in self.tracks:
                t.energy_end_mj = self._energy(t)
            self.stopped = time.monotonic()
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
        return self.readings()

    def reading(self, dtype: str, peak_override: float | None) -> "Reading":
        return Reading(gpu=local_totals(self.readings(), dtype, peak_override))

    def readings(self) -> list[GpuReading]:
        end = self.stopped if self.stopped is not None else time.monotonic()
        seconds = end - (self.started or end)
        out = []
        for t in self.tracks:
            end_mj = t.energy_end_mj if self.stopped is not None else self._energy(t)
            if t.energy_start_mj is not None and end_mj is not None:
                joules, method = (end_mj - t.energy_start_mj) / 1000.0, "NVML total-energy counter"
            elif t.samples:
                joules, method = t.power_joules, "NVML power samples integrated over time"
            else:
                joules, method = None, "no NVML energy or power reading"
            out.append(GpuReading(name=t.name, samples=t.samples,
                                  mean_utilisation=(t.util_sum / t.samples if t.samples else None),
                                  seconds=seconds, energy_joules=joules, energy_method=method))
        return out


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------------- summary
@dataclass
class HardwareTotals:
    """Per-rank figures that are summed over ranks and nodes (all_reduce) before the cross-check is written."""

    flops_measured: float = 0.0
    flops_upper: float = 0.0
    gpu_seconds: float = 0.0
    n_gpus: float = 0.0
    gpus_without_peak: float = 0.0
    energy_joules: float = 0.0
    energy_unmeasured_gpus: float = 0.0
    gpus: list[GpuUsage] = field(default_factory=list)

    FIELDS = ("flops_measured", "flops_upper", "gpu_seconds", "n_gpus", "gpus_without_peak", "energy_joules",
              "energy_unmeasured_gpus")

    def vector(self) -> list[float]:
        return [float(getattr(self, f)) for f in self.FIELDS]

    def with_vector(self, values: list[float]) -> "HardwareTotals":
        return HardwareTotals(**dict(zip(self.FIELDS, values, strict=True)), gpus=self.gpus)


@dataclass
class Reading:
    """One sampler's figures for this rank since it started: what the meter sums over samplers and ranks."""

    gpu: HardwareTotals = field(default_factory=lambda: HardwareTotals())
    cpu_joules: float = 0.0
    cpu_estimated: bool = False


class Sampler(Protocol):
    """A hardware sampler (NVML GPUs, the CPU's RAPL counters or the CPU-time estimate): started with the meter,
    read at every sync, stopped at the end."""

    def start(self) -> "Sampler": ...

    def reading(self, dtype: str, peak_override: float | None) -> Reading: ...

    def stop(self) -> object: ...


def local_totals(readings: list[GpuReading], dtype: str, override_tflops: float | None) -> HardwareTotals:
    out = HardwareTotals()
    for r in readings:
        peak, model, source = peak_tflops(r.name, dtype, override_tflops)
        out.n_gpus += 1
        out.gpu_seconds += r.seconds
        if peak is None:
            out.gpus_without_peak += 1
        else:
            out.flops_upper += peak * 1e12 * r.seconds
            if r.mean_utilisation is not None:
                out.flops_measured += peak * 1e12 * r.seconds * r.mean_utilisation
        if r.energy_joules is None:
            out.energy_unmeasured_gpus += 1
        else:
            out.energy_joules += r.energy_joules
        out.gpus.append(GpuUsage(name=r.name, matched_model=model, dtype=dtype, peak_tflops=peak,
                                 peak_source=source, mean_utilisation=r.mean_utilisation, samples=r.samples,
                                 seconds=r.seconds,
                                 energy_kwh=(None if r.energy_joules is None else r.energy_joules / 3.6e6)))
    return out


def cross_check(totals: HardwareTotals, dtype: str, regulatory_flops: float | None) -> HardwareCrossCheck:
    """The evidence from totals summed over all ranks and nodes."""
    if totals.n_gpus == 0:
        return HardwareCrossCheck(available=False, statement=NO_GPU_STATEMENT, dtype=dtype)
    n = int(totals.n_gpus)
    missing = int(totals.gpus_without_peak)
    if missing == n:
        statement = (f"{n} GPU(s) measured but none has a known {dtype} peak, so no hardware-based FLOP figure; "
                     "set PEAK_TFLOPS_PER_GPU to give one")
        return HardwareCrossCheck(available=True, statement=statement, dtype=dtype, n_gpus=n,
                                  gpu_seconds=totals.gpu_seconds, gpus=totals.gpus)
    statement = (f"{n} GPU(s), {totals.gpu_seconds:.0f} GPU-seconds, summed over all ranks and nodes; "
                 f"peak by {dtype} from the datasheet table; utilisation from NVML")
    if missing:
        statement += f"; {missing} GPU(s) without a known peak are left out of the figure"

    def ratio(x: float) -> float | None:
        return (regulatory_flops / x) if regulatory_flops is not None and x > 0 else None

    return HardwareCrossCheck(
        available=True, statement=statement, dtype=dtype, n_gpus=n, gpu_seconds=totals.gpu_seconds,
        gpus=totals.gpus, flops_measured_utilisation=totals.flops_measured, flops_upper_bound=totals.flops_upper,
        ratio_architecture_to_hardware=ratio(totals.flops_measured),
        ratio_architecture_to_upper_bound=ratio(totals.flops_upper),
    )


def gpu_energy(totals: HardwareTotals, seconds: float) -> EnergyEvidence:
    kinds = "NVML total-energy counter (or integrated NVML power where the counter is unsupported)"
    missing = int(totals.energy_unmeasured_gpus)
    method = f"measured: {kinds}, GPUs only (CPU, memory, network and cooling not included)"
    if missing:
        method += f"; {missing} GPU(s) gave no energy reading and are missing from the figure"
    return EnergyEvidence(kwh=totals.energy_joules / 3.6e6, kind="measured", method=method, seconds=seconds)
