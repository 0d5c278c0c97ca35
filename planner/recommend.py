"""Recommendations: hyperparameters from the rule tables, and the memory-driven choices
(method, micro-batch, accumulation, checkpointing, ZeRO stage, GPU count) from the
estimator. Every recommendation names its rule and source."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner import knowledge, memory, rules, speed
from planner.errors import PlanError
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan
from planner.rules import Recommendation

TASK_KINDS = ("classification", "style", "instruction", "chat", "qa", "summarization", "general",
              "reasoning", "code", "domain", "multilingual", "noisy-preferences")
MAX_GPUS_SEARCHED = 512


@dataclass(frozen=True)
class Advice:
    plan: Plan
    recommendations: tuple[Recommendation, ...]
    estimate: memory.Estimate
    notes: tuple[str, ...] = ()
    speed: speed.SpeedEstimate | None = None

    @property
    def summary(self) -> str:
        """One line: e.g. '70B full fine-tune: 8 x H100-SXM, ZeRO-3 with optimizer offload, 61 GB per GPU'."""
        p, est = self.plan, self.estimate
        params = est.model.total_params() / 1e9
        size = f"{params:.0f}B" if params >= 10 else f"{params:.1f}B"
        engine = {"none": "one GPU", "ddp": "data parallel", "fsdp": "FSDP"}.get(p.launcher_engine, f"ZeRO-{p.zero}")
        if p.offload != "none":
            engine += f" with {'optimizer' if p.offload == 'optimizer' else 'parameter and optimizer'} offload"
        gpu = est.gpu.name if est.gpu else "GPU"
        nodes = f" on {p.nodes} nodes" if p.nodes > 1 else ""
        return (f"{size} {p.method} {p.task.upper()}: {p.world_size} x {gpu}{nodes}, {engine}, "
                f"{est.total_bytes / 1e9:.0f} GB per GPU{', checkpointing' if p.grad_ckpt else ''}")

    def as_dict(self) -> dict:
        return {"summary": self.summary, "plan": self.plan.as_dict(), "recommendations": [r.as_dict() for r in self.recommendations],
                "estimate": self.estimate.as_dict(), "notes": list(self.notes),
                "speed": self.speed.as_dict() if self.speed else None}


def _computed(setting: str, value, detail: str) -> Recommendation:
    rule = next(r for r in knowledge.rows("hyperparams", "rule") if r["sets"] == setting and r.get("computed"))
    return Recommendation(setting, value, rule["id"], f"{rule['why']} ({detail})" if detail else rule["why"], rule["source"])


def pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def fit_batch(model: ModelSpec, plan: Plan, gpu: GpuSpec, per_gpu_target: int) -> tuple[Plan, str] | None:
    """Micro-batch and checkpointing for `plan` on `gpu`: without checkpointing if any batch
    fits, else with it. None if batch 1 does not fit either way."""
    for ckpt in ((False, True) if plan.method != "prefix" else (False,)):
        # with accumulation the gradients are alive at the loss: search as if there were some
        trial = plan.with_(grad_ckpt=ckpt, grad_accum=1 if per_gpu_target <= 1 else 2)
        top = memory.max_micro_batch(model, trial, gpu.memory_bytes)
        if top >= 1:
            batch = min(pow2_floor(top), pow2_floor(max(1, per_gpu_target)))
            return trial.with_(batch=batch), f"largest fit {top}, checkpointing {'on' if ckpt else 'off'}"
    return None


def choose_zero(model: ModelSpec, plan: Plan, gpu: GpuSpec, per_gpu_target: int):
    """Walk knowledge/distributed.toml's stages in order; the first that fits wins."""
    for stage in knowledge.rows("distributed", "stage"):
        if plan.world_size == 1 and stage["zero"] > 0 and stage.get("offload") is None:
            continue
        if plan.method == "qlora" and stage["zero"] == 3:
            continue
        trial = plan.with_(zero=stage["zero"], offload=stage.get("offload", "none"))
        fitted = fit_batch(model, trial, gpu, per_gpu_target)
        if fitted:
            return stage, fitted
    return None


