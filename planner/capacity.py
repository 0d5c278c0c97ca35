"""Capacity planning: for a plan, the fewest GPUs of each catalog type it fits on (with the
engine and stage that make it fit), the time and the cost of the job on each, cheapest first."""

from __future__ import annotations

from dataclasses import dataclass

from planner import hardware, memory, recommend, speed
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan

MAX_BATCH = 8  # micro-batch per GPU the comparison uses at most: beyond it the speed barely moves


@dataclass(frozen=True)
class Setup:
    gpu: GpuSpec
    count: int
    plan: Plan
    per_gpu_bytes: int
    speed: speed.SpeedEstimate

    @property
    def price_per_hour(self) -> float:
        return self.gpu.price_per_hour_usd * self.count

    def as_dict(self) -> dict:
        p = self.plan
        return {"gpu": self.gpu.name, "count": self.count, "nodes": p.nodes, "engine": p.launcher_engine, "zero": p.zero,
                "offload": p.offload, "grad_ckpt": p.grad_ckpt, "batch": p.batch, "per_gpu_bytes": self.per_gpu_bytes,
                "per_gpu_gib": round(self.per_gpu_bytes / 2**30, 2), "capacity_gib": round(self.gpu.memory_bytes / 2**30, 2),
                "tokens_per_s": round(self.speed.tokens_per_s), "price_per_hour": round(self.price_per_hour, 2),
                "total_s": None if self.speed.total_s is None else round(self.speed.total_s),
                "cost": None if self.speed.cost is None else round(self.speed.cost, 2)}


def _setup(model: ModelSpec, plan: Plan, gpu: GpuSpec, count: int, fitted: Plan, dataset_tokens: int | None) -> Setup:
    top = memory.max_micro_batch(model, fitted, gpu.memory_bytes)
    fitted = fitted.with_(batch=max(1, min(MAX_BATCH, recommend.pow2_floor(top))))
    return Setup(gpu, count, fitted, memory.total_bytes(model, fitted), speed.estimate(model, fitted, gpu, dataset_tokens))


def setups(model: ModelSpec, plan: Plan, gpus: list[GpuSpec] | None = None,
           dataset_tokens: int | None = None) -> list[Setup]:
    """One setup per GPU type: the fewest GPUs it fits on (recommend.fewest_gpus) or, with a
    dataset, whichever of that count, twice and four times it makes the job cheapest (more
    GPUs can drop offload or checkpointing). Sorted by the job's cost, or by the hourly price
    without a dataset. Cards without bf16 are skipped: the scripts train in bf16."""
    out = []
    for gpu in gpus if gpus is not None else hardware.catalog():
        if not gpu.bf16 or gpu.bf16_tflops <= 0:
            continue
        found = recommend.fewest_gpus(model, plan, gpu)
        if found is None:
            continue
        count, fitted = found
        options = [_setup(model, plan, gpu, count, fitted, dataset_tokens)]
        if dataset_tokens:
            for n in (2 * count, 4 * count):
                more = recommend.fit_on(model, plan, gpu, n) if n <= recommend.MAX_GPUS_SEARCHED else None
                if more is not None:
                    options.append(_setup(model, plan, gpu, n, more, dataset_tokens))
            options.sort(key=lambda s: s.speed.cost)
        out.append(options[0])
    key = (lambda s: s.speed.cost) if dataset_tokens else (lambda s: s.price_per_hour)
    return sorted(out, key=key)
