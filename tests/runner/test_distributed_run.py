"""Two processes on the CPU (gloo) through the rendered launch.sh (torchrun + accelerate):
the data is split between them, rank 0 alone reports, checkpoints hold both ranks' state and
resume continues; and a real one-node SLURM accepts and runs the rendered batch script."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from planner import models, render
from planner.plan import Plan
from runner import process, slurm, status
from runner.events import Finished, Metric, Started

pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[2]
CPU_PLAN = dict(batch=2, seq_len=160, precision="fp32", learning_rate=3e-3, max_steps=3, save_steps=2,
                eval_steps=100, eval_fraction=0.0, rank=4, alpha=8)


def _render(tmp_path, tiny_model, data, name="run", **plan):
    spec = models.resolve(str(tiny_model))
    fmt = "preference" if plan.get("task") == "dpo" else "alpaca"
    p = Plan(model=str(tiny_model), data=str(data), data_format=fmt, **{**CPU_PLAN, **plan})
    run_dir = tmp_path / name
    render.render(p, spec, run_dir, str(tiny_model), str(data), fmt, command="pytest")
    return run_dir


def _events(run_dir, **kw):
    events = list(process.run(run_dir, env={"OMP_NUM_THREADS": "1"}, **kw))
    assert isinstance(events[-1], Finished)
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    return events


def test_two_gloo_processes_split_the_data_checkpoint_and_resume(tmp_path, tiny_model, dataset):
    data = dataset("alpaca")
    single = _events(_render(tmp_path, tiny_model, data, "single"))
    run_dir = _render(tmp_path, tiny_model, data, "ddp", gpus=2)
    events = _events(run_dir)
    start = next(e for e in events if isinstance(e, Started)).info
    assert start["world_size"] == 2 and start["distributed_type"] == "MULTI_CPU"
    steps = [e for e in events if isinstance(e, Metric)]
    assert [e.step for e in steps] == [1, 2, 3]  # rank 0 alone reports each step
    one = next(e for e in single if isinstance(e, Metric)).values
    # each process takes every second batch: an epoch has half as many steps
    assert steps[0].values["epoch"] == pytest.approx(2 * one["epoch"], rel=0.1)
    state = run_dir / "checkpoints" / "step-000002" / "state"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in state.iterdir()}
    assert (run_dir / "output" / "final" / "adapter_config.json").exists()

    text = (run_dir / "train.py").read_text().replace("MAX_STEPS = 3", "MAX_STEPS = 4")
    (run_dir / "train.py").write_text(text)
    resumed = _events(run_dir, resume=True)
    assert [e.step for e in resumed if isinstance(e, Metric)] == [4]


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["bash", str(ROOT / ".ci" / "slurm-up")], capture_output=True).returncode == 0


def test_slurm_runs_the_rendered_batch_script(tmp_path, tiny_model, dataset):
    if not _slurm_up():
        pytest.skip("no SLURM here (Debian's slurm-wlm and root are needed; .ci/setup installs it)")
    run_dir = _render(tmp_path, tiny_model, dataset("alpaca"), "slurm", gpus=2)
    # the test node has no GPUs: ask for none and one CPU per task
    job = slurm.submit(run_dir, ("--gres=none", "--cpus-per-task=1"))
    assert status.read(run_dir)["state"] == "submitted" and status.read(run_dir)["job_id"] == job
    events = list(slurm.follow(run_dir, poll_s=0.5, timeout_s=600))
    done = events[-1]
    log = (run_dir / f"slurm-{job}.out").read_text()
    assert isinstance(done, Finished) and done.state == "succeeded", log[-3000:]
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2, 3]
    assert status.read(run_dir)["state"] == "succeeded"
    assert any(json.loads(l).get("event") == "finished" for l in log.splitlines() if l.startswith("{"))


def test_two_gloo_processes_run_dpo_with_the_adapter_free_reference(tmp_path, tiny_model, dataset):
    """The reference pass disables the adapters on the PeftModel inside DDP's wrapper."""
    run_dir = _render(tmp_path, tiny_model, dataset("preference"), "dpo", gpus=2, task="dpo", max_steps=2)
    events = _events(run_dir)
    steps = [e for e in events if isinstance(e, Metric)]
    assert [e.step for e in steps] == [1, 2] and all("reward_accuracy" in e.values for e in steps)