def fit_on(model: ModelSpec, plan: Plan, gpu: GpuSpec, n: int) -> Plan | None:
    """The cheapest engine configuration on which the plan fits n GPUs of this type at
    micro-batch 1: plain data parallel, ZeRO-2, ZeRO-3, then ZeRO-3 with optimizer offload
    (ZeRO-2 for QLoRA); checkpointing only where it is needed."""
    for zero, offload in ((0, "none"), (2, "none"), (3, "none"), (3, "optimizer")):
        if (n == 1 and zero) and offload == "none":
            continue
        if plan.method == "qlora" and zero:
            continue
        trial = plan.with_(gpus=min(n, 8), nodes=max(1, n // 8), zero=zero, offload=offload, batch=1, engine="none")
        for ckpt in (False, True):
            if memory.total_bytes(model, trial.with_(grad_ckpt=ckpt)) <= gpu.memory_bytes:
                return trial.with_(grad_ckpt=ckpt)
    return None


def fewest_gpus(model: ModelSpec, plan: Plan, gpu: GpuSpec) -> tuple[int, Plan] | None:
    """The fewest GPUs of this type (powers of two) on which the plan fits at micro-batch 1."""
    n = 1
    while n <= MAX_GPUS_SEARCHED:
        fitted = fit_on(model, plan, gpu, n)
        if fitted is not None:
            return n, fitted
        n *= 2
    return None


def recommend(model: ModelSpec, base: Plan, gpu: GpuSpec, examples: int | None = None,
              task_kind: str = "general", method_given: bool = False, max_length: int | None = None,
              dataset_tokens: int | None = None, price_per_hour: float | None = None) -> Advice:
    """A complete plan for `model` on `gpu` x base.gpus from the rule tables and the estimate."""
    if task_kind not in TASK_KINDS:
        raise PlanError(f"--task-kind {task_kind!r} is not one of {', '.join(TASK_KINDS)}")
    if examples is not None and examples < 1:
        raise PlanError(f"--examples must be at least 1 (got {examples})")
    facts = {"task": base.task, "task_kind": task_kind, "family": model.family, "examples": examples,
             "params_b": model.total_params() / 1e9, "method": base.method}
    recs: list[Recommendation] = []
    notes: list[str] = []
    values: dict = {}

    def take(setting: str) -> None:
        r = rules.evaluate(setting, facts, values)
        if r is not None:
            recs.append(r)
            values[setting] = r.value

    # ---- method: the first method rule (in table order) that fits the hardware
    plan = base
    if not method_given:
        chosen = None
        for row in rules.candidates("method"):
            if not rules.matches(row.get("when", {}), facts):
                continue
            trial = base.with_(method=row["value"], precision="bf16")
            if fit_batch(model, trial, gpu, 1) or (base.world_size > 1 and choose_zero(model, trial, gpu, 1)):
                chosen = row
                break
        if chosen is None:
            chosen = rules.rule("method.qlora")
            notes.append(f"even QLoRA at batch 1 does not fit one {gpu.name}; see the GPU count below")
        plan = plan.with_(method=chosen["value"])
        recs.append(Recommendation("method", chosen["value"], chosen["id"], chosen["why"], chosen["source"]))
    facts["method"] = plan.method

    for setting in ("rank", "alpha", "dropout", "learning_rate", "scheduler", "warmup_ratio", "weight_decay",
                    "max_grad_norm", "epochs", "effective_batch", "dpo_beta", "dpo_loss_type", "optim"):
        if setting in ("rank", "alpha", "dropout") and plan.method not in ("lora", "qlora", "dora"):
            continue
        take(setting)
    if max_length:
        r = rules.rule("max_length.data")
        recs.append(Recommendation("max_length", max_length, r["id"], r["why"], r["source"]))
    changes = {k: values[k] for k in ("rank", "alpha", "dropout", "learning_rate", "scheduler", "warmup_ratio",
                                       "weight_decay", "max_grad_norm", "epochs", "dpo_beta", "dpo_loss_type",
                                       "optim") if k in values}
    if max_length:
        changes["seq_len"] = max_length
    if "targets" not in changes and plan.method == "ia3":
        changes["targets"] = "all-linear"
    plan = plan.with_(**changes)
    if plan.method in ("lora", "qlora", "dora"):
        fam = knowledge.rows("targets", "family")
        row = next((f for f in fam if f["name"] == model.family), fam[0])
        recs.append(Recommendation("targets", ",".join(model.target_modules(plan.targets)), f"targets.{row['name']}",
                                   f"{plan.targets}: attention and MLP projections give the most capacity per rank",
                                   row["source"]))

    # ---- batch, checkpointing, ZeRO, GPU count from the estimate
    effective = int(values.get("effective_batch", 32))
    per_gpu = max(1, effective // plan.world_size)
    picked = choose_zero(model, plan, gpu, per_gpu)
    if picked is None:
        need = fewest_gpus(model, plan, gpu)
        if need is None:
            raise PlanError(f"{model.name} does not fit on up to {MAX_GPUS_SEARCHED} x {gpu.name} with this plan; choose a larger GPU or QLoRA")
        n, plan = need
        recs.append(_computed("gpus", n, f"{n} x {gpu.name}, ZeRO-{plan.zero}" + (f" + {plan.offload} offload" if plan.offload != "none" else "")))
        notes.append(f"does not fit on {base.world_size} x {gpu.name}: needs {n}")
        per_gpu = max(1, effective // plan.world_size)
        picked = choose_zero(model, plan, gpu, per_gpu)
        if picked is None:
            picked = ({"id": "zero.3", "zero": plan.zero, "use_when": "", "source": ""}, (plan, "batch 1"))
    stage, (plan, detail) = picked
    if plan.world_size > 1 or stage["zero"]:
        recs.append(Recommendation("zero", plan.zero, stage["id"], f"first stage that fits: {stage['use_when']}", stage["source"]))
    accum = max(1, math.ceil(effective / (plan.batch * plan.world_size)))
    plan = plan.with_(grad_accum=accum)
    recs.append(_computed("batch", plan.batch, detail))
    recs.append(_computed("grad_accum", accum, f"{plan.batch} x {accum} x {plan.world_size} GPU(s) = {plan.effective_batch}"))
    recs.append(_computed("grad_ckpt", plan.grad_ckpt, "needed to fit" if plan.grad_ckpt else "fits without it"))
    if speed.compiles(plan):
        lever = next(r for r in knowledge.rows("speed", "lever") if r["id"] == "speed.compile")
        recs.append(Recommendation("compile", True, lever["id"], lever["why"], lever["source"]))
    if dataset_tokens is None and examples:
        dataset_tokens = examples * plan.seq_len  # packed rows: an upper bound
    timing = speed.estimate(model, plan, gpu, dataset_tokens, None, price_per_hour)
    return Advice(plan, tuple(recs), memory.estimate(model, plan, gpu), tuple(notes), timing)
