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

from planner import memory, models, render  # noqa: E402
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
        self.process_peaks: dict[int, int] = {}  # NVML's pid -> the most that process held
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            for i, h in enumerate(self.handles):
                self.peaks[i] = max(self.peaks[i], self.nvml.nvmlDeviceGetMemoryInfo(h).used)
            for pid, used in self.processes().items():
                self.process_peaks[pid] = max(self.process_peaks.get(pid, 0), used)
            if self.pid is not None:
                self.host_peak = max(self.host_peak, tree_rss(self.pid))
            time.sleep(0.01)

    def processes(self) -> dict[int, int]:
        """GPU 0's processes and the memory each holds, as NVML sees them (its pids are the
        host's, which in a container are not ours: a run is matched to the pid that appears
        after its launch). Empty where the driver does not report it."""
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handles[0])
        except self.nvml.NVMLError:
            return {}
        return {p.pid: p.usedGpuMemory for p in procs if isinstance(p.usedGpuMemory, int)}

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


class Concurrent:
    """Runs several plans on one GPU at once, each measured by what NVML says its own process
    held (the device total counts the others). Where NVML's pids are not this machine's (a
    container), launches go one at a time, so the pid that appears after a launch is that
    run's. A run starts only while the estimates of those running, with its own, stay under
    `cap_bytes`. Speed is not measured: the runs share the GPU."""

    def __init__(self, nv: NvmlPeak, cap_bytes: int):
        self.nv, self.cap = nv, cap_bytes
        self.launching = threading.Lock()
        self.room = threading.Condition()
        self.running_bytes = 0
        self.claimed: set[int] = set()
        probe = subprocess.Popen([sys.executable, "-c", "import time, torch; torch.zeros(1, device='cuda'); time.sleep(3)"])
        deadline = time.time() + 60
        while probe.poll() is None and probe.pid not in self.nv.processes() and time.time() < deadline:
            time.sleep(0.05)
        self.same_pids = probe.pid in self.nv.processes()
        probe.wait()
        print(f"NVML's pids are {'' if self.same_pids else 'not '}this machine's", flush=True)

    def admit(self, need: int) -> None:
        with self.room:
            self.room.wait_for(lambda: self.running_bytes == 0 or self.running_bytes + need <= self.cap)
            self.running_bytes += need

    def release(self, need: int) -> None:
        with self.room:
            self.running_bytes -= need
            self.room.notify_all()

    def launch(self, argv: list[str], env: dict) -> tuple[subprocess.Popen, int | None]:
        """Start the run; without shared pids, wait until its CUDA context appears in NVML."""
        if self.same_pids:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env), None
        with self.launching:
            before = set(self.nv.processes()) | self.claimed
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            deadline = time.time() + 300
            while proc.poll() is None and time.time() < deadline:
                new = set(self.nv.processes()) - before
                if new:
                    pid = min(new)
                    self.claimed.add(pid)
                    return proc, pid
                time.sleep(0.05)
            return proc, None

    def peak(self, pids: set[int], pid: int | None) -> int | None:
        """The most the run's processes held at once (one CUDA process a run on one GPU)."""
        if self.same_pids:
            return sum(self.nv.process_peaks.get(p, 0) for p in pids) or None
        return self.nv.process_peaks.get(pid) if pid is not None else None


def process_tree_peak(pid: int, stop: threading.Event, out: list[int], pids: set[int]) -> None:
    """Host memory of a run's process tree, and every pid it had."""
    import psutil

    while not stop.is_set():
        out[0] = max(out[0], tree_rss(pid))
        try:
            pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)


