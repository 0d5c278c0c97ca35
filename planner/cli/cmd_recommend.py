"""ftplan recommend: a complete plan with the rule behind each setting."""

from __future__ import annotations

from planner import models, recommend
from planner.cli import args as A
from planner.cli import output
from planner.errors import HardwareError
from planner.plan import Plan


def add_arguments(p) -> None:
    A.add_model_args(p)
    p.add_argument("--method", choices=("full", "lora", "qlora", "dora", "prefix", "ia3"),
                   help="force a method (default: the best that fits)")
    p.add_argument("--examples", type=int, help="rows in the training set (or give --data)")
    p.add_argument("--task-kind", default="general", choices=recommend.TASK_KINDS)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--data", help="dataset file: its rows and token lengths feed the rules")
    A.add_hardware_args(p)
    p.add_argument("--dataset-tokens", type=int, help="training tokens per epoch (default: from --data, or examples x seq-len)")
    p.add_argument("--price", type=float, help="USD per GPU-hour (default: the GPU catalog's on-demand price)")


def run(args) -> int:
    model = models.resolve(args.model)
    gpu, gpus, note = A.resolve_gpu(args)
    if gpu is None:
        raise HardwareError(f"{note.split(';')[0]}; recommend needs hardware: add --gpu NAME --gpus N")
    A.check_speed_args(args)
    examples, max_length, tokens = args.examples, None, args.dataset_tokens
    if args.data:
        from planner import data

        stats = data.inspect(args.data, task=args.task)
        examples = stats.rows
        max_length = stats.recommended_max_length()
        if tokens is None:
            tokens = stats.rows * stats.percentiles[50]  # median length x rows
    base = Plan(model=args.model, task=args.task, method=args.method or "lora", gpus=gpus, nodes=args.nodes,
                gpu=gpu.name, seq_len=args.seq_len, data=args.data or "")
    advice = recommend.recommend(model, base, gpu, examples=examples, task_kind=args.task_kind,
                                 method_given=bool(args.method), max_length=max_length,
                                 dataset_tokens=tokens, price_per_hour=args.price)
    if args.json:
        output.print_json(advice.as_dict())
    else:
        output.note(note)
        output.print_recommendations(advice)
    return 0
