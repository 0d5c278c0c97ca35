"""ftplan models: the model catalog."""

from __future__ import annotations

from planner import models
from planner.cli import output


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    cat = models.catalog()
    if args.json:
        output.print_json([m.as_dict() for m in cat])
        return 0
    from rich import box
    from rich.table import Table

    t = Table(title="Model catalog (--model NAME; or a local path, a Hub id, a size like 7B)", title_justify="left",
              box=box.SIMPLE_HEAD)
    t.add_column("name", no_wrap=True, min_width=max(len(m.name) for m in cat))
    t.add_column("family", no_wrap=True)
    for col in ("params", "layers", "vocab"):
        t.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    t.add_column("notes", no_wrap=True, min_width=10)
    for m in cat:
        notes = ", ".join(n for n in ("tied" if m.tied_embeddings else "",
                                       f"MoE {m.experts_per_token}/{m.num_experts}" if m.is_moe else "") if n)
        t.add_row(m.name, m.family, f"{m.total_params() / 1e9:.1f}B", str(m.num_layers),
                  f"{m.vocab_size / 1000:.0f}k", notes)
    output.console().print(t)
    return 0
