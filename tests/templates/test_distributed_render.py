"""Multi-GPU plans: every launcher and engine configuration renders and validates (DeepSpeed's
own config models, accelerate's config loader, bash -n), and the launch commands are right."""

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest

from planner import models, render
from planner.errors import PlanError
from planner.plan import Plan

DATA = str(Path(__file__).resolve().parents[2] / "runner/data/instructions.jsonl")

CONFIGS = [
    dict(gpus=2),                                             # DDP
    dict(gpus=8, nodes=2),                                    # DDP, two nodes
    dict(gpus=1, zero=2),                                     # ZeRO at world size 1 (the H100 engine runs)
    dict(gpus=4, zero=1),
    dict(gpus=8, zero=2),
    dict(gpus=8, zero=2, offload="optimizer"),
    dict(gpus=8, zero=3),
    dict(gpus=8, nodes=4, zero=3, offload="optimizer"),
    dict(gpus=8, nodes=2, zero=3, offload="all"),
    dict(gpus=8, engine="fsdp"),
    dict(gpus=8, engine="fsdp", offload="all"),
    dict(gpus=8, nodes=2, engine="fsdp", shard="hybrid"),
]


def _render(tmp_path, **plan):
    p = Plan(model="Llama-3.1-8B", method=plan.pop("method", "full"), **plan)
    return render.render(p, models.resolve(p.model), tmp_path / "run", "/models/llama", DATA, "alpaca", "pytest"), p


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("method", ["full", "lora"])
def test_every_engine_configuration_renders_and_validates(tmp_path, config, method):
    result, plan = _render(tmp_path, method=method, **config)
    run_dir = result.run_dir
    ast.parse((run_dir / "train.py").read_text())
    for script in ("launch.sh", "slurm.sbatch"):
        assert subprocess.run(["bash", "-n", str(run_dir / script)]).returncode == 0
    launch = (run_dir / "launch.sh").read_text()
    assert "torch.distributed.run" in launch and f'GPUS_PER_NODE:-{plan.gpus}' in launch
    sbatch = (run_dir / "slurm.sbatch").read_text()
    assert f"#SBATCH --nodes={plan.nodes}" in sbatch and f"#SBATCH --gres=gpu:{plan.gpus}" in sbatch

    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(run_dir / "accelerate_config.yaml"))
    assert cfg.num_processes == plan.world_size and cfg.num_machines == plan.nodes
    assert cfg.distributed_type.value == {"ddp": "MULTI_GPU", "deepspeed": "DEEPSPEED", "fsdp": "FSDP"}[plan.launcher_engine]

    ds_path = run_dir / "ds_config.json"
    assert ds_path.exists() == (plan.launcher_engine == "deepspeed")
    if ds_path.exists():
        ds = json.loads(ds_path.read_text())
        assert ds["train_batch_size"] == plan.batch * plan.grad_accum * plan.world_size
        assert ds["zero_optimization"]["stage"] == plan.zero
        deepspeed = pytest.importorskip("deepspeed.runtime.zero.config")
        zero = deepspeed.DeepSpeedZeroConfig(**ds["zero_optimization"])  # pydantic: unknown keys raise
        assert (zero.offload_optimizer is not None) == (plan.offload != "none")
        assert (zero.offload_param is not None) == (plan.offload == "all")


def test_world_size_one_deepspeed_config_passes_deepspeeds_own_parser(tmp_path):
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.config import DeepSpeedConfig

    result, plan = _render(tmp_path, gpus=1, zero=3, offload="optimizer", grad_accum=4, batch=2)
    c = DeepSpeedConfig(json.loads((result.run_dir / "ds_config.json").read_text()))
    assert (c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps, c.zero_optimization_stage) == (2, 4, 3)
    assert c.bfloat16_config.enabled and c.gradient_clipping == plan.max_grad_norm


def test_single_gpu_plans_keep_the_plain_script(tmp_path):
    result, _ = _render(tmp_path, gpus=1)
    text = (result.run_dir / "train.py").read_text()
    assert "accelerate" not in text and "torch.distributed" not in (result.run_dir / "launch.sh").read_text()
    assert not (result.run_dir / "accelerate_config.yaml").exists()


def test_zero3_keeps_the_adapter_input_cast_and_scripts_under_engines_run_eager(tmp_path):
    result, _ = _render(tmp_path, method="lora", gpus=2, zero=3)
    text = (result.run_dir / "train.py").read_text()
    assert "cast_input_dtype_enabled = False" not in text and "layer.compile()" not in text
    result, _ = _render(tmp_path / "b", method="lora", gpus=2)
    text = (result.run_dir / "train.py").read_text()
    assert "cast_input_dtype_enabled = False" in text and "layer.compile()" in text


@pytest.mark.parametrize("plan,needle", [
    (dict(gpus=2, engine="fsdp", zero=2), "drop --zero"),
    (dict(gpus=2, engine="fsdp", offload="optimizer"), "--offload all"),
    (dict(gpus=2, nodes=1, engine="fsdp", shard="hybrid"), "--nodes 2"),
    (dict(gpus=2, method="qlora", zero=2), "data parallel"),
    (dict(gpus=2, loss="chunked"), "--loss standard"),
    (dict(gpus=2, zero=3, task="dpo"), "reference"),
])
def test_combinations_the_scripts_cannot_run_are_refused_with_the_fix(tmp_path, plan, needle):
    with pytest.raises(PlanError, match=needle.replace("-", r"\-")):
        _render(tmp_path, **plan)


def test_slurm_time_limit_follows_the_speed_estimate():
    assert render.slurm_time_limit(None) == "1-00:00:00"
    assert render.slurm_time_limit(3600) == "0-02:00:00"      # 1.5 h + 0.5 h
    assert render.slurm_time_limit(86400) == "1-12:30:00"


def test_the_batch_script_requeues_after_its_time_limit_signal_and_the_next_start_resumes(tmp_path):
    result, plan = _render(tmp_path, method="lora", **CONFIGS[0])
    run_dir = result.run_dir
    sbatch = (run_dir / "slurm.sbatch").read_text()
    assert "#SBATCH --signal=TERM@" in sbatch and "#SBATCH --requeue" in sbatch
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "srun").write_text(f'#!/usr/bin/env bash\necho "srun $*" >> {calls}\nexit "$SRUN_EXIT"\n')
    (bin_dir / "scontrol").write_text(f'#!/usr/bin/env bash\necho "scontrol $*" >> {calls}\n'
                                      '[ "$1" = show ] && echo node1\nexit 0\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "node1",
           "SLURM_NNODES": "1"}
    stopped = subprocess.run(["bash", str(run_dir / "slurm.sbatch")], env={**env, "SRUN_EXIT": "130"})
    assert stopped.returncode == 130 and "scontrol requeue 7" in calls.read_text()
    assert "launch.sh --resume" not in calls.read_text()  # the first start had nothing to resume
    (run_dir / "checkpoints" / "step-000005").mkdir(parents=True)
    again = subprocess.run(["bash", str(run_dir / "slurm.sbatch")], env={**env, "SRUN_EXIT": "0", "SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0 and "bash launch.sh --resume" in calls.read_text().splitlines()[-1]
    finished_twice = subprocess.run(["bash", str(run_dir / "slurm.sbatch")],
                                    env={**env, "SRUN_EXIT": "130", "SLURM_RESTART_COUNT": "20"})
    assert finished_twice.returncode == 130 and calls.read_text().count("requeue") == 1  # no endless requeue
