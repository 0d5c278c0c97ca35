"""--trainer trl renders a script on TRL's SFTTrainer / DPOTrainer that the runner runs and
watches like ftplan's own: the same JSON lines, checkpoints, a signal that stops the run with
a checkpoint, and --resume that continues it (CPU, the tiny model)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner import models, render
from planner.errors import PlanError
from planner.plan import Plan, validate
from runner import process, status
from runner.events import Checkpoint, Eval, Finished, Metric

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("peft")
pytest.importorskip("trl")
pytest.importorskip("datasets")


def _render(tmp_path, tiny_model, data, fmt, **plan):
    p = Plan(model=str(tiny_model), trainer="trl", loss="chunked", precision="fp32", seq_len=256, batch=2, rank=4, alpha=8,
             **{"method": "lora", "eval_fraction": 0.1, "max_steps": 4, "save_steps": 2, "eval_steps": 2, **plan})
    run_dir = tmp_path / "run"
    render.render(p, models.resolve(str(tiny_model)), run_dir, str(tiny_model), str(data), fmt, command="pytest")
    return run_dir


def _steps(run_dir):
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e["step"] for e in events if e["event"] == "step"]


@pytest.mark.parametrize("method,task,fmt", [("lora", "sft", "alpaca"), ("full", "sft", "messages"),
                                             ("lora", "dpo", "preference"), ("dora", "sft", "completion")])
def test_trl_script_trains_checkpoints_and_evaluates_through_the_runner(tmp_path, tiny_model, dataset, method, task, fmt):
    run_dir = _render(tmp_path, tiny_model, dataset(fmt, 40), fmt, method=method, task=task)
    text = (run_dir / "train.py").read_text()
    assert ("SFTTrainer" in text) == (task == "sft") and ("DPOTrainer" in text) == (task == "dpo")
    events = list(process.run(run_dir))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2, 3, 4]
    assert all(e.values["loss"] > 0 and e.values["tokens_per_s"] > 0 for e in events if isinstance(e, Metric))
    assert [e.step for e in events if isinstance(e, Eval)] == [2, 4]
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2, 4]
    assert (run_dir / "output/final").is_dir() and status.read(run_dir)["state"] == "succeeded"
    if task == "dpo":
        assert all("reward_accuracy" in e.values for e in events if isinstance(e, Metric))


def test_full_dpo_with_precomputed_reference_log_probs_runs_without_a_reference_copy(tmp_path, tiny_model, dataset):
    """TRL computes the reference log-probs with the untrained policy before the first step and
    loads no reference model: the estimate drops the reference copy, the script asks for it,
    and the run trains through the runner."""
    from planner import memory

    spec = models.resolve("Llama-3.1-8B")
    kept, precomputed = (memory.estimate(spec, Plan(model=spec.name, method="full", task="dpo", trainer="trl", loss="chunked",
                                                    precompute_ref=flag)) for flag in (False, True))
    assert kept.term_bytes()["reference_model"] == 2 * spec.total_params()
    assert precomputed.term_bytes().get("reference_model", 0) == 0
    assert kept.total_bytes - precomputed.total_bytes >= 2 * spec.total_params()
    with pytest.raises(PlanError, match="--trainer trl"):
        validate(Plan(model=spec.name, method="full", task="dpo", precompute_ref=True))  # our loop runs the reference pass

    run_dir = _render(tmp_path, tiny_model, dataset("preference", 40), "preference", method="full", task="dpo",
                      precompute_ref=True)
    assert "precompute_ref_log_probs=True" in (run_dir / "train.py").read_text()
    events = list(process.run(run_dir))
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2, 3, 4]
    assert all("reward_accuracy" in e.values for e in events if isinstance(e, Metric))


def test_sigterm_checkpoints_the_trl_run_and_resume_continues_it(tmp_path, tiny_model, dataset, resume_to_the_end):
    run_dir = _render(tmp_path, tiny_model, dataset("alpaca", 160), "alpaca", max_steps=400, save_steps=1000,
                      eval_fraction=0.0)
    runner = subprocess.Popen([sys.executable, "-m", "planner", "run", str(run_dir), "--json"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not ((run_dir / "metrics.jsonl").exists() and len(_steps(run_dir)) >= 2):
        time.sleep(0.2)
    os.kill(runner.pid, signal.SIGTERM)
    out, err = runner.communicate(timeout=180)
    assert runner.returncode == 130, (run_dir / "stderr.log").read_text()[-3000:]
    assert status.read(run_dir)["state"] == "interrupted"
    saved = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert saved
    stopped = int(saved[-1].name.split("-")[1])
    assert stopped == _steps(run_dir)[-1]  # the checkpoint is at the step the run reached
    resume_to_the_end(run_dir, stopped)


@pytest.mark.parametrize("change,needle", [
    (dict(method="prefix"), "--trainer ftplan"),
    (dict(method="lora", gpus=2, zero=2), "ZeRO and FSDP"),
    (dict(loss="standard"), "--loss chunked"),
    (dict(loss="fused"), "--loss chunked"),
    (dict(task="sft", precompute_ref=True), "--task dpo --trainer trl"),
])
def test_what_the_trl_scripts_do_not_cover_is_refused_with_the_alternative(change, needle):
    with pytest.raises(PlanError, match=needle):
        validate(Plan(model="Llama-3.2-1B", trainer="trl", **{"loss": "chunked", **change}))


def test_trl_runs_data_parallel_over_two_processes(tmp_path, tiny_model, dataset):
    """Two gloo processes on the CPU (torchrun, as launch.sh starts them): one job of world size 2,
    each process a half of every step's rows, rank 0 speaking for it."""
    run_dir = _render(tmp_path, tiny_model, dataset("alpaca", 40), "alpaca", gpus=2, eval_fraction=0.0)
    events = list(process.run(run_dir))
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-3000:]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged[0]["world_size"] == 2
    assert [e["step"] for e in logged if e["event"] == "step"] == [1, 2, 3, 4]  # logged once, by rank 0
    single = _render(tmp_path / "one", tiny_model, dataset("alpaca", 40), "alpaca", eval_fraction=0.0)
    assert list(process.run(single))[-1].state == "succeeded"
    epoch = [e["epoch"] for e in logged if e["event"] == "step"][-1]
    one = [e["epoch"] for e in map(json.loads, (single / "metrics.jsonl").read_text().splitlines()) if e["event"] == "step"][-1]
    assert epoch == pytest.approx(2 * one, rel=0.05)  # twice the rows per step
