"""A rendered script holds only the code its plan runs: every combination of method x task x
engine x data format renders, compiles and passes pyflakes (no undefined or unused names), and
no `if` decides at run time what the plan already fixed."""

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from planner import models, render
from planner.errors import PlanError
from planner.plan import DPO_LOSSES, METHODS, Plan, default_loss

ROOT = Path(__file__).resolve().parents[2]
DATA = {"sft": ROOT / "runner/data/instructions.jsonl", "dpo": ROOT / "runner/data/preferences.jsonl"}
ENGINES = {"one GPU": {}, "ddp": {"gpus": 2}, "deepspeed": {"gpus": 2, "engine": "deepspeed", "zero": 2},
           "zero3": {"gpus": 2, "engine": "deepspeed", "zero": 3}, "fsdp": {"gpus": 2, "engine": "fsdp"}}
FORMATS = {"sft": ["alpaca", "sharegpt", "messages", "completion"], "dpo": ["preference"]}
# settings that change which code runs, beyond method x task x engine x format
VARIANTS = [{"precision": "fp16"}, {"precision": "fp32"}, {"loss": "chunked"}, {"loss": "fused"}, {"loss": "model"},
            {"method": "qlora", "kbit_prep": True}, {"method": "qlora", "kbit_prep": True, "grad_ckpt": True},
            {"cast_adapter_inputs": True}, {"dropout": 0.05},
            {"optim": "paged_adamw_8bit"}, {"scheduler": "linear"}, {"scheduler": "constant"}, {"report_to": "wandb"},
            {"report_to": "tensorboard"}, {"grad_ckpt": True}, {"packing": False}, {"packing_attends_across": True},
            {"compile": False}, {"task": "dpo", "dpo_loss_type": "ipo"}, {"task": "dpo", "dpo_loss_type": "hinge"},
            {"task": "dpo", "loss": "chunked"}, {"method": "full", "precision": "fp16"}, {"method": "full", "precision": "mixed"},
            {"gpus": 2, "precision": "fp16"}, {"gpus": 2, "engine": "deepspeed", "zero": 3, "offload": "optimizer"},
            {"gpus": 2, "engine": "fsdp", "offload": "all"}, {"gpus": 2, "nodes": 2, "engine": "fsdp", "shard": "hybrid"},
            {"trainer": "trl", "loss": "chunked", "precision": "fp16"}, {"trainer": "trl", "loss": "chunked", "grad_ckpt": True},
            {"trainer": "trl", "loss": "chunked", "method": "qlora", "kbit_prep": True},
            {"trainer": "trl", "loss": "chunked", "method": "qlora", "gpus": 2},
            {"trainer": "trl", "loss": "chunked", "report_to": "wandb", "optim": "paged_adamw_8bit"}]


def plans():
    for method, task, engine in itertools.product(METHODS, ("sft", "dpo"), ENGINES):
        for fmt in FORMATS[task]:
            yield f"{method}-{task}-{engine}-{fmt}", Plan(model="Llama-3.2-1B", method=method, task=task, **ENGINES[engine]), fmt
    for method, task, engine in itertools.product(METHODS, ("sft", "dpo"), ("one GPU", "ddp")):
        for fmt in FORMATS[task]:
            yield (f"trl-{method}-{task}-{engine}-{fmt}",
                   Plan(model="Llama-3.2-1B", trainer="trl", loss="chunked", method=method, task=task, **ENGINES[engine]), fmt)
    for loss, trainer in itertools.product(DPO_LOSSES, ("ftplan", "trl")):
        yield (f"dpo-loss={loss}-{trainer}",
               Plan(model="Llama-3.2-1B", task="dpo", dpo_loss_type=loss, trainer=trainer, loss=default_loss(trainer)), "preference")
    for variant in VARIANTS:
        plan = Plan(model="Llama-3.2-1B", **variant)
        yield "-".join(f"{k}={v}" for k, v in variant.items()), plan, FORMATS[plan.task][0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every valid combination's train.py and merge.py, by name."""
    out, scripts = tmp_path_factory.mktemp("combos"), {}
    for name, plan, fmt in plans():
        try:
            files = render.render_files(plan, models.resolve(plan.model), out / name, "/models/x", str(DATA[plan.task]),
                                        fmt, "ftplan render")
        except PlanError:  # a combination the planner refuses (QLoRA under ZeRO, DPO full under FSDP, ...)
            continue
        for script in ("train.py", "merge.py"):
            path = out / name / script
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[script])
            scripts[f"{name}/{script}"] = path
    return scripts


def test_enough_combinations_render(rendered):
    assert len(rendered) >= 2 * 120
    trl_ddp = [name for name in rendered if name.startswith("trl-") and "-ddp-" in name]
    assert len(trl_ddp) >= 2 * 10  # TRL runs data parallel for full, LoRA, QLoRA and DoRA


def test_every_rendered_script_compiles_and_passes_pyflakes(rendered):
    for path in rendered.values():
        compile(path.read_text(), str(path), "exec")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F",
                          "--output-format", "concise", *map(str, rendered.values())], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def _settings(tree: ast.Module) -> set[str]:
    """Module-level names bound to literals: what the plan fixed."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
            try:
                ast.literal_eval(node.value)
            except ValueError:
                continue
            names.add(node.targets[0].id)
    return names


def test_no_branch_decides_at_run_time_what_the_plan_fixed(rendered):
    """An if whose test reads only the plan's settings would be decided the same way on every
    run: the template decides it instead."""
    for name, path in rendered.items():
        tree = ast.parse(path.read_text())
        settings = _settings(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.If, ast.IfExp, ast.While)):
                names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
                assert not names or not names <= settings, f"{name}:{node.lineno} decides on {sorted(names)} at run time"


def _defined_functions(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}


def test_each_script_holds_only_its_own_paths(rendered):
    for name, path in rendered.items():
        if not name.endswith("train.py"):
            continue
        text, functions = path.read_text(), _defined_functions(path)
        if "-sft-" in name or name.startswith(("precision", "loss=fused", "optim", "scheduler", "report", "grad", "pack", "compile")):
            assert "dpo_loss" not in functions and "DPO_BETA" not in text, name
        if "-dpo-" in name:
            assert "sft_loss" not in functions and "pack" not in functions and "SFTTrainer" not in text, name
        if name.startswith("trl"):
            assert "make_optimizer" not in functions and "save_checkpoint" not in functions, name  # the Trainer's own
        if "one GPU" in name:
            assert "accelerat" not in text and "IS_MAIN" not in text, name
        # one loss path: the logits come from the model's head or from chunks, never both
        assert not ("_chunk_logps" in functions and ".logits" in text), name
        if "loss=fused" not in name:
            assert "liger" not in text, name