def run_one(case: dict, steps: int, vers: dict, warmup: int = 1, trace: bool = False, events_dir: str | None = None,
            shared: Concurrent | None = None) -> dict:
    """Render, run and measure one plan. The first `warmup` steps are not timed: they pay for
    kernel selection and, with COMPILE, for compilation. With `trace`, the allocator's history
    is recorded in the run (bench/allocator.py) and summarized into the result; with
    `events_dir` too, its large-pool history is kept there, one gzipped file per run. With
    `shared`, the run shares the GPU with others (Concurrent)."""
    case = dict(case)  # the matrix's own entry stays whole
    name = case.pop("model")
    trace = case.pop("trace", trace)
    case.pop("alone", None)
    fmt = case.pop("format", "alpaca")
    label = case.pop("label", "")
    lengths = case.pop("lengths", "full")
    with _building:  # one checkpoint written at a time, each once
        model_dir = build_model(name, case.pop("checkpoint", "bf16"))
    plan = Plan(model=name, max_steps=steps, save_final=False, eval_fraction=0.0, logging_steps=1,
                save_steps=10_000, gpu=case.pop("gpu", "H100-SXM"), **case)
    tag = f"{name}-{plan.method}-{plan.task}-b{plan.batch}-s{plan.seq_len}-{int(time.time() * 1000) % 100000}-{threading.get_ident() % 1000}"
    run_dir = WORK / "runs" / tag
    data_path = WORK / "data" / f"{tag.replace('/', '-')}.jsonl"
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
    argv = ["bash", str(run_dir / "launch.sh")]
    t0 = time.time()
    if shared is None:
        with NvmlPeak() as nv:
            before = set(nv.processes())
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            nv.pid = proc.pid
            stdout, stderr = proc.communicate()
        gpu = {"measured_nvml_peak_bytes": nv.peak - nv.baseline, "nvml_baseline_bytes": nv.baseline,
               "measured_nvml_peak_bytes_per_gpu": nv.per_gpu_peaks()[: plan.gpus],
               "measured_nvml_process_peak_bytes": sum(v for k, v in nv.process_peaks.items() if k not in before) or None}
        host_peak = nv.host_peak
    else:
        need = memory.total_bytes(spec, plan)
        shared.admit(need)
        try:
            proc, pid = shared.launch(argv, env)
            stop, host, pids = threading.Event(), [0], {proc.pid}
            watcher = threading.Thread(target=process_tree_peak, args=(proc.pid, stop, host, pids), daemon=True)
            watcher.start()
            stdout, stderr = proc.communicate()
            stop.set()
            watcher.join()
        finally:
            shared.release(need)
        process_peak = shared.peak(pids, pid)
        gpu = {"measured_nvml_peak_bytes": process_peak, "nvml_scope": "process", "concurrent": True,
               "measured_nvml_process_peak_bytes": process_peak}
        host_peak = host[0]
    events = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    step_events = [e for e in events if e.get("event") == "step"]
    finished = next((e for e in events if e.get("event") == "finished"), {})
    oom = proc.returncode != 0 and ("out of memory" in stderr.lower() or "OutOfMemoryError" in stderr)
    timed = step_events[warmup:] or step_events
    tokens_per_s = statistics.median(e["tokens_per_s"] for e in timed) if timed else None
    step_s = statistics.median(e["step_s"] for e in timed) if timed else None
    result = {
        "label": label, "plan": plan.as_dict(), "model": name, "format": fmt, "exit_code": proc.returncode, "oom": oom,
        **gpu,
        "measured_reserved_peak_bytes": finished.get("peak_reserved_bytes"),
        "measured_alloc_peak_bytes": finished.get("peak_alloc_bytes"),
        "measured_host_rss_peak_bytes": host_peak,
        # a run sharing the GPU has no speed of its own
        "tokens_per_s": None if shared else tokens_per_s, "step_s": None if shared else step_s,
        "steps": len(step_events), "wall_s": round(time.time() - t0, 1), "versions": vers,
    }
    if shared:
        result["tokens_per_s_shared_gpu"] = tokens_per_s
    if lengths != "full":
        result["lengths"] = lengths
    if trace:
        result["allocator"] = json.loads(trace_path.read_text()) if trace_path.exists() else {"error": "no trace written"}
    if proc.returncode != 0 and not oom:
        result["stderr_tail"] = stderr[-1500:]
        # torchrun's own report hides the worker's exception above it: keep the error lines
        result["stderr_errors"] = [l for l in stderr.splitlines() if "Error" in l or "error:" in l][-15:]
    shutil.rmtree(run_dir, ignore_errors=True)
    data_path.unlink(missing_ok=True)
    return result


_building = threading.Lock()


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
    ap.add_argument("--parallel", type=int, default=1,
                    help="runs sharing the GPU at once, for memory only (each measured by its own process)")
    ap.add_argument("--cap-gib", type=float, default=100, help="with --parallel: the estimates of runs at once stay under this")
    ap.add_argument("--no-solo", action="store_true",
                    help="with --parallel: start every run at once, on a machine where a solo run showed NVML's per-process memory")
    args = ap.parse_args()
    t0 = time.time()
    vers = versions()
    cases = load_matrix(args.matrix)
    lock = threading.Lock()

    def record(case: dict, shared: Concurrent | None = None) -> dict:
        label = json.dumps(case)
        try:
            r = run_one(case, args.steps, vers, args.warmup, args.trace, args.events_dir, shared)
        except Exception as e:  # a harness failure is recorded, the matrix goes on
            r = {"case": label, "harness_error": repr(e)[:500]}
        with lock:
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(f"[{time.time() - t0:5.0f}s] {label} -> {r.get('step_s')} s/step, nvml {(r.get('measured_nvml_peak_bytes') or 0) / 2**30:.2f} GiB "
                  f"(process {(r.get('measured_nvml_process_peak_bytes') or 0) / 2**30:.2f}), oom {r.get('oom')}, "
                  f"exit {r.get('exit_code')}, {r.get('tokens_per_s') or r.get('tokens_per_s_shared_gpu')} tok/s", flush=True)
        return r

    with open(args.out, "a") as out:
        # runs marked `alone` (speed) go first, one at a time; then the first of the rest alone
        # too (unless --no-solo): its device-wide and per-process peaks show they agree, and
        # whether this driver reports per-process memory at all
        for case in [c for c in cases if c.get("alone")]:
            record(case)
        queue = [c for c in cases if not c.get("alone")]

        def take() -> dict | None:
            """The next case to start, or None once the queue is empty or the budget is spent."""
            with lock:
                if queue and time.time() - t0 > args.budget_s:
                    print(f"budget reached: {len(queue)} runs not started", flush=True)
                    queue.clear()
                return queue.pop(0) if queue else None

        per_process = args.no_solo
        if not args.no_solo and (case := take()) is not None:
            per_process = bool(record(case).get("measured_nvml_process_peak_bytes"))
        if args.parallel > 1 and queue and not per_process:
            print("NVML reports no per-process memory here: the runs go one at a time", flush=True)
            args.parallel = 1
        if args.parallel == 1:
            while (case := take()) is not None:
                record(case)
            return
        with NvmlPeak() as nv:
            shared = Concurrent(nv, int(args.cap_gib * 2**30))

            def worker():
                while (case := take()) is not None:
                    record(case, shared)

            workers = [threading.Thread(target=worker) for _ in range(args.parallel)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()

if __name__ == "__main__":
    main()
