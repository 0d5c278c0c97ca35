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
    from rich.table import Table

    t = Table(title="Model catalog (--model NAME; also a local path, a Hub id or a size like 7B)", title_justify="left")
    for col in ("name", "family", "params", "hidden", "layers", "heads/kv", "vocab", "tied", "experts"):
        t.add_column(col, justify="left" if col in ("name", "family") else "right")
    for m in cat:
        t.add_row(m.name, m.family, f"{m.total_params() / 1e9:.2f}B", str(m.hidden_size), str(m.num_layers),
                  f"{m.num_heads}/{m.num_kv_heads}", f"{m.vocab_size:,}", "yes" if m.tied_embeddings else "no",
                  f"{m.experts_per_token}/{m.num_experts}" if m.is_moe else "-")
    output.console().print(t)
    return 0
