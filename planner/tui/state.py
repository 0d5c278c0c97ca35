"""What the wizard has gathered so far: kept on the app, so going back keeps the answers.
No Textual import: the screens read and write it, planner/workflow.py computes from it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WizardState:
    answers: dict = field(default_factory=dict)       # checklist question id -> bool
    gpu: str = "H100-SXM"
    gpus: int = 1                                      # per node
    nodes: int = 1
    model: str = "Llama-3.1-8B"
    method: str = "lora"
    task: str = "sft"
    trainer: str = "ftplan"                            # ftplan's loop or TRL's trainers
    seq_len: int = 2048
    data: str = ""
    examples: int | None = None
    recommended: object = None                         # planner.workflow.Recommended
    report: object = None                              # planner.workflow.Report: the plan as it stands (fixes applied)
    run_dir: str = ""

    @property
    def advice(self):
        """The recommendation (its rules) with the plan as it stands."""
        return None if self.recommended is None else self.recommended.advice

    @property
    def plan(self):
        return None if self.report is None else self.report.plan
