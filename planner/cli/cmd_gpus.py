"""ftplan gpus: what NVML detects, then the catalog."""

from __future__ import annotations

from planner import hardware
from planner.cli import output


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    det = hardware.detect()
    cat = hardware.catalog()
    if args.json:
        output.print_json({"detected": det.as_dict(), "catalog": [g.as_dict() for g in cat]})
        return 0
    from rich.table import Table

    c = output.console()
    if det.gpus:
        c.print(f"Detected (driver {det.driver_version}, CUDA {det.cuda_version}):")
        for g in det.gpus:
            c.print(f"  {output.esc(f'[{g.index}]')} {output.esc(g.name)}: {output.gib(g.total_bytes)} total, {output.gib(g.free_bytes)} free, "
                    f"compute {g.compute_capability}, bf16 {'yes' if g.bf16 else 'no'}"
                    + (f" (catalog: {g.catalog_name})" if g.catalog_name else ""))
    else:
        c.print(det.problem)
    t = Table(title="GPU catalog (--gpu NAME --gpus N)", title_justify="left")
    for col in ("name", "memory", "bf16", "dense bf16 TFLOP/s", "GB/s", "$/h"):
        t.add_column(col, justify="right" if col != "name" else "left")
    for g in cat:
        t.add_row(g.name, output.gib(g.memory_bytes), "yes" if g.bf16 else "no", f"{g.bf16_tflops:g}",
                  f"{g.bandwidth_gbs:g}", f"{g.price_per_hour_usd:.2f}")
    c.print(t)
    return 0
