"""From the command line, on the CPU: recommend renders its plan and run trains it; render
refuses a plan that does not fit its GPU and writes nothing, unless --allow-oom."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("peft")


def ftplan(*args, cwd=None):
    env = {**os.environ, "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "planner", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=600)


def test_recommend_renders_what_it_recommends_and_run_trains_it(tmp_path, tiny_model, dataset):
    data = dataset("alpaca", 32)
    out = ftplan("recommend", "--model", tiny_model, "--data", data, "--gpu", "L4", "-o", tmp_path / "run", "--json")
    assert out.returncode == 0, out.stderr
    advice = json.loads(out.stdout)
    written = tomllib_load(tmp_path / "run" / "plan.toml")["plan"]
    for key in ("method", "batch", "grad_accum", "grad_ckpt", "seq_len", "rank", "learning_rate", "loss"):
        assert written[key] == advice["plan"][key], key
    assert advice["dataset"]["basis"].startswith("measured")
    # a short run: the recommended epochs over 32 rows, at most a few optimizer steps
    run = ftplan("run", tmp_path / "run", "--json")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(e["event"] == "step" for e in events) and events[-1]["event"] == "finished"


def tomllib_load(path: Path) -> dict:
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)


def test_render_refuses_a_plan_that_does_not_fit_and_writes_nothing(tmp_path, dataset):
    data = dataset("alpaca", 8)
    target = tmp_path / "big"
    args = ("render", "--model", "Llama-3.1-8B", "--method", "full", "--batch", "16", "--gpu", "H100-SXM",
            "--data", data, "-o", target)
    out = ftplan(*args)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "does not fit" in line and "--grad-ckpt" in line and "--allow-oom" in line
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ftplan")]
    forced = ftplan(*args, "--allow-oom")
    assert forced.returncode == 0, forced.stderr
    assert (target / "train.py").is_file() and "DOES NOT FIT" in (target / "train.py").read_text()


def test_estimate_json_lists_the_fixes_that_fit():
    out = ftplan("estimate", "--model", "Llama-3.1-8B", "--method", "full", "--batch", "16", "--gpu", "H200", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["fits"] is False and d["fixes"]
    for fix in d["fixes"]:
        assert fix["fits"] and fix["total_bytes"] <= d["gpu"]["memory_bytes"] and fix["flags"].startswith("--")
    fits = json.loads(ftplan("estimate", "--model", "Llama-3.1-8B", "--gpu", "H200", "--json").stdout)
    assert fits["fits"] is True and fits["fixes"] == []
