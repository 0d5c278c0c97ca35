"""Changes that make a plan fit a GPU, found with the estimator. Shared by the runner's
out-of-memory diagnosis and the wizard's plan screen."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner import memory
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan

# Tried in order of what they cost: speed first kept, then precision.
CHANGES = (
    ("smaller micro-batch", {}),
    ("--grad-ckpt", {"grad_ckpt": True}),
    ("--loss chunked", {"loss": "chunked"}),
    ("--grad-ckpt --loss chunked", {"grad_ckpt": True, "loss": "chunked"}),
    ("--method qlora --grad-ckpt", {"method": "qlora", "precision": "bf16", "grad_ckpt": True}),
)


@dataclass(frozen=True)
class Fix:
    label: str          # the flags to add
    plan: Plan
    total_bytes: int

    def describe(self, gpu: GpuSpec) -> str:
        flags = f"{self.label + ' ' if self.label != 'smaller micro-batch' else ''}--batch {self.plan.batch} --grad-accum {self.plan.grad_accum}"
        return (f"{flags}: {self.total_bytes / 2**30:.1f} GiB of {gpu.memory_bytes / 2**30:.1f} GiB ({gpu.name}), "
                f"same effective batch")


def fitting_changes(model: ModelSpec, plan: Plan, gpu: GpuSpec, limit: int = 3) -> list[Fix]:
    """Each change set with the largest micro-batch (up to the plan's) that fits; accumulation
    keeps the effective batch."""
    effective = plan.batch * plan.grad_accum
    out = []
    for label, change in CHANGES:
        if plan.method == "prefix" and (change.get("grad_ckpt") or change.get("loss")):
            continue
        if change.get("method") == "qlora" and plan.method in ("qlora", "prefix", "ia3"):
            continue
        if change.get("method") == "qlora" and plan.zero == 3:
            continue
        trial = plan.with_(**change)
        top = min(memory.max_micro_batch(model, trial, gpu.memory_bytes), plan.batch - (0 if change else 1))
        if top < 1:
            continue
        trial = trial.with_(batch=top, grad_accum=max(1, math.ceil(effective / top)))
        out.append(Fix(label, trial, memory.total_bytes(model, trial)))
        if len(out) == limit:
            break
    return out
