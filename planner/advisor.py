"""The fine-tune vs RAG vs prompt-engineering checklist (knowledge/checklist.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from planner import knowledge


@dataclass(frozen=True)
class Verdict:
    approach: str             # approach id: prompt, rag, finetune, finetune+rag
    name: str
    reasons: tuple[str, ...]
    instead: str              # what to do instead when the verdict is not fine-tuning
    source: str

    @property
    def fine_tune(self) -> bool:
        return self.approach.startswith("finetune")

    def as_dict(self) -> dict:
        return {"approach": self.approach, "name": self.name, "fine_tune": self.fine_tune,
                "reasons": list(self.reasons), "instead": self.instead, "source": self.source}


def questions() -> list[dict]:
    return knowledge.rows("checklist", "question")


def approaches() -> dict[str, dict]:
    return {a["id"]: a for a in knowledge.rows("checklist", "approach")}


def verdict(answers: dict[str, bool]) -> Verdict:
    """Count the "yes" answers for each approach; a vetoing answer (blocks_finetune) rules
    fine-tuning out. Fine-tuning with a need for external knowledge is fine-tune + RAG."""
    qs = {q["id"]: q for q in questions()}
    unknown = set(answers) - set(qs)
    if unknown:
        raise KeyError(f"unknown checklist question(s): {', '.join(sorted(unknown))}")
    yes = [qs[i] for i, v in answers.items() if v]
    score = {"prompt": 0, "rag": 0, "finetune": 0}
    for q in yes:
        score[q["points_to"]] += 1
    vetoed = [q for q in yes if q.get("blocks_finetune")]
    if vetoed:
        target = max(("prompt", "rag"), key=lambda a: sum(1 for q in vetoed if q["points_to"] == a))
        reasons = [q["text"] for q in vetoed]
    elif score["finetune"] and score["rag"]:
        target, reasons = "finetune+rag", [q["text"] for q in yes]
    elif score["finetune"]:
        target, reasons = "finetune", [q["text"] for q in yes if q["points_to"] == "finetune"]
    elif score["rag"]:
        target, reasons = "rag", [q["text"] for q in yes if q["points_to"] == "rag"]
    else:
        target, reasons = "prompt", ["No answer points past prompt engineering: it is the cheapest thing to try first"]
    a = approaches()[target]
    return Verdict(target, a["name"], tuple(reasons), a.get("instead", ""), a["source"])
