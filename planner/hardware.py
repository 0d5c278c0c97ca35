"""GPUs: the catalog in knowledge/gpus.toml and what NVML (pynvml) detects."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from planner import knowledge
from planner.errors import HardwareError

MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_bytes: int
    bf16: bool
    bf16_tflops: float
    bandwidth_gbs: float
    compute_capability: str = ""
    interconnect_gbs: float = 0.0     # to peers in a node, one direction
    price_per_hour_usd: float = 0.0
    host_ram_bytes_per_gpu: int = 0   # a node's host RAM over its GPUs; 0: unknown, not checked
    aliases: tuple[str, ...] = ()
    source: str = ""

    @property
    def half_precision(self) -> str:
        """The 16-bit format a plan computes in on this card: bf16 where it has bf16 tensor
        cores (Ampere, sm_80, and later), fp16 with loss scaling where it has not (T4, V100)."""
        return "bf16" if self.bf16 else "fp16"

    def as_dict(self) -> dict:
        return {
            "name": self.name, "memory_bytes": self.memory_bytes, "memory_gib": round(self.memory_bytes / 2**30, 2),
            "bf16": self.bf16, "bf16_tflops": self.bf16_tflops, "bandwidth_gbs": self.bandwidth_gbs,
            "interconnect_gbs": self.interconnect_gbs,
            "compute_capability": self.compute_capability, "price_per_hour_usd": self.price_per_hour_usd,
            "host_ram_gib_per_gpu": round(self.host_ram_bytes_per_gpu / 2**30, 1), "source": self.source,
        }


@dataclass(frozen=True)
class DetectedGpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    compute_capability: str
    bf16: bool
    catalog_name: str | None      # the catalog entry it matches, for speed figures

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Detection:
    gpus: tuple[DetectedGpu, ...] = ()
    driver_version: str = ""
    cuda_version: str = ""
    problem: str = ""             # why nothing was detected, one line

    def as_dict(self) -> dict:
        return {"gpus": [g.as_dict() for g in self.gpus], "driver_version": self.driver_version,
                "cuda_version": self.cuda_version, "problem": self.problem}


def catalog() -> list[GpuSpec]:
    return [
        GpuSpec(
            name=r["name"], memory_bytes=r["memory_mib"] * MIB, bf16=r["bf16"], bf16_tflops=r["bf16_tflops"],
            bandwidth_gbs=r["bandwidth_gbs"], compute_capability=r.get("compute_capability", ""),
            interconnect_gbs=r.get("interconnect_gbs", 0.0),
            price_per_hour_usd=r.get("price_per_hour_usd", 0.0),
            host_ram_bytes_per_gpu=int(r.get("host_ram_gib_per_gpu", 0) * 2**30), aliases=tuple(r.get("aliases", ())),
            source=r["source"],
        )
        for r in knowledge.rows("gpus", "gpu")
    ]


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def find(name: str) -> GpuSpec | None:
    """A catalog GPU by name or NVML alias, ignoring case, spaces and dashes."""
    key = _norm(name)
    for gpu in catalog():
        if key == _norm(gpu.name) or key in (_norm(a) for a in gpu.aliases):
            return gpu
    return None


def resolve(name: str) -> GpuSpec:
    gpu = find(name)
    if gpu:
        return gpu
    names = [g.name for g in catalog()]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise HardwareError(f"unknown GPU {name!r}; {hint}run 'ftplan gpus' for the catalog")


def detect() -> Detection:
    """GPUs through NVML. Never raises: no library, no driver or an NVML error come back as
    `problem`, and the caller falls back to the catalog."""
    try:
        import pynvml
    except ImportError:
        return Detection(problem="NVML is not available (install nvidia-ml-py); pick a GPU from the catalog with --gpu NAME --gpus N")
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, _DriverNotLoaded, …
        return Detection(problem=f"no NVIDIA GPU detected ({_nvml_reason(e)}); pick one from the catalog with --gpu NAME --gpus N")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        cuda_version = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            match = find(name)
            found.append(DetectedGpu(
                index=i, name=name, total_bytes=int(mem.total), free_bytes=int(mem.free),
                compute_capability=f"{major}.{minor}", bf16=major >= 8,  # bf16 tensor cores arrived with Ampere (sm_80)
                catalog_name=match.name if match else None,
            ))
        problem = "" if found else "NVML found no GPU; pick one from the catalog with --gpu NAME --gpus N"
        return Detection(gpus=tuple(found), driver_version=driver, cuda_version=cuda_version, problem=problem)
    except Exception as e:
        return Detection(problem=f"NVML error ({_nvml_reason(e)}); pick a GPU from the catalog with --gpu NAME --gpus N")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _nvml_reason(e: Exception) -> str:
    return str(e).strip() or type(e).__name__


def host_ram_bytes() -> int:
    """This machine's RAM (0 where the OS does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def spec_for_detected(gpu: DetectedGpu, count: int = 1) -> GpuSpec:
    """A detected card as a GpuSpec: its real memory, the catalog's speed figures, and this
    machine's RAM shared among its `count` GPUs."""
    base = find(gpu.catalog_name) if gpu.catalog_name else None
    return GpuSpec(
        name=base.name if base else gpu.name, memory_bytes=gpu.total_bytes, bf16=gpu.bf16,
        bf16_tflops=base.bf16_tflops if base else 0.0, bandwidth_gbs=base.bandwidth_gbs if base else 0.0,
        interconnect_gbs=base.interconnect_gbs if base else 0.0,
        compute_capability=gpu.compute_capability, price_per_hour_usd=base.price_per_hour_usd if base else 0.0,
        host_ram_bytes_per_gpu=host_ram_bytes() // max(1, count), source="detected through NVML",
    )
