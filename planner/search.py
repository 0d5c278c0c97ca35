"""The one search: everything that picks or repairs a plan's shape — micro-batch and
accumulation, checkpointing, loss, ZeRO stage and offload, GPU count and nodes, the changes
that make a plan fit — is found here, and only here.

Every candidate is judged as it would run (planner/plan.py's validation, the estimate with
its own accumulation, so gradients are counted at the peak when they are alive there, and
the host RAM of its processes against what a node of that GPU type has). A candidate that
fails validation is never returned; every plan this module returns fits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner import knowledge, memory, speed
from planner.errors import PlanError
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import LOW_RANK, Method, Plan, validate

MAX_SEARCH_BATCH = 4096
MAX_GPUS = 512


def _node() -> dict:
    return knowledge.table("distributed")["node"]


@dataclass(frozen=True)
class Verdict:
    """A valid plan and what it needs of one GPU and of its node."""
    plan: Plan
    total_bytes: int
    host_ram_bytes: int            # one training process
    gpu: GpuSpec

    @property
    def fits_gpu(self) -> bool:
        return self.total_bytes <= self.gpu.memory_bytes

    @property
    def fits_host(self) -> bool:
        """The node's RAM holds one process per GPU (unknown RAM: not checked)."""
        per_gpu = self.gpu.host_ram_bytes_per_gpu
        return not per_gpu or self.host_ram_bytes <= per_gpu

    @property
    def fits(self) -> bool:
        return self.fits_gpu and self.fits_host


def judge(model: ModelSpec, plan: Plan, gpu: GpuSpec) -> Verdict | None:
    """The plan as it would run, or None if validation rejects it."""
    try:
        validate(plan, model)
    except PlanError:
        return None
    if plan.precision in ("bf16", "mixed") and not gpu.bf16:
        return None
    return Verdict(plan, memory.total_bytes(model, plan), memory.host_ram_bytes(model, plan), gpu)


def max_micro_batch(model: ModelSpec, plan: Plan, gpu: GpuSpec) -> int:
    """The largest micro-batch, at the plan's own accumulation, whose estimate fits the GPU
    (0 if even 1 does not)."""
    capacity = gpu.memory_bytes
    if memory.total_bytes(model, plan.with_(batch=1)) > capacity:
        return 0
    lo, hi = 1, MAX_SEARCH_BATCH
    if memory.total_bytes(model, plan.with_(batch=hi)) <= capacity:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if memory.total_bytes(model, plan.with_(batch=mid)) <= capacity:
            lo = mid
        else:
            hi = mid
    return lo


def fit_batch(model: ModelSpec, plan: Plan, gpu: GpuSpec, effective: int) -> Verdict | None:
    """The largest micro-batch that fits with the accumulation that reaches `effective`
    sequences per optimizer step over all GPUs: the per-GPU share itself, then powers of two
    below it, each evaluated with its own accumulation (with more than one micro-step the
    gradients are alive at the loss)."""
    per_gpu = max(1, math.ceil(effective / plan.world_size))
    batches = sorted({per_gpu} | {1 << k for k in range(per_gpu.bit_length()) if 1 << k <= per_gpu}, reverse=True)
    for batch in batches:
        found = judge(model, plan.with_(batch=batch, grad_accum=math.ceil(per_gpu / batch)), gpu)
        if found is not None and found.fits:
            return found
    return None


def stages() -> list[dict]:
    """knowledge/distributed.toml's stages, cheapest first."""
    return knowledge.rows("distributed", "stage")


def _staged(plan: Plan):
    """(stage, the plan at that stage) for each stage that applies: plain data parallel first;
    on one GPU only the stages that offload (ZeRO without offload saves nothing there)."""
    for stage in stages():
        if plan.world_size == 1 and stage["zero"] > 0 and "offload" not in stage:
            continue
        yield stage, plan.with_(zero=stage["zero"], offload=stage.get("offload", "none"), engine="none")


def _memory_levers(plan: Plan) -> list[dict]:
    """Checkpointing and the chunked loss, in order of what they cost in speed: the loss
    first (a few percent), checkpointing after (20-40%, knowledge/speed.toml)."""
    levers = [{"grad_ckpt": False, "loss": plan.loss}]
    if plan.loss == "standard":
        levers.append({"grad_ckpt": False, "loss": "chunked"})
    levers.append({"grad_ckpt": True, "loss": plan.loss})
    if plan.loss == "standard":
        levers.append({"grad_ckpt": True, "loss": "chunked"})
    return levers


