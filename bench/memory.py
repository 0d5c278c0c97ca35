"""Measure our rendered training scripts on a GPU: peak memory (torch allocated and reserved,
NVML) and speed, for a matrix of plans. Each run renders train.py from a plan, builds a
random-init checkpoint of the plan's architecture (with our small tokenizer), writes
synthetic data in the plan's format, and runs launch.sh unchanged while polling NVML.

    python3 bench/memory.py --matrix bench/matrix.py:FIRST --out $OUT/memory-h100.jsonl

Results: one JSON object a line (plan, measured_*_bytes, oom, tokens_per_s, step_s, versions)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import models, render  # noqa: E402
from planner.plan import Plan  # noqa: E402

WORK = Path(os.environ.get("BENCH_WORK", Path(__file__).resolve().parent.parent / ".bench"))


def tree_rss(pid: int) -> int:
    """Resident host memory of a process and all its descendants (torchrun, its workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class NvmlPeak:
    """Polls NVML every 10 ms: each device's used memory (minus its idle baseline); with a
    pid, also the host RAM of that process tree."""

    def __init__(self):
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self.baselines = [pynvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles]
        self.peaks = list(self.baselines)  # every GPU: multi-GPU runs report each one's peak
        self.pid = None
        self.host_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            for i, h in enumerate(self.handles):
                self.peaks[i] = max(self.peaks[i], self.nvml.nvmlDeviceGetMemoryInfo(h).used)
            if self.pid is not None:
                self.host_peak = max(self.host_peak, tree_rss(self.pid))
            time.sleep(0.01)

    @property
    def peak(self) -> int:
        return self.peaks[0]

    @property
    def baseline(self) -> int:
        return self.baselines[0]

    def per_gpu_peaks(self) -> list[int]:
        return [p - b for p, b in zip(self.peaks, self.baselines)]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["cuda"] = torch.version.cuda
    out["gpu"] = torch.cuda.get_device_name(0)
    return out


def build_model(name: str, checkpoint: str = "bf16") -> Path:
    """Random-init checkpoint of a catalog model, with our tokenizer, cached in WORK: bf16, or
    already quantized to NF4 (bench/prequant.py) where the bf16 files would not fit the disk."""
    import torch

    from bench.archs import hf_config
    from runner import tiny

    out = WORK / "models" / (name if checkpoint == "bf16" else f"{name}-{checkpoint}")
    if (out / "config.json").exists():
        return out
    spec = models.resolve(name)
    out.mkdir(parents=True, exist_ok=True)
    tiny.build_tokenizer(out)
    if checkpoint == "nf4":
        from bench import prequant

        prequant.build(hf_config(spec), out)
        torch.cuda.empty_cache()
        return out
    with torch.device("cuda"):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(hf_config(spec), dtype=torch.bfloat16)
    model.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def synthetic_rows(task: str, fmt: str, seq_len: int, n: int, lengths: str = "full") -> list[dict]:
    """Rows long enough that every sequence fills seq_len (our tokenizer: about 1.5 tokens a word);
    with lengths="varied", answers of a tenth to three quarters of it (the packing lever)."""
    from runner.tiny import corpus

    words = " ".join(corpus()).split()
    rng = random.Random(0)

    def text(n_words):
        return " ".join(rng.choice(words) for _ in range(n_words))

    rows = []
    for _ in range(n):
        if lengths == "varied":
            rows.append({"instruction": text(20), "input": "", "output": text(rng.randint(seq_len // 16, seq_len // 2))})
        elif task == "dpo":
            rows.append({"prompt": text(seq_len // 6), "chosen": text(seq_len), "rejected": text(seq_len)})
        elif fmt == "messages":
            rows.append({"messages": [{"role": "user", "content": text(seq_len // 4)},
                                      {"role": "assistant", "content": text(seq_len)}]})
        else:
            rows.append({"instruction": text(20), "input": text(seq_len // 8), "output": text(seq_len)})
    return rows


def run_one(case: dict, steps: int, vers: dict, warmup: int = 1, trace: bool = False, events_dir: str | None = None) -> dict:
    """Render, run and measure one plan. The first `warmup` steps are not timed: they pay for
    kernel selection and, with COMPILE, for compilation. With `trace`, the allocator's history
    is recorded in the run (bench/allocator.py) and summarized into the result; with
    `events_dir` too, its large-pool history is kept there, one gzipped file per run."""
    name = case.pop("model")
    fmt = case.pop("format", "alpaca")
    label = case.pop("label", "")
    lengths = case.pop("lengths", "full")
    model_dir = build_model(name, case.pop("checkpoint", "bf16"))
    plan = Plan(model=name, max_steps=steps, save_final=False, eval_fraction=0.0, logging_steps=1,
                save_steps=10_000, gpu=case.pop("gpu", "H100-SXM"), **case)
    tag = f"{name}-{plan.method}-{plan.task}-b{plan.batch}-s{plan.seq_len}-{int(time.time() * 1000) % 100000}"
    run_dir = WORK / "runs" / tag
    data_path = WORK / "data" / f"{plan.task}-{fmt}-{plan.seq_len}-{lengths}.jsonl"
    data_path.parent.mkdir(parents=True, exist_ok=True)
    rows_needed = max(64, plan.batch * plan.grad_accum * (steps + 2) * (1 if plan.task == "dpo" else 1))
    data_path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows(plan.task, fmt, plan.seq_len, rows_needed * (8 if lengths == "varied" else 1), lengths)))
    spec = models.resolve(name)
    render.render(plan, spec, run_dir, str(model_dir), str(data_path), "preference" if plan.task == "dpo" else fmt,
                  command="bench/memory.py", force=True)
    env = {**os.environ, "PYTHON": sys.executable}
    trace_path = run_dir / "allocator.json"
    if trace:
        root = Path(__file__).resolve().parent.parent
        env["PYTHONPATH"] = os.pathsep.join([str(root / "bench" / "memtrace"), str(root), env.get("PYTHONPATH", "")])
        env["FTPLAN_MEMTRACE"] = str(trace_path)
        if events_dir:
            Path(events_dir).mkdir(parents=True, exist_ok=True)
            env["FTPLAN_MEMTRACE_EVENTS"] = str(Path(events_dir) / (re.sub(r"[^\w.-]", "-", label or tag) + ".json.gz"))
    t0 = time.time()
    with NvmlPeak() as nv:
        proc = subprocess.Popen(["bash", str(run_dir / "launch.sh")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        nv.pid = proc.pid
        stdout, stderr = proc.communicate()
        proc.stdout, proc.stderr = stdout, stderr
    events = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    step_events = [e for e in events if e.get("event") == "step"]
    finished = next((e for e in events if e.get("event") == "finished"), {})
    oom = proc.returncode != 0 and ("out of memory" in proc.stderr.lower() or "OutOfMemoryError" in proc.stderr)
    timed = step_events[warmup:] or step_events
    result = {
        "label": label, "plan": plan.as_dict(), "model": name, "format": fmt, "exit_code": proc.returncode, "oom": oom,
        "measured_nvml_peak_bytes": nv.peak - nv.baseline, "nvml_baseline_bytes": nv.baseline,
        "measured_reserved_peak_bytes": finished.get("peak_reserved_bytes"),
        "measured_alloc_peak_bytes": finished.get("peak_alloc_bytes"),
        "measured_host_rss_peak_bytes": nv.host_peak,
        "measured_nvml_peak_bytes_per_gpu": nv.per_gpu_peaks()[: plan.gpus],
        "tokens_per_s": statistics.median(e["tokens_per_s"] for e in timed) if timed else None,
        "step_s": statistics.median(e["step_s"] for e in timed) if timed else None,
        "steps": len(step_events), "wall_s": round(time.time() - t0, 1), "versions": vers,
    }
    if lengths != "full":
        result["lengths"] = lengths
    if trace:
        result["allocator"] = json.loads(trace_path.read_text()) if trace_path.exists() else {"error": "no trace written"}
    if proc.returncode != 0 and not oom:
        result["stderr_tail"] = proc.stderr[-1500:]
        # torchrun's own report hides the worker's exception above it: keep the error lines
        result["stderr_errors"] = [l for l in proc.stderr.splitlines() if "Error" in l or "error:" in l][-15:]
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def load_matrix(ref: str) -> list[dict]:
    path, name = ref.split(":")
    spec = importlib.util.spec_from_file_location("matrix", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [dict(c) for c in getattr(mod, name)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrix", required=True, help="file.py:LIST")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1, help="steps not timed (compilation, kernel selection)")
    ap.add_argument("--trace", action="store_true", help="record the allocator's history (bench/allocator.py)")
    ap.add_argument("--events-dir", help="with --trace: keep each run's large-pool allocator history here")
    ap.add_argument("--budget-s", type=float, default=540, help="stop starting runs after this many seconds")
    args = ap.parse_args()
    t0 = time.time()
    vers = versions()
    cases = load_matrix(args.matrix)
    with open(args.out, "a") as out:
        for i, case in enumerate(cases):
            if time.time() - t0 > args.budget_s:
                print(f"budget reached: {len(cases) - i} runs not started", flush=True)
                break
            label = json.dumps(case)
            try:
                r = run_one(case, args.steps, vers, args.warmup, args.trace, args.events_dir)
            except Exception as e:  # a harness failure is recorded, the matrix goes on
                r = {"case": label, "harness_error": repr(e)[:500]}
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(f"[{time.time() - t0:5.0f}s] {label} -> {r.get('step_s')} s/step, nvml {r.get('measured_nvml_peak_bytes', 0) / 2**30:.2f} GiB, "
                  f"oom {r.get('oom')}, exit {r.get('exit_code')}, {r.get('tokens_per_s')} tok/s", flush=True)


if __name__ == "__main__":
    main()
