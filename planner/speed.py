"""Speed: which switches a plan's script really uses, and a step-time model calibrated on
our rendered scripts on the H100 (knowledge/speed.toml, bench/results/speed-h100.jsonl)."""

from __future__ import annotations

from planner import knowledge
from planner.plan import Plan


def compiles(plan: Plan) -> bool:
    """Whether the rendered script compiles its decoder layers: the plan asks for it and the
    method has been measured compiled (knowledge/speed.toml [compile])."""
    return plan.compile and plan.method in knowledge.table("speed")["compile"]["methods"]
