"""Every template renders for every method x task x catalog family, and the output parses;
no user string can break or inject code."""

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from planner import models, render
from planner.errors import PlanError, RenderError
from planner.plan import METHODS, Plan

FAMILY_MODELS = ["Llama-3.1-8B", "Mistral-7B-v0.3", "Qwen2.5-7B", "Qwen3-8B", "Gemma-2-9B", "Phi-3-mini-4k",
                 "Pythia-1B", "Falcon-7B", "Mixtral-8x7B"]


def _render(tmp_path, plan, model_path="/models/x", data_path=None, command="ftplan render", **kw):
    data_path = data_path or str(Path(__file__).resolve().parents[2] / "runner/data/instructions.jsonl")
    spec = models.resolve(plan.model)
    return render.render(plan, spec, tmp_path / "run", model_path, data_path,
                         "preference" if plan.task == "dpo" else "alpaca", command, **kw)


def _check(run_dir: Path):
    for name in ("train.py", "merge.py"):
        ast.parse((run_dir / name).read_text())
    assert subprocess.run(["bash", "-n", str(run_dir / "launch.sh")]).returncode == 0
    tomllib.loads((run_dir / "plan.toml").read_text())


@pytest.mark.parametrize("model", FAMILY_MODELS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", ["sft", "dpo"])
def test_every_combination_renders_and_parses(tmp_path, model, method, task):
    """Every combination the planner accepts; QLoRA on Falcon, whose layers bitsandbytes leaves
    in bf16, is refused with the fix instead of rendered."""
    plan = Plan(model=model, method=method, task=task, loss="chunked" if method not in ("prefix",) and task == "dpo" else "standard")
    if models.resolve(model).quantized_params() == 0 and method == "qlora":
        with pytest.raises(PlanError, match="--method lora"):
            _render(tmp_path, plan)
        return
    _check(_render(tmp_path, plan).run_dir)


def test_plan_toml_round_trips(tmp_path):
    plan = Plan(model="Qwen2.5-0.5B", method="dora", rank=8, alpha=16, batch=3, seq_len=700, learning_rate=1e-4)
    run_dir = _render(tmp_path, plan).run_dir
    data = str(Path(__file__).resolve().parents[2] / "runner/data/instructions.jsonl")
    assert Plan.load(run_dir / "plan.toml") == plan.with_(data=data, data_format="alpaca")


HOSTILE = 'x"; import os; os.system("touch /tmp/pwned") #\n\'\'\' {{ 7*7 }} $(touch /tmp/pwned) `id` \\ \x7f'


def test_hostile_strings_stay_data(tmp_path):
    data = tmp_path / f"data {HOSTILE[:12]}.jsonl".replace("/", "_")
    data.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    plan = Plan(model="Llama-3.2-1B", run_name=HOSTILE, output_dir="out" + HOSTILE.replace("/", "_"))
    result = _render(tmp_path, plan, model_path=HOSTILE, data_path=str(data), command="ftplan render " + HOSTILE)
    run_dir = result.run_dir
    _check(run_dir)
    tree = ast.parse((run_dir / "train.py").read_text())
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id in ("MODEL_PATH", "RUN_NAME")}
    assert values == {"MODEL_PATH": HOSTILE, "RUN_NAME": HOSTILE}
    assert "49" not in (run_dir / "train.py").read_text().split("MODEL_PATH")[1].splitlines()[0]
    # the comments stay one line each: no header line starts a statement
    header = (run_dir / "train.py").read_text().split('"""')[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    assert Plan.load(run_dir / "plan.toml").run_name == HOSTILE
    out = subprocess.run(["bash", "-n", str(run_dir / "launch.sh")])
    assert out.returncode == 0 and not Path("/tmp/pwned").exists()


def test_existing_directory_is_not_overwritten_without_force(tmp_path):
    plan = Plan(model="Llama-3.2-1B")
    _render(tmp_path, plan)
    with pytest.raises(RenderError, match="--force"):
        _render(tmp_path, plan)
    _render(tmp_path, plan, force=True)


def test_next_steps_cover_merge_vllm_and_gguf(tmp_path):
    steps = _render(tmp_path, Plan(model="Llama-3.2-1B", method="lora")).next_steps
    assert "merge.py" in steps and "vllm serve" in steps and "--enable-lora" in steps and "gguf" in steps.lower()


def test_version_check_reports_out_of_range(monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(metadata, "version", lambda name: "4.46.0" if name == "transformers" else "0.20.0")
    problems = render.check_versions()
    assert any("transformers 4.46.0" in p for p in problems)


def test_cli_render_from_plan_file_reproduces_the_script(tmp_path):
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "PYTHONPATH": str(root)}
    first = subprocess.run([sys.executable, "-m", "planner", "render", "--model", "Qwen2.5-0.5B", "--task", "dpo",
                            "--data", str(root / "runner/data/preferences.jsonl"), "--loss", "chunked", "--gpu", "L4",
                            "-o", str(tmp_path / "a")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-m", "planner", "render", "--plan", str(tmp_path / "a/plan.toml"), "-o",
                            str(tmp_path / "b")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr

    def body(d):
        return [l for l in (tmp_path / d / "train.py").read_text().splitlines()
                if not l.startswith(("# Generated by", "# Run with", "# Resume with"))]

    assert body("a") == body("b")
