"""ftplan estimate: the per-GPU memory breakdown of one plan, its speed, and when it does not
fit, the changes that do."""

from __future__ import annotations

from planner import workflow
from planner.cli import args as A
from planner.cli import output


def add_arguments(p) -> None:
    A.add_model_args(p)
    A.add_plan_args(p)
    A.add_hardware_args(p)
    A.add_speed_args(p)


def run(args) -> int:
    model = A.resolve_model(args)
    gpu, gpus, note = A.resolve_gpu(args)
    plan = A.plan_from_args(args, model, gpus=gpus, gpu=gpu.name if gpu else "")
    A.check_speed_args(args)
    dataset = workflow.dataset_tokens(plan.seq_len, plan.packing, given=args.dataset_tokens)
    report = workflow.estimate(model, plan, gpu, dataset, args.epochs, args.price)
    if args.json:
        output.print_json(report.as_dict())
        return 0
    output.note(note)
    output.print_report(report)
    return 0
