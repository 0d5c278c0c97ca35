"""ftplan data: detect, validate and measure a dataset file."""

from __future__ import annotations

from planner import data
from planner.cli import output
from planner.plan import TASKS


def add_arguments(p) -> None:
    p.add_argument("path")
    p.add_argument("--task", choices=TASKS, default=None, help="default: what the format is for")
    p.add_argument("--format", default="auto", dest="data_format")
    p.add_argument("--model-path", help="a local model directory whose tokenizer counts the tokens")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    task = args.task
    if task is None:
        rows, _, _ = data.read_rows(args.path)
        fmt = data.detect_format(next(r for r in rows if isinstance(r, dict))) if args.data_format == "auto" else args.data_format
        task = data.formats().get(fmt, {}).get("task", "sft")
    stats = data.inspect(args.path, task=task, data_format=args.data_format, model_path=args.model_path)
    if args.json:
        output.print_json(stats.as_dict())
        return 0
    c = output.console()
    c.print(f"{stats.path}: {stats.rows:,} rows, {stats.tokens:,} tokens, format {stats.format} ({stats.task}); every row valid",
            markup=False)
    c.print("token length percentiles: " + ", ".join(f"p{k} {v}" for k, v in stats.percentiles.items())
            + f"  ({stats.tokenizer})", markup=False)
    c.print(f"recommended max length: {stats.recommended_max_length()} (rule max_length.data)")
    return 0
