"""Capacity planning: for a job, the setup recommend gives on each catalog GPU type (the
fewest GPUs it fits on, with the engine, stage, batch and checkpointing that make it fit;
with a dataset size, the cheapest of that count, twice and four times it), cheapest first."""

from __future__ import annotations

from dataclasses import dataclass

from planner import hardware, recommend
from planner.errors import PlanError
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan, validate


@dataclass(frozen=True)
class Setup:
    advice: recommend.Advice

    @property
    def gpu(self) -> GpuSpec:
        return self.advice.estimate.gpu

    @property
    def plan(self) -> Plan:
        return self.advice.plan

    @property
    def count(self) -> int:
        return self.plan.world_size

    @property
    def per_gpu_bytes(self) -> int:
        return self.advice.estimate.total_bytes

    @property
    def speed(self):
        return self.advice.speed

    @property
    def price_per_hour(self) -> float:
        return (self.speed.price_per_hour if self.speed else self.gpu.price_per_hour_usd) * self.count

    def as_dict(self) -> dict:
        p, sp = self.plan, self.speed
        return {"gpu": self.gpu.name, "count": self.count, "nodes": p.nodes, "engine": p.launcher_engine, "zero": p.zero,
                "offload": p.offload, "grad_ckpt": p.grad_ckpt, "loss": p.loss, "batch": p.batch,
                "grad_accum": p.grad_accum, "per_gpu_bytes": self.per_gpu_bytes,
                "per_gpu_gib": round(self.per_gpu_bytes / 2**30, 2), "capacity_gib": round(self.gpu.memory_bytes / 2**30, 2),
                "tokens_per_s": round(sp.tokens_per_s) if sp else None, "price_per_hour": round(self.price_per_hour, 2),
                "total_s": None if sp is None or sp.total_s is None else round(sp.total_s),
                "cost": None if sp is None or sp.cost is None else round(sp.cost, 2),
                "summary": self.advice.summary}


def setups(model: ModelSpec, plan: Plan, gpus: list[GpuSpec] | None = None, dataset_tokens: int | None = None,
           given: frozenset[str] = frozenset(), price_per_hour: float | None = None) -> list[Setup]:
    """One setup per GPU type: what recommend gives for the job on that type, starting from one
    GPU with the method and the settings in `given` kept. Sorted by the job's cost, or by the
    hourly price without a dataset. A card without bf16 plans fp16 (GpuSpec.half_precision).
    A plan the model cannot run is refused here, with its reason, not reported as fitting nowhere."""
    validate(plan, model)
    out = []
    for gpu in gpus if gpus is not None else hardware.catalog():
        if gpu.bf16_tflops <= 0:
            continue
        base = plan.with_(gpu=gpu.name, gpus=1, nodes=1)
        try:
            advice = recommend.recommend(model, base, gpu, method_given=True, given=given,
                                         dataset_tokens=dataset_tokens, price_per_hour=price_per_hour)
        except PlanError:
            continue  # does not fit on up to search.MAX_GPUS of this type
        out.append(Setup(advice))
    if dataset_tokens:
        return sorted(out, key=lambda s: s.speed.cost)
    return sorted(out, key=lambda s: s.price_per_hour)