@dataclass(frozen=True)
class Configured:
    verdict: Verdict
    stage: dict                    # the distributed.toml row that made it fit

    @property
    def plan(self) -> Plan:
        return self.verdict.plan


def configure(model: ModelSpec, plan: Plan, gpu: GpuSpec, effective: int) -> Configured | None:
    """The cheapest way to run `plan` on its GPU count: each ZeRO stage in turn (plain data
    parallel first; on one GPU only the stages that offload), and within a stage the memory
    levers in order; the first that fits at any micro-batch wins, at its largest micro-batch."""
    for stage, staged in _staged(plan):
        for lever in _memory_levers(plan):
            found = fit_batch(model, staged.with_(**lever), gpu, effective)
            if found is not None:
                return Configured(found, stage)
    return None


def layout(plan: Plan, count: int) -> Plan:
    """`count` GPUs as nodes of the plan's GPUs per node (or of up to a full node when the
    plan has one GPU)."""
    per_node = plan.gpus if plan.gpus > 1 else min(count, _node()["gpus_per_node"])
    return plan.with_(gpus=per_node, nodes=max(1, count // per_node))


@dataclass(frozen=True)
class Placement:
    configured: Configured
    fewest: int                    # the fewest GPUs the plan fits on, from the plan's own count
    speed: speed.SpeedEstimate | None

    @property
    def plan(self) -> Plan:
        return self.configured.plan

    @property
    def count(self) -> int:
        return self.plan.world_size


def place(model: ModelSpec, plan: Plan, gpu: GpuSpec, effective: int, dataset_tokens: int | None = None,
          price_per_hour: float | None = None, grow: bool = True) -> Placement | None:
    """The plan on its own GPU count if it fits there; else (with `grow`) on the fewest GPUs of
    this type (doubling from its count) on which it fits. With a dataset size, twice and four
    times that count are tried as well and the cheapest job wins (more GPUs can drop offload
    or checkpointing). recommend and capacity both place plans with this function."""
    count = plan.world_size
    while count <= (MAX_GPUS if grow else plan.world_size):
        found = configure(model, layout(plan, count), gpu, effective)
        if found is not None:
            break
        count *= 2
    else:
        return None

    def timed(c: Configured) -> Placement:
        return Placement(c, count, speed.estimate(model, c.plan, gpu, dataset_tokens, None, price_per_hour))

    best = timed(found)
    if dataset_tokens and count > plan.world_size and best.speed is not None:
        for more in (2 * count, 4 * count):
            wider = configure(model, layout(plan, more), gpu, effective) if more <= MAX_GPUS else None
            if wider is not None:
                option = timed(wider)
                if option.speed.cost < best.speed.cost:
                    best = option
    return best


def closest(model: ModelSpec, plan: Plan, gpu: GpuSpec, effective: int) -> Verdict | None:
    """For a plan that fits nowhere on its GPU count: the valid configuration (stage, memory
    levers, micro-batch 1) that comes nearest, to show with the changes that do fit."""
    per_gpu = max(1, math.ceil(effective / plan.world_size))
    found = []
    for _stage, staged in _staged(plan):
        for lever in _memory_levers(plan):
            v = judge(model, staged.with_(**lever, batch=1, grad_accum=per_gpu), gpu)
            if v is not None:
                found.append(v)
    return min(found, key=lambda v: v.total_bytes, default=None)


def why_nowhere(model: ModelSpec, plan: Plan, gpu: GpuSpec) -> str:
    """Why `place` found nothing, in one line: the host RAM a process needs where that is the
    limit, else the GPU memory."""
    widest = layout(plan, MAX_GPUS)
    # QLoRA is offered only where it is not the plan already and bitsandbytes quantizes the model
    qlora = ", or QLoRA" if plan.method != Method.QLORA and model.quantized_params() else ""
    host = min((memory.host_ram_bytes(model, widest.with_(zero=s["zero"], offload=s.get("offload", "none")))
                for s in stages()), default=0)
    if gpu.host_ram_bytes_per_gpu and host > gpu.host_ram_bytes_per_gpu:
        return (f"{model.name} {plan.method} does not fit on any number of {gpu.name}: each training process needs "
                f"{host / 2**30:.0f} GiB of host RAM (the weights as they load), and a node of them has "
                f"{gpu.host_ram_bytes_per_gpu / 2**30:.0f} GiB per GPU (knowledge/gpus.toml); use a GPU with more host RAM "
                f"per card{qlora}")
    return (f"{model.name} {plan.method} does not fit on up to {MAX_GPUS} x {gpu.name}; "
            f"choose a larger GPU{qlora} or a shorter --seq-len")


# ====================================================================== repairs
# Changes that make a plan fit, in order of what they cost: speed first kept, then precision.
CHANGES = (
    {},
    # TRL's DPO: the reference log-probs computed before training, no reference copy (full fine-tuning)
    {"precompute_ref": True},
    {"grad_ckpt": True},
    {"loss": "chunked"},
    {"grad_ckpt": True, "loss": "chunked"},
    # QLoRA's 4-bit weights are not sharded by our scripts: it runs data parallel
    {"method": "qlora", "precision": "bf16", "grad_ckpt": True, "zero": 0, "offload": "none", "engine": "none"},
)
FLAGS = {"grad_ckpt": lambda v: "--grad-ckpt" if v else "--no-grad-ckpt", "loss": lambda v: f"--loss {v}",
         "method": lambda v: f"--method {v}", "precision": lambda v: f"--precision {v}",
         "zero": lambda v: f"--zero {v}", "offload": lambda v: f"--offload {v}", "engine": lambda v: f"--engine {v}",
         "precompute_ref": lambda v: "--precompute-ref-log-probs"}


@dataclass(frozen=True)
class Fix:
    flags: str                     # what to add to the command line, e.g. "--grad-ckpt --batch 4 --grad-accum 4"
    verdict: Verdict

    @property
    def plan(self) -> Plan:
        return self.verdict.plan

    @property
    def total_bytes(self) -> int:
        return self.verdict.total_bytes

    def describe(self) -> str:
        v = self.verdict
        return (f"{self.flags}: {v.total_bytes / 2**30:.1f} GiB of {v.gpu.memory_bytes / 2**30:.1f} GiB ({v.gpu.name}), "
                f"effective batch {v.plan.effective_batch}")

    def as_dict(self) -> dict:
        return {"flags": self.flags, "total_bytes": self.total_bytes, "total_gib": round(self.total_bytes / 2**30, 2),
                "fits": self.verdict.fits, "plan": self.plan.as_dict()}


def fixes(model: ModelSpec, plan: Plan, gpu: GpuSpec, limit: int = 3) -> list[Fix]:
    """Changes that make `plan` fit `gpu` at (at least) its effective batch, each with the
    largest micro-batch that fits and the accumulation that keeps the effective batch. A
    change that repeats a setting the plan already has is not offered; QLoRA is offered only
    for full, LoRA and DoRA plans."""
    effective = plan.effective_batch
    out: list[Fix] = []
    seen: set[Plan] = set()
    tried: set[tuple] = set()
    for change in CHANGES:
        change = {k: gpu.half_precision if k == "precision" else v for k, v in change.items()}
        change = {k: v for k, v in change.items() if getattr(plan, k) != v}
        key = tuple(sorted(change.items()))
        if key in tried or (change.get("method") == Method.QLORA and plan.method not in (Method.FULL, *LOW_RANK)):
            continue
        tried.add(key)
        found = fit_batch(model, plan.with_(**change), gpu, effective)
        if found is None or found.plan in seen or found.plan == plan:
            continue
        seen.add(found.plan)
        flags = [FLAGS[k](v) for k, v in change.items()]
        flags += [f"--batch {found.plan.batch}", f"--grad-accum {found.plan.grad_accum}"]
        out.append(Fix(" ".join(flags), found))
        if len(out) == limit:
            break
    wider = place(model, plan, gpu, effective) if plan.world_size < MAX_GPUS else None
    if wider is not None and wider.count > plan.world_size:
        p = wider.plan
        flags = [f"--gpus {p.gpus}", f"--nodes {p.nodes}", f"--zero {p.zero}"]
        flags += [f"--offload {p.offload}"] if p.offload != "none" else []
        flags += [FLAGS[k](getattr(p, k)) for k in ("grad_ckpt", "loss") if getattr(p, k) != getattr(plan, k)]
        flags += [f"--batch {p.batch}", f"--grad-accum {p.grad_accum}"]
        out.append(Fix(" ".join(flags), wider.configured.verdict))
    return out
