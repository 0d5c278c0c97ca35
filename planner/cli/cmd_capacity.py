"""ftplan capacity: the fewest GPUs of each catalog type a plan fits on, with time and cost."""

from __future__ import annotations

from planner import capacity, hardware, models
from planner.cli import args as A
from planner.cli import output


def add_arguments(p) -> None:
    A.add_model_args(p)
    A.add_plan_args(p)
    p.add_argument("--gpu", help="only this catalog GPU (default: every bf16 card in the catalog)")
    p.add_argument("--dataset-tokens", type=int, help="training tokens per epoch: rank by the job's cost")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    model = models.resolve(args.model)
    plan = A.plan_from_args(args, model, batch=1)
    A.check_speed_args(args)
    gpus = [hardware.resolve(args.gpu)] if args.gpu else None
    found = capacity.setups(model, plan, gpus, args.dataset_tokens)
    if args.json:
        output.print_json({"model": model.name, "method": plan.method, "task": plan.task, "seq_len": plan.seq_len,
                           "dataset_tokens": args.dataset_tokens, "setups": [s.as_dict() for s in found]})
        return 0
    from rich.table import Table

    by = "the job's cost" if args.dataset_tokens else "price per hour (add --dataset-tokens to rank by the job's cost)"
    t = Table(title=f"{model.name} {plan.method} {plan.task}, seq {plan.seq_len}: fewest GPUs of each type, by {by}",
              title_justify="left")
    for col in ("GPU", "GPUs", "engine", "per GPU", "tokens/s", "$/hour", "time", "cost"):
        t.add_column(col, justify="left" if col in ("GPU", "engine") else "right")
    for s in found:
        p = s.plan
        engine = {"none": "single GPU", "ddp": "DDP"}.get(p.launcher_engine, f"ZeRO-{p.zero}")
        engine += (f" + {p.offload} offload" if p.offload != "none" else "") + (" + ckpt" if p.grad_ckpt else "")
        t.add_row(s.gpu.name, f"{s.count}", engine, f"{output.gib(s.per_gpu_bytes)} / {output.gib(s.gpu.memory_bytes)}",
                  f"{s.speed.tokens_per_s:,.0f}", f"{s.price_per_hour:,.2f}",
                  output.duration(s.speed.total_s) if s.speed.total_s is not None else "-",
                  f"${s.speed.cost:,.0f}" if s.speed.cost is not None else "-")
    output.console().print(t)
    if not found:
        output.note("no catalog GPU fits this plan within 512 GPUs; try QLoRA or a shorter sequence")
    return 0
