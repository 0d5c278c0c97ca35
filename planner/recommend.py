"""Recommendations: hyperparameters from the rule tables, and the memory-driven choices
(method, micro-batch, accumulation, checkpointing, ZeRO stage, GPU count) from the
estimator. Every recommendation names its rule and source."""

from __future__ import annotations

from dataclasses import dataclass

from planner import knowledge, memory, rules, script, search, speed
from planner.errors import PlanError
from planner.hardware import GpuSpec
from planner.models import ModelSpec
from planner.plan import Plan, default_loss, validate
from planner.rules import Recommendation

TASK_KINDS = ("classification", "style", "instruction", "chat", "qa", "summarization", "general",
              "reasoning", "code", "domain", "multilingual", "noisy-preferences")


@dataclass(frozen=True)
class Advice:
    plan: Plan
    recommendations: tuple[Recommendation, ...]
    estimate: memory.Estimate
    notes: tuple[str, ...] = ()
    speed: speed.SpeedEstimate | None = None

    @property
    def summary(self) -> str:
        return one_line(self.estimate)

    def as_dict(self) -> dict:
        return {"summary": self.summary, "plan": self.plan.as_dict(), "recommendations": [r.as_dict() for r in self.recommendations],
                "estimate": self.estimate.as_dict(), "notes": list(self.notes),
                "speed": self.speed.as_dict() if self.speed else None}


def one_line(est: memory.Estimate) -> str:
    """A plan in one line: e.g. '71B full SFT: 8 x H100-SXM, ZeRO-3 with optimizer offload, 61.2 GiB per GPU'."""
    p = est.plan
    params = est.model.total_params() / 1e9
    size = f"{params:.0f}B" if params >= 10 else f"{params:.1f}B"
    engine = {"none": "one GPU", "ddp": "data parallel", "fsdp": "FSDP"}.get(p.launcher_engine, f"ZeRO-{p.zero}")
    if p.offload != "none":
        engine += f" with {'optimizer' if p.offload == 'optimizer' else 'parameter and optimizer'} offload"
    gpu = est.gpu.name if est.gpu else "GPU"
    nodes = f" on {p.nodes} nodes" if p.nodes > 1 else ""
    extras = (", checkpointing" if p.grad_ckpt else "") + (f", {p.loss} loss" if p.loss != default_loss(p.trainer) else "")
    program = " with TRL" if p.trainer == "trl" else ""
    return (f"{size} {p.method} {p.task.upper()}{program}: {p.world_size} x {gpu}{nodes}, {engine}, "
            f"{est.total_bytes / 2**30:.1f} GiB per GPU{extras}")


def _computed(setting: str, value, detail: str) -> Recommendation:
    rule = next(r for r in knowledge.rows("hyperparams", "rule") if r["sets"] == setting and r.get("computed"))
    return Recommendation(setting, value, rule["id"], f"{rule['why']} ({detail})" if detail else rule["why"], rule["source"])


HYPERPARAMETERS = ("precision", "rank", "alpha", "dropout", "learning_rate", "scheduler", "warmup_ratio", "weight_decay",
                   "max_grad_norm", "epochs", "effective_batch", "dpo_beta", "dpo_loss_type", "optim")
ADAPTER_ONLY = ("rank", "alpha", "dropout")


