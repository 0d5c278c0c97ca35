"""What the wizard has gathered so far: kept on the app, so going back keeps the answers.
No Textual import: the screens read and write it, the planner computes from it."""

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
    seq_len: int = 2048
    data: str = ""
    examples: int | None = None
    advice: object = None                              # planner.recommend.Advice
    run_dir: str = ""
