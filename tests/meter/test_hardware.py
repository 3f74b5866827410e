"""GPU peak table (exact matching), the N·L·H·U cross-check, NVML sampling through a fake NVML module (an interface
test: no GPU on these machines), and the CPU energy path for real (plus RAPL from a fake powercap tree)."""

import time
from types import SimpleNamespace

import pytest

from ftaudit.compute import energy, hardware
from ftaudit.compute.hardware import (
    NvmlSampler,
    cross_check,
    gpu_energy,
    local_totals,
    lookup_gpu,
    normalise_gpu_name,
    peak_table,
    peak_tflops,
)


@pytest.mark.parametrize("nvml_name, model", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA H20", "H20"),
    ("NVIDIA A100-SXM4-40GB", "A100 SXM 40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", "L40"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla T4", "T4"),
    ("NVIDIA B200", "B200"),
    ("NVIDIA GB200", "GB200"),
    ("AMD Instinct MI300X", "MI300X"),
    ("AMD Instinct MI250X", "MI250X"),
])
def test_exact_model_matching(nvml_name, model):
    assert lookup_gpu(nvml_name).model == model


def test_h20_never_matches_h200_and_unknowns_get_no_peak():
    assert lookup_gpu("NVIDIA H20").peaks["bf16"] == 148
    assert lookup_gpu("NVIDIA H200").peaks["bf16"] == 989.5
    for name in ("NVIDIA H2", "NVIDIA H2000", "NVIDIA H100", "NVIDIA A100", "NVIDIA L4 Ultra", "GeForce RTX 4090"):
        assert lookup_gpu(name) is None, name
    peak, model, why = peak_tflops("NVIDIA H100", "bf16")
    assert peak is None and model is None and "PEAK_TFLOPS_PER_GPU" in why
    assert peak_tflops("NVIDIA H100", "bf16", override=500.0)[0] == 500.0
    assert peak_tflops("Tesla V100-SXM2-32GB", "bf16")[0] is None  # no bf16 tensor path on Volta


def test_table_is_consistent():
    table = peak_table()  # raises if two entries claim one name
    assert len({e.model for e in table.values()}) >= 25
    for name, entry in table.items():
        assert name == normalise_gpu_name(name) and entry.source
        values = {d: v for d, v in entry.peaks.items() if v is not None}
        assert values.get("fp32", 0) > 0
        if values.get("bf16") and values.get("fp8"):
            # dense, not sparse figures (2 % for datasheet rounding)
            assert values["fp8"] == pytest.approx(2 * values["bf16"], rel=0.02)


class FakeNvml:
    """Implements the few pynvml calls the sampler makes."""

    def __init__(self, names, util=50, watts=300.0, energy_counter=True):
        self.names, self.util, self.watts, self.energy_counter = names, util, watts, energy_counter
        self.t0 = time.monotonic()
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetHandleByUUID(self, u):
        return int(u.split("-")[-1])

    def nvmlDeviceGetName(self, h):
        return self.names[h].encode()

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.util, memory=10)

    def nvmlDeviceGetPowerUsage(self, h):
        return self.watts * 1000.0

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy_counter:
            raise RuntimeError("NVMLError_NotSupported")
        return (time.monotonic() - self.t0) * self.watts * 1000.0  # mJ


def test_nvml_sampler_cross_check_and_energy():
    fake = FakeNvml(["NVIDIA H100 80GB HBM3", "NVIDIA H20"], util=50)
    s = NvmlSampler(fake, uuids=["GPU-0", "GPU-1"], interval=0.02).start()
    time.sleep(0.15)
    readings = s.stop()
    assert fake.shut and all(r.samples >= 3 and r.mean_utilisation == 0.5 for r in readings)
    totals = local_totals(readings, "bf16", None)
    secs = readings[0].seconds
    expect_upper = (989.5 + 148) * 1e12 * secs
    assert totals.flops_upper == pytest.approx(expect_upper, rel=1e-9)
    assert totals.flops_measured == pytest.approx(0.5 * expect_upper, rel=1e-9)
    # Two ranks (or nodes) each with these GPUs: all_reduce sums the vector.
    both = totals.with_vector([2 * v for v in totals.vector()])
    check = cross_check(both, "bf16", regulatory_flops=1e12)
    assert check.available and check.n_gpus == 4
    assert check.flops_upper_bound == pytest.approx(2 * expect_upper)
    assert check.ratio_architecture_to_hardware == pytest.approx(1e12 / (expect_upper))
    e = gpu_energy(both, secs)
    assert e.kind == "measured" and e.kwh == pytest.approx(2 * 2 * 300 * secs / 3.6e6, rel=0.3)
    assert "NVML" in e.method


def test_nvml_power_fallback_and_unknown_gpu():
    fake = FakeNvml(["NVIDIA Mystery 9000"], energy_counter=False, watts=100.0)
    s = NvmlSampler(fake, [0], interval=0.02).start()
    time.sleep(0.1)
    [r] = s.stop()
    assert r.energy_method == "NVML power samples integrated over time" and r.energy_joules > 0
    totals = local_totals([r], "bf16", None)
    check = cross_check(totals, "bf16", 1.0)
    assert check.flops_measured_utilisation is None and "PEAK_TFLOPS_PER_GPU" in check.statement
    assert check.gpus[0].matched_model is None


def test_cpu_only_statement_and_energy_for_real():
    check = cross_check(hardware.HardwareTotals(), "fp32", 1e9)
    assert not check.available and "no GPU counters on this machine" in check.statement
    meter = energy.CpuEnergyMeter().start()
    sum(i * i for i in range(200_000))
    r = meter.reading()
    joules, kind = r.cpu_joules, "estimated" if r.cpu_estimated else "measured"
    assert r.gpu.n_gpus == 0 and joules > 0 and kind in ("measured", "estimated")
    e = energy.cpu_energy(joules, kind, meter.seconds())
    assert e.kwh == pytest.approx(joules / 3.6e6)
    assert ("RAPL" in e.method) if kind == "measured" else ("assumption" in e.method)


def test_rapl_counter_with_wrap(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone: part of the package, must not be added again
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("5")
    (zone / "max_energy_range_uj").write_text("1000000000")
    (zone / "energy_uj").write_text("999000000")
    meter = energy.CpuEnergyMeter(root=tmp_path).start()
    (zone / "energy_uj").write_text("2000000")  # wrapped: 1e9 - 999e6 + 2e6 = 3e6 µJ
    r = meter.reading()
    assert r.cpu_joules == pytest.approx(3.0) and not r.cpu_estimated
    assert energy.CpuEnergyMeter(root=tmp_path, read_rapl=False).start().reading().cpu_estimated
