"""ftplan capacity: for a job, the setup recommend gives on each catalog GPU type (the fewest
GPUs it fits on, or the cheapest of that count, twice and four times it), with time and cost."""

from __future__ import annotations

from planner import hardware, workflow
from planner.cli import args as A
from planner.cli import output
from planner.plan import default_loss


def add_arguments(p) -> None:
    A.add_model_args(p)
    A.add_plan_args(p, defaults=False)
    p.add_argument("--gpu", help="only this catalog GPU (default: every bf16 card in the catalog)")
    p.add_argument("--dataset-tokens", type=A.positive_int, help="training tokens per epoch: rank by the job's cost")
    p.add_argument("--price", type=A.non_negative_float, help="USD per GPU-hour (default: each GPU's catalog price)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    model = A.resolve_model(args)
    given = A.given_settings(args)
    plan = A.plan_from_args(args, model)
    gpus = [hardware.resolve(args.gpu)] if args.gpu else None
    dataset = workflow.dataset_tokens(plan.seq_len, plan.packing, given=args.dataset_tokens)
    found = workflow.capacity(model, plan, gpus, dataset, given, args.price)
    if args.json:
        output.print_json({"model": model.name, "method": plan.method, "task": plan.task, "seq_len": plan.seq_len,
                           "dataset_tokens": dataset.tokens, "setups": [s.as_dict() for s in found]})
        return 0
    from rich.table import Table

    by = "the job's cost" if dataset.tokens else "price per hour (add --dataset-tokens to rank by the job's cost)"
    from rich import box

    program = " under TRL" if plan.trainer == "trl" else ""
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"{output.esc(model.name)} {plan.method} {plan.task}{program}, seq {plan.seq_len}: the setup of each GPU "
                    f"type, by {by}", title_justify="left")
    for col in ("GPU", "GPUs", "engine", "per GPU", "tok/s", "$/h", "time", "cost"):
        t.add_column(col, justify="left" if col in ("GPU", "engine") else "right", no_wrap=col != "engine",
                     min_width=11 if col == "engine" else None)
    for s in found:
        p, sp = s.plan, s.speed
        engine = {"none": "one GPU", "ddp": "DDP"}.get(p.launcher_engine, f"ZeRO-{p.zero}")
        engine += (f"+{p.offload} offload" if p.offload != "none" else "") + ("+ckpt" if p.grad_ckpt else "")
        engine += f"+{p.loss} loss" if p.loss != default_loss(p.trainer) else ""
        t.add_row(s.gpu.name, f"{s.count}", engine,
                  f"{s.per_gpu_bytes / 2**30:.1f}/{s.gpu.memory_bytes / 2**30:.0f} GiB",
                  f"{sp.tokens_per_s:,.0f}" if sp else "-", f"{s.price_per_hour:,.2f}",
                  output.duration(sp.total_s) if sp and sp.total_s is not None else "-",
                  f"${sp.cost:,.0f}" if sp and sp.cost is not None else "-")
    output.console().print(t)
    if not found:
        output.note("no catalog GPU fits this plan within 512 GPUs; try QLoRA or a shorter sequence")
    return 0
