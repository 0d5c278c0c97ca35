"""ftplan estimate: the per-GPU memory breakdown of one plan."""

from __future__ import annotations

from planner import memory, models, speed
from planner.cli import args as A
from planner.cli import output


def add_arguments(p) -> None:
    A.add_model_args(p)
    A.add_plan_args(p)
    A.add_hardware_args(p)
    A.add_speed_args(p)


def run(args) -> int:
    model = models.resolve(args.model)
    gpu, gpus, note = A.resolve_gpu(args)
    plan = A.plan_from_args(args, model, gpus=gpus, gpu=gpu.name if gpu else "")
    A.check_speed_args(args)
    est = memory.estimate(model, plan, gpu)
    timing = speed.estimate(model, plan, gpu, args.dataset_tokens, args.epochs, args.price) if gpu else None
    if args.json:
        output.print_json({**est.as_dict(), "speed": timing.as_dict() if timing else None})
    else:
        output.note(note)
        output.print_estimate(est)
        if gpu:
            output.print_speed(timing)
    return 0