def recommend(model: ModelSpec, base: Plan, gpu: GpuSpec, examples: int | None = None,
              task_kind: str = "general", method_given: bool = False, max_length: int | None = None,
              dataset_tokens: int | None = None, price_per_hour: float | None = None,
              given: frozenset[str] = frozenset(), grow: bool = True) -> Advice:
    """A complete plan for `model` on `gpu` x base.gpus from the rule tables, placed by the one
    search (planner/search.py). Settings named in `given` (and the method, with
    `method_given`) are the user's and are kept; the rules fill the rest. Without `grow` the
    GPU count is the user's: a plan that does not fit there comes back as the nearest
    configuration, and the changes that fit are the search's fixes."""
    if task_kind not in TASK_KINDS:
        raise PlanError(f"--task-kind {task_kind!r} is not one of {', '.join(TASK_KINDS)}")
    if examples is not None and examples < 1:
        raise PlanError(f"--examples must be at least 1 (got {examples})")
    if method_given:
        given = given | {"method"}
    if "precision" not in given and base.precision in ("bf16", "fp16"):
        base = base.with_(precision=gpu.half_precision)  # the card decides: bf16, or fp16 where it has none
    if "method" in given:
        validate(base, model)  # a method the model cannot run is refused with its reason, not searched for
    facts = {"task": base.task, "task_kind": task_kind, "family": model.family, "examples": examples,
             "params_b": model.total_params() / 1e9, "method": base.method, "bf16": gpu.bf16}
    recs: list[Recommendation] = []
    notes: list[str] = []
    values: dict = {k: getattr(base, k) for k in given if k in HYPERPARAMETERS}  # rules may derive from them

    # ---- method: the first method rule (in table order) that fits the GPUs at one sequence per GPU
    plan = base
    if "method" not in given:
        chosen = None
        for row in rules.candidates("method"):
            if not rules.matches(row.get("when", {}), facts):
                continue
            trial = base.with_(method=row["value"], precision=base.precision if "precision" in given else gpu.half_precision)
            if search.configure(model, trial, gpu, trial.world_size) is not None:
                chosen = row
                break
        if chosen is None:  # the leanest method the model can run: QLoRA, or LoRA where bitsandbytes quantizes nothing
            chosen = rules.rule("method.qlora" if model.quantized_params() else "method.lora")
            leanest = "QLoRA" if chosen["value"] == "qlora" else "LoRA"
            notes.append(f"even {leanest} at batch 1 does not fit {base.world_size} x {gpu.name}; see the GPU count below")
        plan = plan.with_(method=chosen["value"])
        recs.append(Recommendation("method", chosen["value"], chosen["id"], chosen["why"], chosen["source"]))
    facts["method"] = plan.method

    for setting in HYPERPARAMETERS:
        if setting in given or (setting in ADAPTER_ONLY and not plan.is_low_rank):
            continue
        r = rules.evaluate(setting, facts, values)
        if r is not None:
            recs.append(r)
            values[setting] = r.value
    if max_length and "seq_len" not in given:
        r = rules.rule("max_length.data")
        recs.append(Recommendation("max_length", max_length, r["id"], r["why"], r["source"]))
    changes = {k: v for k, v in values.items() if k != "effective_batch" and k not in given}
    if max_length and "seq_len" not in given:
        changes["seq_len"] = max_length
    if "targets" not in given and plan.method == "ia3":
        changes["targets"] = "all-linear"
    plan = plan.with_(**changes)
    if plan.is_low_rank:
        fam = knowledge.rows("targets", "family")
        row = next((f for f in fam if f["name"] == model.family), None)
        source = row["source"] if row else f"the model's own code: {model.derived_from} (planner/inventory.py)"
        adapted = script.adapted_modules(model, plan) + (["experts"] if script.adapted_parameters(model, plan) else [])
        why = f"{plan.targets}: attention and MLP projections give the most capacity per rank"
        if model.is_moe and not plan.adapts_experts:
            why += ("; the fused experts take LoRA only when --targets lists experts, folded into their whole weights "
                    "every forward (slower: docs/guides.md#mixture-of-experts)")
        recs.append(Recommendation("targets", ",".join(adapted), f"targets.{model.family}", why, source))

    # ---- batch, accumulation, checkpointing, loss, ZeRO stage and GPU count: the one search
    if "batch" in given or "grad_accum" in given:
        effective = base.batch * base.grad_accum * base.world_size
    else:
        effective = int(values.get("effective_batch", 32))
    placed = search.place(model, plan, gpu, effective, dataset_tokens, price_per_hour, grow)
    if placed is None and not grow:
        nearest = search.closest(model, plan, gpu, effective)
        if nearest is not None:
            plan = nearest.plan
            notes.append(f"does not fit on {plan.world_size} x {gpu.name}; the changes below fit")
            est = memory.estimate(model, plan, gpu, search.max_micro_batch(model, plan, gpu))
            return Advice(plan, tuple(recs), est, tuple(notes),
                          speed.estimate(model, plan, gpu, dataset_tokens, None, price_per_hour))
    if placed is None:
        raise PlanError(search.why_nowhere(model, plan, gpu))
    stage, plan = placed.configured.stage, placed.plan
    if plan.world_size > base.world_size:
        recs.append(_computed("gpus", plan.world_size, f"{plan.world_size} x {gpu.name}" +
                              (f" on {plan.nodes} nodes" if plan.nodes > 1 else "")))
        notes.append(f"does not fit on {base.world_size} x {gpu.name}: needs {placed.fewest}"
                     + (f" (and {plan.world_size} make the job cheapest)" if plan.world_size > placed.fewest else ""))
    if plan.world_size > 1 or stage["zero"]:
        recs.append(Recommendation("zero", plan.zero, stage["id"], f"first stage that fits (shards {stage['shards']}; the guides: {stage['use_when']})", stage["source"]))
    recs.append(_computed("batch", plan.batch, f"per GPU, effective batch {effective}"))
    recs.append(_computed("grad_accum", plan.grad_accum,
                          f"{plan.batch} x {plan.grad_accum} x {plan.world_size} GPU(s) = {plan.effective_batch}"))
    recs.append(_computed("grad_ckpt", plan.grad_ckpt, "needed to fit" if plan.grad_ckpt else "fits without it"))
    if plan.loss != base.loss:
        recs.append(_computed("loss", plan.loss, "needed to fit"))
    if script.compiles(plan):
        lever = next(r for r in knowledge.rows("speed", "lever") if r["id"] == "speed.compile")
        recs.append(Recommendation("compile", True, lever["id"], lever["why"], lever["source"]))
    est = memory.estimate(model, plan, gpu, search.max_micro_batch(model, plan, gpu))
    return Advice(plan, tuple(recs), est, tuple(notes), placed.speed)
