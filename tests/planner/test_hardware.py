"""GPU catalog and NVML detection."""

import pytest

from planner import hardware
from planner.errors import HardwareError


def test_catalog_has_at_least_15_gpus_with_all_figures():
    cat = hardware.catalog()
    assert len(cat) >= 15
    names = {g.name for g in cat}
    for n in ("T4", "L4", "A10G", "RTX-3090", "RTX-4090", "RTX-5090", "RTX-A6000", "L40S", "A100-40GB", "A100-80GB",
              "H100-PCIe", "H100-SXM", "H200", "B200", "MI300X"):
        assert n in names
    for g in cat:
        assert g.memory_bytes > 8 * 2**30 and g.bf16_tflops > 0 and g.bandwidth_gbs > 0 and g.source


def test_find_by_name_or_nvml_alias():
    assert hardware.find("h100 sxm").name == "H100-SXM"
    assert hardware.find("NVIDIA H100 80GB HBM3").name == "H100-SXM"
    assert hardware.find("NVIDIA GeForce RTX 4090").name == "RTX-4090"
    with pytest.raises(HardwareError, match="did you mean"):
        hardware.resolve("H10")


def test_detection_without_nvml_reports_one_line_and_never_raises(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *a, **k):
        if name == "pynvml":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    det = hardware.detect()
    assert det.gpus == () and "--gpu NAME --gpus N" in det.problem and "\n" not in det.problem


def test_detection_reads_nvml(monkeypatch):
    """A fake pynvml with one H100: the fields NVML gives reach DetectedGpu."""
    import sys
    import types

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "580.95", nvmlSystemGetCudaDriverVersion_v2=lambda: 13000,
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=81559 * 2**20, free=80000 * 2**20),
        nvmlDeviceGetCudaComputeCapability=lambda h: (9, 0),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    det = hardware.detect()
    assert det.problem == "" and det.cuda_version == "13.0"
    g = det.gpus[0]
    assert g.catalog_name == "H100-SXM" and g.bf16 and g.total_bytes == 81559 * 2**20
    assert hardware.spec_for_detected(g).bf16_tflops == hardware.find("H100-SXM").bf16_tflops
