"""ftplan estimate: the per-GPU memory breakdown of one plan."""

from __future__ import annotations

from planner import memory, models
from planner.cli import args as A
from planner.cli import output


def add_arguments(p) -> None:
    A.add_model_args(p)
    A.add_plan_args(p)
    A.add_hardware_args(p)


def run(args) -> int:
    model = models.resolve(args.model)
    gpu, gpus, note = A.resolve_gpu(args)
    plan = A.plan_from_args(args, model, gpus=gpus, gpu=gpu.name if gpu else "")
    est = memory.estimate(model, plan, gpu)
    if args.json:
        output.print_json(est.as_dict())
    else:
        output.note(note)
        output.print_estimate(est)
    return 0
