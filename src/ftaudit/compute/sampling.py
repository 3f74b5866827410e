"""The meter's hardware samplers: which ones run (NVML for this process's GPUs when CUDA is there, and the CPU
energy meter), their readings summed for a sync, and the hardware cross-check and energy evidence from the
all-reduced figures (earlier sessions of a resumed run added)."""

from __future__ import annotations

import torch

from ftaudit.compute import energy as energy_mod
from ftaudit.compute import hardware as hw_mod
from ftaudit.compute.evidence import EnergyEvidence, GpuUsage, HardwareCrossCheck
from ftaudit.compute.meter import MeterState


def default_samplers(model, dist, nvml: bool | None, interval: float, warnings: list[str]) -> list[hw_mod.Sampler]:
    samplers: list[hw_mod.Sampler] = []
    enabled = nvml if nvml is not None else torch.cuda.is_available()
    if enabled and torch.cuda.is_available():
        try:
            samplers.append(_nvml_sampler(model, dist, interval).start())
        except Exception as exc:  # noqa: BLE001 - NVML missing or broken: say so in the record
            warnings.append(f"NVML sampling failed ({type(exc).__name__}: {exc}); no GPU counters")
    samplers.append(energy_mod.CpuEnergyMeter(read_rapl=energy_mod.local_rank_is_node_leader()).start())
    return samplers


def _nvml_sampler(model, dist, interval: float) -> hw_mod.NvmlSampler:
    import pynvml

    if dist is not None:
        devices = [torch.cuda.current_device()]
    else:
        devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    uuids = []
    for d in devices:
        u = str(getattr(torch.cuda.get_device_properties(d), "uuid", "") or "")
        uuids.append(u if u.startswith(("GPU-", "MIG-")) else f"GPU-{u}")
    try:
        return hw_mod.NvmlSampler(pynvml, uuids=uuids, interval=interval)
    except Exception:  # noqa: BLE001 - UUID lookup unsupported: fall back to indices
        return hw_mod.NvmlSampler(pynvml, devices, interval=interval)


def combined_reading(samplers, dtype: str, peak_override: float | None) -> hw_mod.Reading:
    out = hw_mod.Reading()
    for s in samplers or ():
        r = s.reading(dtype, peak_override)
        if r.gpu.n_gpus:
            out.gpu = r.gpu
        out.cpu_joules += r.cpu_joules
        out.cpu_estimated = out.cpu_estimated or r.cpu_estimated
    return out


def hardware_evidence(base: MeterState, new: MeterState, hw_values: list[float], energy: list[float],
                      seconds: float, gpus: list[GpuUsage], dtype: str) -> tuple[HardwareCrossCheck, EnergyEvidence]:
    """From the all-reduced hardware figures (`SyncLayout.hardware_slice`) and CPU energy (`energy_slice`)."""
    totals = hw_mod.HardwareTotals().with_vector(hw_values)
    totals.gpus = gpus
    prev = base.hardware
    if prev is not None and prev.flops_upper_bound is not None:  # resumed: earlier sessions count too
        totals.flops_measured += prev.flops_measured_utilisation or 0.0
        totals.flops_upper += prev.flops_upper_bound
        totals.gpu_seconds += prev.gpu_seconds
    hardware = hw_mod.cross_check(totals, dtype, new.regulatory_flops)
    if totals.n_gpus:
        used = hw_mod.gpu_energy(totals, new.training_seconds)
    else:
        used = energy_mod.cpu_energy(energy[0], "estimated" if energy[1] > 0 else "measured", seconds)
    if base.energy is not None and base.energy.kwh is not None and used.kwh is not None:
        used.kwh += base.energy.kwh  # resumed: add what the run used before the checkpoint
        used.seconds += base.energy.seconds
    return hardware, used
