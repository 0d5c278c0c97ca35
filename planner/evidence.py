"""What an estimate rests on: `measured` (the family was run on a GPU with our own scripts
and its error bound is committed), or `derived` (the layout is ftplan's table for the family
or the model's own code, never measured: a margin is added before the fit verdict).
A model that can be neither is refused where it is resolved (planner/models.py)."""

from __future__ import annotations

from dataclasses import dataclass

from planner import knowledge
from planner.plan import Plan
from planner.spec import ModelSpec


@dataclass(frozen=True)
class Evidence:
    kind: str          # measured | derived
    margin: float      # fraction of the estimate added before the fit verdict
    bound: float       # measured: every committed run of the family within this fraction
    detail: str
    source: str

    def line(self) -> str:
        if self.kind == "measured":
            return f"measured: {self.detail}; committed runs within {self.bound:.0%} ({self.source})"
        return f"derived: {self.detail}; +{self.margin:.0%} margin before the fit verdict"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "margin": self.margin, "bound": self.bound, "detail": self.detail, "source": self.source}


def measured_row(model: ModelSpec, trainer: str = "ftplan") -> dict | None:
    for row in knowledge.rows("evidence", "measured"):
        if row["family"] == model.family and row.get("moe", False) == model.is_moe and \
                row.get("trainer", "ftplan") == trainer:
            return row
    return None


def _setting(model: ModelSpec, plan: Plan, field: str):
    """A plan's field, or the model's (its layout: `mlp`, `norm`) where the plan has none."""
    return getattr(plan, field) if hasattr(plan, field) else getattr(model, field)


def of(model: ModelSpec, plan: Plan | None = None) -> Evidence:
    """The evidence behind every estimate of `model` under `plan`'s program (ftplan's loop or
    TRL's trainers: each is measured on its own)."""
    trainer = plan.trainer if plan is not None else "ftplan"
    for unmeasured in knowledge.rows("evidence", "unmeasured") if plan is not None else ():
        if all(_setting(model, plan, field) in (value if isinstance(value, list) else [value])
               for field, value in unmeasured["when"].items()):
            return Evidence("derived", unmeasured["margin"], 0.0, unmeasured["detail"], unmeasured["source"])
    row = measured_row(model, trainer)
    shape = "a Llama-shaped model of that size" if model.name.startswith("generic-") else model.name
    program = "" if trainer == "ftplan" else f" under {trainer.upper()}"
    if row is not None:
        return Evidence("measured", 0.0, row["bound"], f"{model.family} family measured on a GPU{program} ({shape})", row["source"])
    derived = knowledge.table("evidence")["derived"]
    kind = f"{model.family} mixture-of-experts" if model.is_moe else f"the {model.family} family"
    how = model.derived_from or f"layout from ftplan's table for {model.family}"
    if trainer != "ftplan" and measured_row(model) is not None:
        how = f"the family is measured with ftplan's loop, and {trainer.upper()}'s loss head and trainer are read from its code"
    return Evidence("derived", derived["margin"], 0.0, f"{kind}{program} has not been measured; {how}", derived["source"])
