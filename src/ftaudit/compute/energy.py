"""Energy on a machine without GPU counters (Annex XI §1 2(e): "known or estimated energy consumption").

Two ways, and the record says which was used:
  measured   the RAPL package energy counters under /sys/class/powercap (Intel and recent AMD), when readable;
             they cover the whole CPU package, every process on it, so the figure is an upper bound for this job.
  estimated  process CPU time × an assumed power per busy core (CPU_WATTS_PER_CORE, labelled as an assumption).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ftaudit.compute.evidence import EnergyEvidence
from ftaudit.compute.hardware import Reading

POWERCAP = Path("/sys/class/powercap")
# Assumption, not a measurement: a server core under load draws roughly 5–15 W (package TDP / cores); we take the
# upper end so that the estimate does not understate.
CPU_WATTS_PER_CORE = 15.0


def _rapl_packages(root: Path) -> list[Path]:
    # Top-level zones only ("intel-rapl:0", not "intel-rapl:0:0"): sub-zones are part of their package.
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").is_file())


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class CpuEnergyMeter:
    """Start at train begin, read at each sync point; `root` is injectable for tests."""

    root: Path = POWERCAP
    read_rapl: bool = True  # only one process per node reads RAPL (package counters are node-wide)

    def start(self) -> "CpuEnergyMeter":
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._zones = _rapl_packages(self.root) if self.read_rapl else []
        self._uj0 = {z: _read_int(z / "energy_uj") for z in self._zones}
        self._zones = [z for z in self._zones if self._uj0[z] is not None]
        return self

    def rapl_joules(self) -> float | None:
        if not self._zones:
            return None
        total = 0.0
        for z in self._zones:
            now = _read_int(z / "energy_uj")
            if now is None:
                return None
            delta = now - self._uj0[z]
            if delta < 0:  # the counter wrapped
                delta += _read_int(z / "max_energy_range_uj") or 0
            total += delta / 1e6
        return total

    def cpu_seconds(self) -> float:
        return time.process_time() - self._cpu0

    def reading(self, dtype: str = "fp32", peak_override: float | None = None) -> Reading:
        """This process's CPU energy (the node's, for RAPL): measured, or estimated from CPU time."""
        rapl = self.rapl_joules()
        if rapl is not None:
            return Reading(cpu_joules=rapl)
        return Reading(cpu_joules=self.cpu_seconds() * CPU_WATTS_PER_CORE, cpu_estimated=True)

    def stop(self) -> None:
        return None

    def seconds(self) -> float:
        return time.monotonic() - self._t0


def cpu_energy(joules: float, kind: str, seconds: float) -> EnergyEvidence:
    if kind == "measured":
        method = ("measured: RAPL CPU package energy counters (/sys/class/powercap), whole package, every process "
                  "on it; no GPU counters on this machine; memory, network and cooling not included")
    else:
        method = (f"estimated: process CPU time × {CPU_WATTS_PER_CORE:g} W per busy core (an assumption, no power "
                  "counter was readable); no GPU counters on this machine")
    return EnergyEvidence(kwh=joules / 3.6e6, kind=kind, method=method, seconds=seconds)


def local_rank_is_node_leader() -> bool:
    return os.environ.get("LOCAL_RANK", "0") in ("", "0")
